//! Who is chatting. Every browser gets an anonymous identity on its first visit: an `HttpOnly`,
//! `SameSite=Strict` cookie `gh_chat` holding `v1.<random id>.<flags>`, signed by the server, so
//! the id cannot be chosen or forged. Its requests run as end user `web:<id>` (conversations,
//! usage and limits are per user). With `web.chat_access = "invite"` the cookie must also carry
//! the invited flag, set by `POST /web/api/session/invite` with a valid code.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cookies;
use super::signing::{Purpose, Signer, random_id};
use super::spend::DAY_MS;
use crate::access::headers::LimitInfo;
use crate::access::public::PublicRoute;
use crate::app::AppState;
use crate::assistants::spec::AssistantSpec;
use crate::auth::{Principal, presented_key, presented_key_in, secrets_equal};
use crate::config::web::ChatAccess;
use crate::conversations::owner::WebSession;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::ValidJson;
use crate::usage::now_ms;

pub const COOKIE: &str = "gh_chat";
/// The header the conversation and chat layers read the end user from.
pub const USER_HEADER: &str = "x-gatehouse-user";
const MAX_AGE: Duration = Duration::from_secs(365 * 24 * 3600);

/// An anonymous chat identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatUser {
    pub id: String,
    pub invited: bool,
}

impl ChatUser {
    /// The end-user id its requests carry.
    pub fn end_user(&self) -> String {
        format!(
            "{}{}",
            crate::conversations::owner::WEB_USER_PREFIX,
            self.id
        )
    }
}

pub struct ChatSessions {
    signer: Signer,
}

impl ChatSessions {
    pub fn new(root: &[u8]) -> ChatSessions {
        ChatSessions {
            signer: Signer::new(root, Purpose::ChatSession, b""),
        }
    }

    pub fn cookie_value(&self, user: &ChatUser) -> String {
        let flags = if user.invited { "i" } else { "o" };
        self.signer.sign(&format!("v1.{}.{flags}", user.id))
    }

    pub fn check(&self, value: &str) -> Option<ChatUser> {
        let payload = self.signer.verify(value)?;
        let mut parts = payload.split('.');
        let (Some("v1"), Some(id), Some(flags), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        Some(ChatUser {
            id: id.to_owned(),
            invited: flags == "i",
        })
    }
}

fn set_cookie(state: &AppState, headers: &HeaderMap, resp: &mut Response, user: &ChatUser) {
    let value = state.web.chat.cookie_value(user);
    let secure = cookies::secure(&state.config, headers);
    if let Some(v) = cookies::set_cookie(COOKIE, &value, "/", MAX_AGE, secure) {
        resp.headers_mut().append(http::header::SET_COOKIE, v);
    }
}

/// The caller of a `/web/api/…` route: a signed chat session, allowed by `chat_access`, and
/// for writes a same-origin request. Sets `x-gatehouse-user` to its end-user id (replacing
/// whatever the client sent).
///
/// It also hands the handlers a [`Principal`]: the end user, the client address and, with
/// `web.chat_access = "key"`, the API key the browser sends (`Authorization: Bearer`), whose
/// limits and budgets then apply as for any API call.
#[derive(Debug, Clone)]
pub struct WebUser {
    pub user: ChatUser,
    pub principal: Principal,
}

impl FromRequestParts<Arc<AppState>> for WebUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        if !state.config.web.enabled {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                "The web UI is disabled on this server",
            ));
        }
        cookies::same_origin(&parts.method, &parts.headers)
            .map_err(|e| ApiError::new(ErrorCode::Forbidden, e.message()))?;
        let user = cookies::get(&parts.headers, COOKIE)
            .and_then(|v| state.web.chat.check(v))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "No chat session: reload the page to start one",
                )
            })?;
        if state.config.web.chat_access == ChatAccess::Invite && !user.invited {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "This chat needs an invite code: enter it on the chat page",
            ));
        }
        let mut principal = Principal {
            end_user: Some(user.end_user()),
            ip: client_ip(parts, state.access.cfg.security.trust_forwarded_for),
            ..Principal::default()
        };
        if state.config.web.chat_access == ChatAccess::Key {
            let key = presented_key(parts).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "This chat needs an API key: enter it on the chat page",
                )
            })?;
            let key = state.access.keys.authenticate(key, now_ms()).map_err(|_| {
                ApiError::new(ErrorCode::Unauthorized, "Invalid or expired API key")
            })?;
            principal.key_id = Some(key.id);
            principal.key = Some(key);
        }
        // The id is URL-safe base64: always a valid header value.
        if let Ok(v) = HeaderValue::from_str(&user.end_user()) {
            parts.headers.insert(USER_HEADER, v);
            parts.extensions.insert(WebSession);
        }
        parts.extensions.insert(principal.clone());
        Ok(WebUser { user, principal })
    }
}

/// The client's address: the peer, or the first `X-Forwarded-For` hop behind a trusted proxy.
fn client_ip(parts: &Parts, trust_forwarded: bool) -> Option<IpAddr> {
    let forwarded = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok());
    if trust_forwarded && forwarded.is_some() {
        return forwarded;
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

impl WebUser {
    /// Admit a request that costs something (a message, a transcription): the user's daily
    /// budget, then the web chat's rate limits per user and per client address (the address
    /// also counts toward all anonymous traffic). Returns the per-user limit's state for the
    /// `x-ratelimit-*` headers.
    pub async fn admit(&self, state: &AppState) -> Result<LimitInfo, ApiError> {
        self.check_budget(state)?;
        let access = &state.access;
        let info = access
            .limit_public(PublicRoute::WebChat, &self.user.end_user(), false)
            .await?;
        let ip = self
            .principal
            .ip
            .map_or_else(|| "ip:unknown".to_owned(), |ip| format!("ip:{ip}"));
        access
            .limit_public(PublicRoute::WebChat, &ip, self.principal.key.is_none())
            .await?;
        Ok(info)
    }

    /// Refuse when the user's spend today reached `web.user_daily_budget_usd`.
    pub fn check_budget(&self, state: &AppState) -> Result<(), ApiError> {
        let budget = state.config.web.user_daily_budget_micros;
        if budget <= 0 {
            return Ok(());
        }
        let now = now_ms();
        let day = now.div_euclid(DAY_MS);
        let spent = state
            .web
            .spend
            .today(&self.user.end_user(), day)
            .cost_micros;
        if spent < budget {
            return Ok(());
        }
        let wait = (day + 1) * DAY_MS - now;
        Err(ApiError {
            retry_after: Some(Duration::from_millis(u64::try_from(wait).unwrap_or(0))),
            ..ApiError::new(
                ErrorCode::BudgetExceeded,
                format!(
                    "You have used today's chat budget ({}); it renews at midnight UTC",
                    super::spend::format_usd(budget)
                ),
            )
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    /// Always `web.session`.
    pub object: &'static str,
    /// This browser's end-user id.
    pub user: String,
    /// `open`, `invite` or `key`.
    pub access: &'static str,
    /// Whether this session may chat (false until an invite code was entered).
    pub authorized: bool,
    /// The UI build (crate version + content hash); the service worker compares it.
    pub ui_version: &'static str,
    pub features: Features,
    pub limits: Limits,
    /// The enabled assistants people can pick.
    pub assistants: Vec<AssistantChoice>,
    /// Model names this server serves (for the model picker when there are no assistants).
    pub models: Vec<String>,
    pub default_model: String,
    pub transcription_model: String,
}

/// An assistant as the chat shows it (never its prompt).
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantChoice {
    pub slug: String,
    pub name: String,
    pub description: String,
}

/// What this server offers the chat; the UI hides what is missing.
#[derive(Debug, Serialize, ToSchema)]
pub struct Features {
    /// Server-side conversations (`/web/api/conversations`); else they live in the browser.
    pub conversations: bool,
    pub assistants: bool,
    pub ratings: bool,
    pub transcription: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Limits {
    pub max_image_bytes: usize,
    pub max_audio_bytes: usize,
    pub max_message_chars: usize,
    /// 0: no budget.
    pub daily_budget_micros: i64,
    pub high_usage_warning_micros: i64,
}

/// Starts (or continues) this browser's chat session and says what the chat can do.
#[utoipa::path(get, path = "/web/api/session", tag = "web",
    responses((status = 200, body = SessionInfo, description = "Sets `gh_chat` (HttpOnly, SameSite=Strict) on the first visit")))]
pub async fn session(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !state.config.web.enabled {
        return ApiError::new(ErrorCode::NotFound, "The web UI is disabled on this server")
            .into_response();
    }
    let existing = cookies::get(&headers, COOKIE).and_then(|v| state.web.chat.check(v));
    let fresh = existing.is_none();
    let user = existing.unwrap_or_else(|| ChatUser {
        id: random_id(),
        invited: false,
    });
    let web = &state.config.web;
    let mut models: Vec<String> = state
        .router
        .listing()
        .iter()
        .map(|(alias, _)| alias.clone())
        .collect();
    models.sort();
    models.dedup();
    let assistants = match state.store.assistants().await {
        Ok(rows) => rows
            .into_iter()
            .filter_map(|r| serde_json::from_str::<AssistantSpec>(&r.spec).ok())
            .filter(|a| a.enabled)
            .map(|a| AssistantChoice {
                slug: a.slug,
                name: a.name,
                description: a.description,
            })
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "could not list assistants for the chat");
            Vec::new()
        }
    };
    let info = SessionInfo {
        object: "web.session",
        user: user.end_user(),
        access: web.chat_access.as_str(),
        authorized: match web.chat_access {
            ChatAccess::Open => true,
            ChatAccess::Invite => user.invited,
            ChatAccess::Key => presented_key_in(&headers)
                .is_some_and(|k| state.access.keys.authenticate(k, now_ms()).is_ok()),
        },
        ui_version: super::assets::UI_VERSION,
        features: Features {
            conversations: true,
            assistants: true,
            ratings: true,
            transcription: true,
        },
        limits: Limits {
            max_image_bytes: state.config.validation.max_image_bytes,
            max_audio_bytes: state.config.server.max_audio_bytes,
            max_message_chars: state.config.validation.max_message_chars,
            daily_budget_micros: web.user_daily_budget_micros,
            high_usage_warning_micros: web.high_usage_warning_micros,
        },
        assistants,
        models,
        default_model: state.config.default_model.clone(),
        transcription_model: web.transcription_model.clone(),
    };
    let mut resp = Json(info).into_response();
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    if fresh {
        set_cookie(&state, &headers, &mut resp, &user);
    }
    resp
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    pub code: String,
}

/// Unlocks the chat for this browser with an invite code (`web.chat_access = "invite"`).
#[utoipa::path(post, path = "/web/api/session/invite", tag = "web", request_body = Invite,
    responses((status = 204, description = "Accepted; the session cookie now carries the invitation"),
        (status = 400, body = ErrorBody), (status = 403, description = "Wrong code, or a cross-origin request", body = ErrorBody)))]
pub async fn invite(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<Invite>,
) -> Result<Response, ApiError> {
    cookies::same_origin(&Method::POST, &headers)
        .map_err(|e| ApiError::new(ErrorCode::Forbidden, e.message()))?;
    if state.config.web.chat_access != ChatAccess::Invite {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "This chat does not use invite codes",
        ));
    }
    let code = body.code.trim();
    // Every code is compared, so the time taken does not say which one was close.
    let valid = state
        .config
        .web
        .invite_codes
        .iter()
        .fold(false, |ok, c| secrets_equal(code, c.expose_secret()) | ok);
    if !valid {
        return Err(ApiError {
            param: Some("code".into()),
            ..ApiError::new(ErrorCode::Forbidden, "That invite code is not valid")
        });
    }
    let id = cookies::get(&headers, COOKIE)
        .and_then(|v| state.web.chat.check(v))
        .map_or_else(random_id, |u| u.id);
    let user = ChatUser { id, invited: true };
    let mut resp = http::StatusCode::NO_CONTENT.into_response();
    set_cookie(&state, &headers, &mut resp, &user);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_and_cannot_be_chosen() {
        let s = ChatSessions::new(b"root");
        let u = ChatUser {
            id: "abc".into(),
            invited: true,
        };
        let v = s.cookie_value(&u);
        assert_eq!(s.check(&v), Some(u.clone()));
        assert_eq!(u.end_user(), "web:abc");
        // Bad input: another user's id in a copied cookie; an unsigned value; flags edited.
        assert_eq!(s.check(&v.replacen("abc", "abd", 1)), None);
        assert_eq!(s.check("v1.abc.i"), None);
        assert_eq!(s.check(&v.replacen(".i.", ".o.", 1)), None);
    }
}
