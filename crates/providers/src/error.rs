//! `ProviderError`: what can go wrong talking to an upstream, classified once so the gateway can
//! map it to its error contract and decide whether to retry, without parsing messages again.

use std::time::Duration;

/// The class of an upstream failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderErrorKind {
    /// The upstream rejected our credentials (401/403).
    Auth,
    /// The upstream rate limited us (429, Anthropic 529 overloaded counts as unavailable).
    RateLimited,
    /// The upstream said the request is invalid (400/404/422).
    BadRequest,
    /// The prompt does not fit the model's context window.
    ContextLength,
    /// The upstream refused on content grounds.
    ContentFilter,
    /// 5xx or overloaded.
    Unavailable,
    /// No answer within the configured time.
    Timeout,
    /// Could not connect or the connection broke before a response.
    Connect,
    /// The upstream answered something we cannot parse.
    Decode,
    /// A stream broke after it had started.
    StreamInterrupted,
}

impl ProviderErrorKind {
    /// Whether trying the same call again may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ProviderErrorKind::RateLimited
                | ProviderErrorKind::Unavailable
                | ProviderErrorKind::Timeout
                | ProviderErrorKind::Connect
        )
    }
}

/// An upstream failure. `message` is safe to show a client: it never contains keys or URLs.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?} (status {status:?}): {message}")]
pub struct ProviderError {
    pub kind: ProviderErrorKind,
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
    pub message: String,
}

impl ProviderError {
    /// A request that could not be put in the upstream's format (a client mistake: 400).
    pub fn unencodable() -> ProviderError {
        ProviderError::new(
            ProviderErrorKind::BadRequest,
            "request could not be encoded",
        )
    }

    pub fn new(kind: ProviderErrorKind, message: impl Into<String>) -> ProviderError {
        ProviderError {
            kind,
            status: None,
            retry_after: None,
            message: message.into(),
        }
    }

    pub fn with_status(mut self, status: u16) -> ProviderError {
        self.status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, d: Option<Duration>) -> ProviderError {
        self.retry_after = d;
        self
    }

    pub fn retryable(&self) -> bool {
        self.kind.retryable()
    }

    /// Classify an HTTP error status; `body_hint` is the upstream's error code/type when known.
    pub fn from_status(status: u16, body_hint: &str, message: impl Into<String>) -> ProviderError {
        let kind = match status {
            401 | 403 => ProviderErrorKind::Auth,
            429 => ProviderErrorKind::RateLimited,
            408 | 504 => ProviderErrorKind::Timeout,
            400 | 404 | 409 | 413 | 422 if is_context_length(body_hint) => {
                ProviderErrorKind::ContextLength
            }
            400 | 404 | 409 | 413 | 422 if body_hint.contains("content_filter") => {
                ProviderErrorKind::ContentFilter
            }
            400..=499 => ProviderErrorKind::BadRequest,
            _ => ProviderErrorKind::Unavailable,
        };
        ProviderError::new(kind, message).with_status(status)
    }
}

fn is_context_length(hint: &str) -> bool {
    hint.contains("context_length") || hint.contains("context length") || hint.contains("too long")
}

/// Parse `retry-after-ms`, then `retry-after` (seconds or an HTTP date is ignored), capped.
pub fn retry_after_from_headers(headers: &http::HeaderMap) -> Option<Duration> {
    let cap = Duration::from_secs(3600);
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0).min(cap));
    }
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|s| Duration::from_secs_f64(s).min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification() {
        assert_eq!(
            ProviderError::from_status(401, "", "x").kind,
            ProviderErrorKind::Auth
        );
        assert_eq!(
            ProviderError::from_status(429, "", "x").kind,
            ProviderErrorKind::RateLimited
        );
        assert_eq!(
            ProviderError::from_status(500, "", "x").kind,
            ProviderErrorKind::Unavailable
        );
        assert_eq!(
            ProviderError::from_status(529, "", "x").kind,
            ProviderErrorKind::Unavailable
        );
        assert_eq!(
            ProviderError::from_status(504, "", "x").kind,
            ProviderErrorKind::Timeout
        );
        assert_eq!(
            ProviderError::from_status(400, "context_length_exceeded", "x").kind,
            ProviderErrorKind::ContextLength
        );
        assert_eq!(
            ProviderError::from_status(400, "invalid", "x").kind,
            ProviderErrorKind::BadRequest
        );
    }

    #[test]
    fn retry_after_parsing() {
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after_from_headers(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(
            retry_after_from_headers(&h),
            Some(Duration::from_millis(1500))
        );
        let mut bad = http::HeaderMap::new();
        bad.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after_from_headers(&bad), None);
    }
}
