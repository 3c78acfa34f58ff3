//! The embedded UI files: `/` (chat), `/admin` (console), `/assets/…` and `/favicon.ico`, with
//! their content type, a strong `ETag` (answered with 304 on `If-None-Match`) and
//! `Cache-Control: no-cache`, so browsers revalidate every file and pick up a new version at
//! once (the service worker keeps the offline copy). The security layer gives these paths the
//! UI's Content-Security-Policy (`security.ui_csp`: scripts, styles and connections from this
//! origin only) and a Permissions-Policy that lets the chat use the microphone.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::app::AppState;
use crate::error::{ApiError, ErrorCode};

/// One embedded file.
pub struct Asset {
    /// Relative to `web/`, e.g. `js/chat/app.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    /// Quoted, as sent.
    pub etag: &'static str,
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

fn respond(asset: &'static Asset, headers: &HeaderMap) -> Response {
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == asset.etag || t.trim() == "*")
        });
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Response::new(Body::from(asset.body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        r
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if asset.path == "sw.js" {
        // Served under /assets/ but controls the whole origin (the chat at `/`).
        h.insert("service-worker-allowed", HeaderValue::from_static("/"));
    }
    resp
}

fn page(path: &'static str, state: &AppState, headers: &HeaderMap) -> Response {
    if !state.config.web.enabled {
        return ApiError::new(ErrorCode::NotFound, "The web UI is disabled on this server")
            .into_response();
    }
    match find(path) {
        Some(a) => respond(a, headers),
        None => ApiError::new(ErrorCode::NotFound, "No such file").into_response(),
    }
}

/// The chat.
#[utoipa::path(get, path = "/", tag = "web", responses((status = 200, description = "The web chat (HTML)"), (status = 304, description = "Not modified")))]
pub async fn chat_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    page("index.html", &state, &headers)
}

/// The admin console (signs in with the admin key).
#[utoipa::path(get, path = "/admin", tag = "web", responses((status = 200, description = "The admin console (HTML)"), (status = 304, description = "Not modified")))]
pub async fn admin_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    page("admin.html", &state, &headers)
}

pub async fn favicon(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    page("icon.svg", &state, &headers)
}

/// A file of the UI (scripts, styles, vendored libraries, the service worker).
#[utoipa::path(get, path = "/assets/{path}", tag = "web", params(("path" = String, Path, description = "File below web/")),
    responses((status = 200, description = "The file, with its content type and ETag"), (status = 304, description = "Not modified"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn asset(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !state.config.web.enabled {
        return ApiError::new(ErrorCode::NotFound, "The web UI is disabled on this server")
            .into_response();
    }
    match find(&path) {
        Some(a) => respond(a, &headers),
        None => ApiError::new(ErrorCode::NotFound, "No such file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_the_pages_and_types() {
        let index = find("index.html").unwrap();
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        assert!(index.etag.starts_with('"') && index.etag.ends_with('"'));
        assert_eq!(index.etag.len(), 18);
        assert_eq!(
            find("sw.js").unwrap().content_type,
            "text/javascript; charset=utf-8"
        );
        // The service worker carries the version instead of the placeholder.
        let sw = std::str::from_utf8(find("sw.js").unwrap().body).unwrap();
        assert!(sw.contains(UI_VERSION));
        assert!(!sw.contains("__GATEHOUSE_UI_VERSION__"));
        assert!(UI_VERSION.starts_with(concat!(env!("CARGO_PKG_VERSION"), "+")));
        // The browser tests are not shipped.
        assert!(ASSETS.iter().all(|a| !a.path.starts_with("tests/")));
    }
}
