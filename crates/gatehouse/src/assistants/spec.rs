//! `AssistantSpec`: what an operator writes to define an assistant, stored verbatim (as JSON) in
//! each version, exported and imported as is, and checked here before it is saved.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::lint;
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::routing::tiers::TierRequest;

/// Clients reach assistant `x` with `"model": "assistant/x"`.
pub const MODEL_PREFIX: &str = "assistant/";

/// Slugs the admin routes use as path words.
const RESERVED_SLUGS: [&str; 2] = ["export", "import"];

/// What to do when a ceiling is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CeilingAction {
    /// Answer 429 `assistant_ceiling_reached` (with `x-should-retry: false`).
    #[default]
    Refuse,
    /// Serve the request with `downgrade_model` instead.
    Downgrade,
}

/// An assistant's definition. Money is integer micro-USD ($1 = 1,000,000).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistantSpec {
    /// 1–64 of `a-z`, `0-9`, `-`, `_`; clients use `"model": "assistant/<slug>"`. Optional in
    /// `PUT /admin/api/assistants/{slug}` (the path names it).
    #[serde(default)]
    pub slug: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Placed first in every request, before any system message of the client.
    #[serde(default)]
    pub system_prompt: String,
    /// A model alias, `<provider>/<model>`, or a tier (`tier:auto`, `tier:0`…`tier:3`).
    pub model: String,
    /// Applied to every request, whatever the client sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Cap on output tokens; a client may ask for fewer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The cheap model that summarises long conversations; default `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_model: Option<String>,
    /// Token budget of a conversation's requests; default the model's `context_window`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// Cost ceiling of one conversation, micro-USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_ceiling_micros: Option<i64>,
    /// Cost ceiling of the assistant per UTC day, micro-USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_ceiling_micros: Option<i64>,
    #[serde(default)]
    pub at_ceiling: CeilingAction,
    /// The cheaper model used at a ceiling when `at_ceiling` is `downgrade`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downgrade_model: Option<String>,
    /// A disabled assistant answers 403 `forbidden`.
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

impl AssistantSpec {
    /// The canonical JSON stored in a version (fields in declaration order, so equal specs
    /// are equal strings).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Checks every field, naming it in `param` (prefixed by `at`, e.g. `assistants[2].`).
    /// Prompts over the token limit fail unless `force`.
    pub fn validate(&self, state: &AppState, at: &str, force: bool) -> Result<(), ApiError> {
        let field = |name: &str| format!("{at}{name}");
        check_slug(&self.slug).map_err(|m| ApiError::invalid(field("slug"), m))?;
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err(ApiError::invalid(
                field("name"),
                "`name` must be 1 to 200 characters",
            ));
        }
        if self.description.chars().count() > 2_000 {
            return Err(ApiError::invalid(
                field("description"),
                "`description` is at most 2,000 characters",
            ));
        }
        check_model(state, &field("model"), &self.model)?;
        if let Some(m) = &self.summary_model {
            check_model(state, &field("summary_model"), m)?;
        }
        check_sampling(self.temperature, self.top_p, at)?;
        if self.max_tokens == Some(0) {
            return Err(ApiError::invalid(
                field("max_tokens"),
                "`max_tokens` must be at least 1",
            ));
        }
        if self.context_window.is_some_and(|w| w < 256) {
            return Err(ApiError::invalid(
                field("context_window"),
                "`context_window` must be at least 256 tokens",
            ));
        }
        for (name, v) in [
            (
                "conversation_ceiling_micros",
                self.conversation_ceiling_micros,
            ),
            ("daily_ceiling_micros", self.daily_ceiling_micros),
        ] {
            if v.is_some_and(|v| v < 1) {
                return Err(ApiError::invalid(
                    field(name),
                    format!("`{name}` must be at least 1 (micro-USD); leave it out for no ceiling"),
                ));
            }
        }
        match (&self.at_ceiling, &self.downgrade_model) {
            (CeilingAction::Downgrade, None) => {
                return Err(ApiError::invalid(
                    field("downgrade_model"),
                    "`at_ceiling = \"downgrade\"` needs a `downgrade_model`",
                ));
            }
            (_, Some(m)) => check_model(state, &field("downgrade_model"), m)?,
            (CeilingAction::Refuse, None) => {}
        }
        check_prompt(
            state,
            &field("system_prompt"),
            &self.system_prompt,
            &self.model,
            force,
        )
    }
}

fn check_slug(slug: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        return Err("`slug` must be 1 to 64 characters of a-z, 0-9, '-' and '_'".into());
    }
    if RESERVED_SLUGS.contains(&slug) {
        return Err(format!("`{slug}` is reserved; choose another slug"));
    }
    Ok(())
}

/// The model must be one this gateway can serve (and not another assistant).
pub fn check_model(state: &AppState, field: &str, model: &str) -> Result<(), ApiError> {
    if model.starts_with(MODEL_PREFIX) {
        return Err(ApiError::invalid(
            field,
            "an assistant cannot use another assistant as its model",
        ));
    }
    let result = match TierRequest::parse(model) {
        Some(tier) => tier.map(|_| ()),
        None => state.router.resolve(model).map(|_| ()),
    };
    result.map_err(|e| ApiError::invalid(field, e.message))
}

/// Temperature 0–2 and top_p 0–1, as for chat requests.
pub fn check_sampling(
    temperature: Option<f64>,
    top_p: Option<f64>,
    at: &str,
) -> Result<(), ApiError> {
    if temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(ApiError::invalid(
            format!("{at}temperature"),
            "`temperature` must be between 0 and 2",
        ));
    }
    if top_p.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
        return Err(ApiError::invalid(
            format!("{at}top_p"),
            "`top_p` must be between 0 and 1",
        ));
    }
    Ok(())
}

/// A prompt over the configured token limit (counted with `model`'s encoding) fails with 400
/// `prompt_too_long` unless `force`.
pub fn check_prompt(
    state: &AppState,
    field: &str,
    prompt: &str,
    model: &str,
    force: bool,
) -> Result<(), ApiError> {
    let limit = state.config.assistants.prompt_token_limit;
    let count = lint::count_prompt(&state.config, prompt, model);
    if count.tokens > limit && !force {
        return Err(ApiError {
            param: Some(field.to_owned()),
            ..ApiError::new(
                ErrorCode::PromptTooLong,
                format!(
                    "`{field}` is {} tokens ({} encoding of `{model}`); the limit is {limit}. \
                     Shorten it, or save it anyway with `?force=true`",
                    count.tokens, count.encoding
                ),
            )
        });
    }
    Ok(())
}
