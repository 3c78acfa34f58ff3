//! The per-request side of caching: the client's `x-gatehouse-cache` directive, the tenant the
//! entries belong to, an optional assistant scope, and the slot through which the pipeline
//! reports what the cache did so [`header_value`] can become `x-gatehouse-cache` on the
//! response, JSON and SSE alike (the head of a stream is sent after the lookup).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::extract::FromRequestParts;
use http::HeaderValue;
use http::request::Parts;
use store::CacheStatus;

use crate::auth::Principal;
use crate::error::ApiError;

pub const HEADER: &str = "x-gatehouse-cache";

/// What the client asked of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Directive {
    /// Use the cache if the request qualifies (temperature at or below the threshold).
    #[default]
    Auto,
    /// `use`: opt in whatever the temperature.
    Use,
    /// `skip`: neither read nor write.
    Skip,
    /// `refresh`: do not read; call the provider and store the fresh answer.
    Refresh,
    /// `only`: answer from the cache or fail with 404 `cache_miss`; never call the provider.
    Only,
}

impl Directive {
    pub fn parse(value: &str) -> Option<Directive> {
        match value.trim().to_ascii_lowercase().as_str() {
            "use" => Some(Directive::Use),
            "skip" => Some(Directive::Skip),
            "refresh" => Some(Directive::Refresh),
            "only" => Some(Directive::Only),
            _ => None,
        }
    }
}

/// Who owns the entries: an API key, or everyone in open mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tenant {
    #[default]
    Anonymous,
    Key(i64),
}

impl Tenant {
    pub fn from_principal(p: &Principal) -> Tenant {
        p.key_id.map_or(Tenant::Anonymous, Tenant::Key)
    }

    /// The scope string stored with entries; `shared` when the cache is configured shared.
    pub fn scope(self, shared: bool) -> String {
        match (shared, self) {
            (true, _) => "shared".into(),
            (false, Tenant::Anonymous) => "anonymous".into(),
            (false, Tenant::Key(id)) => format!("key:{id}"),
        }
    }
}

/// Where the pipeline writes the cache outcome for the response header.
#[derive(Debug, Clone, Default)]
pub struct StatusSlot(Arc<AtomicU8>);

impl StatusSlot {
    pub fn set(&self, status: CacheStatus) {
        self.0.store(
            u8::try_from(status.as_i16()).unwrap_or(0),
            Ordering::Relaxed,
        );
    }

    pub fn get(&self) -> CacheStatus {
        CacheStatus::from_i16(i16::from(self.0.load(Ordering::Relaxed)))
            .unwrap_or(CacheStatus::None)
    }
}

/// Everything the cache needs to know about a request besides its body. Handlers get it as an
/// extractor; callers that build requests themselves (assistants) fill in the assistant scope.
#[derive(Debug, Clone, Default)]
pub struct CacheContext {
    pub tenant: Tenant,
    pub directive: Directive,
    /// The assistant the request runs as, for purges by assistant.
    pub assistant: Option<String>,
    /// The assistant's prompt version: entries of other versions never match.
    pub version: Option<String>,
    /// TTL for this request's entry (e.g. an assistant's), over the model and route TTLs.
    pub ttl: Option<Duration>,
    /// Semantic threshold for this request (e.g. an assistant's), over the model's.
    pub semantic_threshold: Option<f32>,
    pub slot: Option<StatusSlot>,
}

impl CacheContext {
    /// For calls Gatehouse makes on its own behalf (conversation turns, summaries): the cache is
    /// neither read nor written.
    pub fn internal() -> CacheContext {
        CacheContext {
            directive: Directive::Skip,
            ..CacheContext::default()
        }
    }

    pub fn report(&self, status: CacheStatus) {
        if let Some(s) = &self.slot {
            s.set(status);
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CacheContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let directive = match parts.headers.get(HEADER) {
            None => Directive::Auto,
            // Bad input: a value other than use, skip, refresh or only is a client mistake
            // worth reporting rather than silently caching (or not).
            Some(v) => v.to_str().ok().and_then(Directive::parse).ok_or_else(|| {
                ApiError::invalid(
                    HEADER,
                    "x-gatehouse-cache must be one of use, skip, refresh, only",
                )
            })?,
        };
        let tenant = parts
            .extensions
            .get::<Principal>()
            .map(Tenant::from_principal)
            .unwrap_or_default();
        Ok(CacheContext {
            tenant,
            directive,
            slot: parts.extensions.get::<StatusSlot>().cloned(),
            ..CacheContext::default()
        })
    }
}

/// The `x-gatehouse-cache` response header for what the pipeline put in a request's
/// [`StatusSlot`] (`hit`, `miss`, `semantic-hit` or `skip`; none when the cache did not apply).
/// The slot is given to each request, and the header set, by the outermost layer.
pub fn header_value(status: CacheStatus) -> Option<HeaderValue> {
    let v = match status {
        CacheStatus::None => return None,
        CacheStatus::Miss => "miss",
        CacheStatus::Hit => "hit",
        CacheStatus::SemanticHit => "semantic-hit",
        CacheStatus::Skip => "skip",
    };
    Some(HeaderValue::from_static(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_and_tenants() {
        assert_eq!(Directive::parse("ONLY"), Some(Directive::Only));
        assert_eq!(Directive::parse(" skip "), Some(Directive::Skip));
        // Bad input: unknown or empty values.
        assert_eq!(Directive::parse("no-cache"), None);
        assert_eq!(Directive::parse(""), None);
        assert_eq!(Tenant::Key(7).scope(false), "key:7");
        assert_eq!(Tenant::Anonymous.scope(false), "anonymous");
        assert_eq!(Tenant::Key(7).scope(true), "shared");
        let p = Principal {
            key_id: Some(3),
            ..Principal::default()
        };
        assert_eq!(Tenant::from_principal(&p), Tenant::Key(3));
        assert_eq!(
            Tenant::from_principal(&Principal::anonymous()),
            Tenant::Anonymous
        );
        let slot = StatusSlot::default();
        assert_eq!(slot.get(), CacheStatus::None);
        slot.set(CacheStatus::SemanticHit);
        assert_eq!(slot.get(), CacheStatus::SemanticHit);
    }
}
