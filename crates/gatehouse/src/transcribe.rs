//! `POST /v1/audio/transcriptions`: OpenAI's speech-to-text endpoint. A `multipart/form-data`
//! body with `file` (audio), `model`, optional `language` and `response_format` (`json`, the
//! default, or `text`) goes to the model's provider (Whisper-compatible upstreams get the same
//! multipart request; the mock answers a fixed transcript). The route has its own body limit,
//! `server.max_audio_bytes`, counted while the upload streams in; every other field is capped
//! at a few hundred bytes. One usage record per request (route `transcription`).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use providers::{TranscriptFormat, TranscriptionRequest};
use serde::Serialize;
use store::Route;
use utoipa::ToSchema;

use crate::app::{AppState, RequestId};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::usage::UsageGuard;

/// Containers OpenAI's endpoint accepts, by file extension.
const AUDIO_EXTENSIONS: [&str; 10] = [
    "flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm",
];
/// Longest value of a text field (`model`, `language`, …).
const TEXT_FIELD_BYTES: usize = 256;

/// The form, for the OpenAPI document.
#[derive(Debug, ToSchema)]
pub struct TranscriptionForm {
    /// The audio: flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav or webm.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    pub model: String,
    /// ISO-639-1 code of the spoken language.
    pub language: Option<String>,
    /// `json` (default) or `text`.
    pub response_format: Option<String>,
    /// Accepted for compatibility and not used.
    pub prompt: Option<String>,
    /// Accepted for compatibility and not used.
    pub temperature: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TranscriptionJson {
    pub text: String,
}

struct Upload {
    bytes: Bytes,
    filename: String,
    content_type: String,
}

/// Transcribes audio into text (OpenAI format).
#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = "openai",
    request_body(content = TranscriptionForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "`{\"text\": …}`, or the text itself for `response_format=text`", body = TranscriptionJson),
        (status = 400, description = "A missing or invalid field (`param` names it)", body = ErrorBody),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 413, description = "The file is over `server.max_audio_bytes`", body = ErrorBody),
        (status = 415, description = "Not multipart, or the file is not audio", body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn transcriptions(
    State(state): State<Arc<AppState>>,
    axum::Extension(request_id): axum::Extension<RequestId>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let mut form = form.map_err(|_| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Send the audio as multipart/form-data with a `file` and a `model` field",
        )
    })?;
    let limit = state.config.server.max_audio_bytes;
    let mut upload: Option<Upload> = None;
    let mut model: Option<String> = None;
    let mut language: Option<String> = None;
    let mut format = TranscriptFormat::Json;
    while let Some(field) = form.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                let filename = field.file_name().unwrap_or("audio").to_owned();
                let content_type = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                check_audio(&filename, &content_type)?;
                let bytes = read(field, limit, "file").await?;
                upload = Some(Upload {
                    bytes,
                    filename,
                    content_type,
                });
            }
            "model" => model = Some(text(field, "model").await?),
            "language" => {
                let l = text(field, "language").await?;
                if !(2..=3).contains(&l.len()) || !l.bytes().all(|b| b.is_ascii_lowercase()) {
                    return Err(ApiError::invalid(
                        "language",
                        "`language` is an ISO-639-1 code such as `en`",
                    ));
                }
                language = Some(l);
            }
            "response_format" => {
                let f = text(field, "response_format").await?;
                format = TranscriptFormat::parse(&f).ok_or_else(|| {
                    ApiError::invalid(
                        "response_format",
                        format!(
                            "`{}` is not a supported response_format (json, text)",
                            f.chars().take(32).collect::<String>()
                        ),
                    )
                })?;
            }
            // OpenAI's optional hints: accepted so SDK calls work, not forwarded.
            "prompt" | "temperature" | "timestamp_granularities[]" => {
                read(field, 4 * 1024, &name).await?;
            }
            other => {
                return Err(ApiError::invalid(
                    other.chars().take(64).collect::<String>(),
                    "unknown field; expected file, model, language, response_format",
                ));
            }
        }
    }
    let upload = upload.ok_or_else(|| ApiError::invalid("file", "`file` is required"))?;
    if upload.bytes.is_empty() {
        return Err(ApiError::invalid("file", "the audio file is empty"));
    }
    let model = model
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("model", "`model` is required"))?;
    let group = state.router.resolve(&model)?;
    let dep = group
        .pick(&[], &mut fastrand::Rng::new())
        .map(|i| Arc::clone(&group.deployments[i]))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NoHealthyDeployment,
                "No healthy deployment can serve this model right now",
            )
        })?;
    let target = Arc::clone(&dep.target);
    let admission = crate::access::admit_transcription(&state, &principal, &group).await?;
    let mut guard = UsageGuard::new(
        Arc::clone(&state),
        &request_id,
        Route::Transcription,
        Arc::clone(&target),
        started,
    );
    guard.set_admission(admission);
    let req = TranscriptionRequest {
        model: target.upstream_model.clone(),
        file: upload.bytes,
        filename: upload.filename,
        content_type: upload.content_type,
        language,
    };
    let Ok(ticket) = dep.begin() else {
        guard.finish_err(ErrorCode::NoHealthyDeployment);
        return Err(ApiError::new(
            ErrorCode::NoHealthyDeployment,
            "No healthy deployment can serve this model right now",
        ));
    };
    let result = tokio::time::timeout(dep.timeouts.total, target.provider.transcribe(&req))
        .await
        .unwrap_or_else(|_| {
            Err(providers::ProviderError::new(
                providers::ProviderErrorKind::Timeout,
                "upstream timed out",
            ))
        });
    let transcript = match result {
        Ok(t) => {
            let _ = ticket.finish(true);
            t
        }
        Err(e) => {
            let _ = ticket.finish(!crate::resilience::retry::is_retryable(&e));
            dep.note_error(&e.message);
            let err = ApiError::from(&e);
            guard.finish_err(err.code);
            return Err(err);
        }
    };
    guard.finish_ok();
    Ok(match format {
        TranscriptFormat::Json => Json(TranscriptionJson {
            text: transcript.text,
        })
        .into_response(),
        TranscriptFormat::Text => {
            let mut r = transcript.text.into_response();
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
    })
}

/// Audio by content type, or by extension when the browser sent a generic type.
fn check_audio(filename: &str, content_type: &str) -> Result<(), ApiError> {
    let ct = content_type.to_ascii_lowercase();
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let ok = ct.starts_with("audio/")
        || matches!(
            ct.split(';').next(),
            Some("video/webm" | "video/mp4" | "video/mpeg")
        )
        || (ct.starts_with("application/octet-stream") && AUDIO_EXTENSIONS.contains(&ext.as_str()));
    if ok {
        Ok(())
    } else {
        Err(ApiError {
            param: Some("file".into()),
            ..ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "the file must be audio ({}); got {}",
                    AUDIO_EXTENSIONS.join(", "),
                    ct.chars().take(64).collect::<String>()
                ),
            )
        })
    }
}

/// A field's bytes, refusing it as soon as it passes `limit`.
async fn read(mut field: Field<'_>, limit: usize, name: &str) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = field.chunk().await.map_err(malformed)? {
        if buf.len() + chunk.len() > limit {
            return Err(ApiError {
                param: Some(name.to_owned()),
                ..ApiError::new(
                    ErrorCode::RequestTooLarge,
                    format!("`{name}` is larger than the limit of {limit} bytes"),
                )
            });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

async fn text(field: Field<'_>, name: &str) -> Result<String, ApiError> {
    let bytes = read(field, TEXT_FIELD_BYTES, name).await?;
    String::from_utf8(bytes.to_vec())
        .map(|s| s.trim().to_owned())
        .map_err(|_| ApiError::invalid(name, format!("`{name}` must be UTF-8 text")))
}

fn malformed(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::RequestTooLarge,
            "The request body exceeds the size limit",
        )
    } else {
        ApiError::new(
            ErrorCode::InvalidRequest,
            "The multipart body could not be read",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_recognised_by_type_or_extension() {
        assert!(check_audio("a.webm", "audio/webm;codecs=opus").is_ok());
        assert!(check_audio("a.webm", "video/webm").is_ok());
        assert!(check_audio("memo.m4a", "application/octet-stream").is_ok());
        // Bad input: an image; a text file; a generic type with a non-audio extension.
        for (name, ct) in [
            ("cat.png", "image/png"),
            ("notes.txt", "text/plain"),
            ("x.exe", "application/octet-stream"),
        ] {
            let e = check_audio(name, ct).unwrap_err();
            assert_eq!(
                (e.code, e.param.as_deref()),
                (ErrorCode::UnsupportedMediaType, Some("file")),
                "{name}"
            );
        }
    }
}
