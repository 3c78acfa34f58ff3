//! Injected error answers: OpenAI's error body for the status, and for rate limits the headers
//! clients and gateways read to know when to come back.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

use crate::UpstreamError;
use crate::body::json_response;
use crate::openai;

/// `status` with [`UpstreamError::for_status`]'s body; with `retry_after`, `retry-after`
/// (whole seconds, rounded up) and `retry-after-ms`, and for a 429 also OpenAI's
/// `x-ratelimit-remaining-requests: 0` and `x-ratelimit-reset-requests`.
pub(crate) fn status_response(status: u16, retry_after: Option<Duration>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(
        code,
        &openai::error_body(&UpstreamError::for_status(status)),
    );
    if let Some(after) = retry_after {
        let headers = response.headers_mut();
        let millis = after.as_millis();
        headers.insert(
            "retry-after",
            HeaderValue::from(u64::try_from(millis.div_ceil(1000)).unwrap_or(u64::MAX)),
        );
        headers.insert(
            "retry-after-ms",
            HeaderValue::from(u64::try_from(millis).unwrap_or(u64::MAX)),
        );
        if status == 429 {
            headers.insert(
                "x-ratelimit-remaining-requests",
                HeaderValue::from_static("0"),
            );
            if let Ok(value) = HeaderValue::from_str(&go_duration(after)) {
                headers.insert("x-ratelimit-reset-requests", value);
            }
        }
    }
    response
}

/// A duration the way OpenAI's `x-ratelimit-reset-*` headers write it (Go's
/// `time.Duration.String`, to the millisecond): `250ms`, `1s`, `1.5s`, `6m0s`, `1h2m3s`.
pub(crate) fn go_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let (hours, rest) = (millis / 3_600_000, millis % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (seconds, fraction) = (rest / 1000, rest % 1000);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&seconds.to_string());
    if fraction > 0 {
        let digits = format!("{fraction:03}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('s');
    out
}
