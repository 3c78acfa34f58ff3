//! `ValidJson<T>`: a JSON body extractor whose errors follow the error contract: 413 over the body
//! limit, 400 `invalid_json` for malformed JSON, 400 `invalid_request` with `param` naming the
//! field for wrong types, unknown enum values and missing fields. `ValidQuery<T>` does the same
//! for query strings (400 `invalid_request`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

pub struct ValidJson<T>(pub T);

/// Query parameters parsed into `T`; a bad parameter is a 400 `invalid_request`.
pub struct ValidQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ValidQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ValidQuery(q.0))
            .map_err(|rej| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("Invalid query string: {}", rej.body_text()),
                )
            })
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::RequestTooLarge,
                    "The request body exceeds the size limit",
                )
            } else {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    "The request body could not be read",
                )
            }
        })?;
        parse_json(&bytes).map(ValidJson)
    }
}

/// Parse JSON, mapping errors to the contract with the failing field's path as `param`.
///
/// Valid bodies take the plain parser; only a body that fails is parsed again with path
/// tracking, which would otherwise cost every request a wrapper around each value.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(_) => Err(explain_json_error::<T>(bytes)),
    }
}

/// The error of a body that failed to parse, with the failing field's path.
fn explain_json_error<T: DeserializeOwned>(bytes: &[u8]) -> ApiError {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    // Path tracking reads one value and stops, so it accepts what the plain parse refused for
    // trailing characters after the JSON.
    let Err(e) = serde_path_to_error::deserialize::<_, T>(de) else {
        return ApiError::new(ErrorCode::InvalidJson, "The request body is not valid JSON");
    };
    let path = e.path().to_string();
    let inner = e.into_inner();
    let text = inner.to_string();
    let message = text
        .rfind(" at line ")
        .map_or(text.as_str(), |i| &text[..i])
        .to_owned();
    match inner.classify() {
        serde_json::error::Category::Data => {
            let param = match message
                .strip_prefix("missing field `")
                .and_then(|r| r.strip_suffix('`'))
            {
                Some(field) if path == "." => field.to_owned(),
                Some(field) => format!("{path}.{field}"),
                None if path == "." => String::new(),
                None => path,
            };
            ApiError {
                param: (!param.is_empty()).then_some(param),
                ..ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("Invalid request: {message}"),
                )
            }
        }
        _ => ApiError::new(
            ErrorCode::InvalidJson,
            format!("The request body is not valid JSON: {message}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use providers::ChatRequest;

    use super::*;

    fn err(body: &str) -> ApiError {
        parse_json::<ChatRequest>(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn paths_name_the_field() {
        // Bad input: an unknown role.
        let e = err(r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#);
        assert_eq!(
            (e.code, e.param.as_deref()),
            (ErrorCode::InvalidRequest, Some("messages[0].role"))
        );
        // Bad input: content of the wrong type.
        let e = err(r#"{"model":"m","messages":[{"role":"user","content":5}]}"#);
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
        assert_eq!(
            e.message,
            "Invalid request: invalid type: integer `5`, expected a string or an array of content parts"
        );
        // Bad input: temperature as a string.
        let e = err(r#"{"model":"m","messages":[],"temperature":"hot"}"#);
        assert_eq!(e.param.as_deref(), Some("temperature"));
        // Bad input: no messages at all.
        let e = err(r#"{"model":"m"}"#);
        assert_eq!(e.param.as_deref(), Some("messages"));
        // Bad input: truncated JSON.
        let e = err(r#"{"model":"m","#);
        assert_eq!((e.code, e.param), (ErrorCode::InvalidJson, None));
    }

    #[test]
    fn unknown_fields_are_kept() {
        let r: ChatRequest =
            parse_json(br#"{"model":"m","messages":[],"logit_bias":{"1":2},"store":true}"#)
                .unwrap();
        assert_eq!(r.extra.len(), 2);
        let out = serde_json::to_value(&r).unwrap();
        assert_eq!(out["logit_bias"]["1"], 2);
        assert_eq!(out["store"], true);
    }
}
