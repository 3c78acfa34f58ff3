//! `POST /v1/embeddings`, honouring `encoding_format` whatever the upstream returned.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use providers::{EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse, EncodingFormat, Usage};
use store::Route;

use crate::app::{AppState, RequestId};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::ValidJson;
use crate::usage::UsageGuard;

/// Creates embedding vectors (OpenAI format).
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    tag = "openai",
    request_body = EmbeddingsRequest,
    responses((status = 200, body = EmbeddingsResponse), (status = 400, body = ErrorBody), (status = 502, body = ErrorBody))
)]
pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    axum::Extension(request_id): axum::Extension<RequestId>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
    ValidJson(mut req): ValidJson<EmbeddingsRequest>,
) -> Result<Json<EmbeddingsResponse>, ApiError> {
    let started = Instant::now();
    let group = state.router.resolve(&req.model)?;
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
    crate::chat::capabilities::check_embeddings(&target)?;
    let empty = match &req.input {
        providers::EmbeddingInput::One(s) => s.is_empty(),
        providers::EmbeddingInput::Many(v) => v.is_empty() || v.iter().any(String::is_empty),
        providers::EmbeddingInput::Tokens(v) => v.is_empty(),
        providers::EmbeddingInput::TokenBatches(v) => v.is_empty() || v.iter().any(Vec::is_empty),
    };
    if empty {
        return Err(ApiError::invalid("input", "`input` must not be empty"));
    }
    let wanted = req.encoding_format.unwrap_or(EncodingFormat::Float);
    let admission = crate::access::admit_embeddings(&state, &principal, &req, &group).await?;
    req.model.clone_from(&target.upstream_model);
    let mut guard = UsageGuard::new(
        Arc::clone(&state),
        &request_id,
        Route::Embeddings,
        Arc::clone(&target),
        started,
    );
    guard.set_admission(admission);
    let Ok(ticket) = dep.begin() else {
        guard.finish_err(ErrorCode::NoHealthyDeployment);
        return Err(ApiError::new(
            ErrorCode::NoHealthyDeployment,
            "No healthy deployment can serve this model right now",
        ));
    };
    let result = match tokio::time::timeout(dep.timeouts.total, target.provider.embed(&req)).await {
        Ok(r) => r,
        Err(_) => Err(providers::ProviderError::new(
            providers::ProviderErrorKind::Timeout,
            "upstream timed out",
        )),
    };
    let mut resp = match result {
        Ok(r) => {
            let _ = ticket.finish(true);
            r
        }
        Err(e) => {
            let _ = ticket.finish(!crate::resilience::retry::is_retryable(&e));
            dep.note_error(&e.message);
            let err = ApiError::from(&e);
            guard.finish_err(err.code);
            return Err(err);
        }
    };
    for d in &mut resp.data {
        convert(&mut d.embedding, wanted);
    }
    guard.set_usage(&Usage::new(resp.usage.prompt_tokens, 0, 0), false);
    guard.finish_ok();
    Ok(Json(resp))
}

/// Re-encode a vector: base64 is the little-endian bytes of the f32 values.
fn convert(v: &mut EmbeddingVector, wanted: EncodingFormat) {
    match (wanted, &*v) {
        (EncodingFormat::Base64, EmbeddingVector::Float(f)) => {
            let bytes: Vec<u8> = f.iter().flat_map(|x| x.to_le_bytes()).collect();
            *v = EmbeddingVector::Base64(STANDARD.encode(bytes));
        }
        (EncodingFormat::Float, EmbeddingVector::Base64(b)) => {
            let bytes = STANDARD.decode(b).unwrap_or_default();
            let floats = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            *v = EmbeddingVector::Float(floats);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        let mut v = EmbeddingVector::Float(vec![1.0, -0.5]);
        convert(&mut v, EncodingFormat::Base64);
        assert_eq!(v, EmbeddingVector::Base64("AACAPwAAAL8=".into()));
        convert(&mut v, EncodingFormat::Float);
        assert_eq!(v, EmbeddingVector::Float(vec![1.0, -0.5]));
    }
}
