//! `POST /admin/api/cache/purge`: remove cached responses by assistant, model, tenant, or all.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{PurgeFilter, Purged, Tenant};
use crate::app::AppState;
use crate::auth::AdminAuth;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::ValidJson;

/// Which entries to remove. The filters combine (all must match); with none, `all: true` is
/// required so an empty body cannot wipe the cache by accident.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// The assistant whose entries go (every version).
    #[serde(default)]
    pub assistant: Option<String>,
    /// A model alias.
    #[serde(default)]
    pub model: Option<String>,
    /// An API key id, or `"anonymous"` (open mode), or `"shared"` (a shared cache).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tenant: Option<TenantSelector>,
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TenantSelector {
    Key(i64),
    Name(String),
}

impl TenantSelector {
    fn scope(&self) -> Result<String, ApiError> {
        match self {
            TenantSelector::Key(id) => Ok(Tenant::Key(*id).scope(false)),
            TenantSelector::Name(n) if n == "anonymous" || n == "shared" => Ok(n.clone()),
            TenantSelector::Name(n) => {
                match n.strip_prefix("key:").and_then(|id| id.parse().ok()) {
                    Some(id) => Ok(Tenant::Key(id).scope(false)),
                    None => Err(ApiError::invalid(
                        "tenant",
                        "tenant is an API key id, \"anonymous\" or \"shared\"",
                    )),
                }
            }
        }
    }
}

/// Purges cached responses (exact and semantic layers). Answers how many entries went.
#[utoipa::path(
    post,
    path = "/admin/api/cache/purge",
    tag = "admin",
    request_body = PurgeRequest,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "Entries removed per layer", body = Purged),
        (status = 400, description = "No filter and no `all: true`, or a bad tenant", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 503, description = "The cache backend did not answer; the purge may be partial", body = ErrorBody),
    )
)]
pub async fn purge(
    _admin: AdminAuth,
    State(state): State<Arc<AppState>>,
    ValidJson(body): ValidJson<PurgeRequest>,
) -> Result<Json<Purged>, ApiError> {
    let filter = PurgeFilter {
        tenant: body
            .tenant
            .as_ref()
            .map(TenantSelector::scope)
            .transpose()?,
        model: body.model,
        assistant: body.assistant,
    };
    let any = filter.tenant.is_some() || filter.model.is_some() || filter.assistant.is_some();
    if any && body.all {
        // Bad input: `all` together with a filter is ambiguous.
        return Err(ApiError::invalid(
            "all",
            "`all: true` purges everything; leave out the filters or `all`",
        ));
    }
    if !any && !body.all {
        return Err(ApiError::invalid(
            "all",
            "name an assistant, model or tenant, or send `all: true`",
        ));
    }
    state.cache.purge(&filter).await.map(Json).map_err(|e| {
        tracing::error!(error = %e, "cache purge failed");
        ApiError::new(
            ErrorCode::CacheUnavailable,
            "The cache backend did not answer; the purge may be partial",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_selectors() {
        assert_eq!(TenantSelector::Key(4).scope().unwrap(), "key:4");
        assert_eq!(
            TenantSelector::Name("key:9".into()).scope().unwrap(),
            "key:9"
        );
        assert_eq!(
            TenantSelector::Name("anonymous".into()).scope().unwrap(),
            "anonymous"
        );
        // Bad input: a name that is no tenant, and a key id that is no number.
        assert!(TenantSelector::Name("bob".into()).scope().is_err());
        assert!(TenantSelector::Name("key:x".into()).scope().is_err());
    }
}
