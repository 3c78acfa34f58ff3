//! `POST /admin/api/tokens`: the token count of a prompt, for the console's live counter while
//! an assistant's system prompt is edited.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::assistants::lint::count_prompt;
use crate::auth::AdminAuth;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ValidJson;

/// Longest text counted (the counter runs on every pause in typing).
const MAX_CHARS: usize = 200_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountTokens {
    pub text: String,
    /// The model that will read it (its encoding is used); default: the default model.
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCount {
    pub tokens: u64,
    /// The tiktoken encoding that counted them.
    pub encoding: &'static str,
    /// The prompt lint limit (`assistants.prompt_token_limit`).
    pub limit: Option<u64>,
}

/// Counts the tokens of a prompt.
#[utoipa::path(post, path = "/admin/api/tokens", tag = "admin", security(("admin_key" = [])), request_body = CountTokens,
    responses((status = 200, body = TokenCount), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn count(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    ValidJson(body): ValidJson<CountTokens>,
) -> Result<Json<TokenCount>, ApiError> {
    if body.text.chars().count() > MAX_CHARS {
        return Err(ApiError::invalid(
            "text",
            format!("`text` is at most {MAX_CHARS} characters"),
        ));
    }
    let model = body
        .model
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| state.config.default_model.clone());
    let count = count_prompt(&state.config, &body.text, &model);
    Ok(Json(TokenCount {
        tokens: count.tokens,
        encoding: count.encoding,
        limit: Some(state.config.assistants.prompt_token_limit),
    }))
}
