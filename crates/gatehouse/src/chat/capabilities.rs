//! What the target model can do, checked before any provider is called: a request that needs
//! a capability the model lacks (configured per model as `capabilities`) gets a 400
//! `invalid_request` whose `param` points at the field that needs it. Also fills what a target
//! requires and the client may leave out: Anthropic's mandatory `max_tokens` becomes the
//! model's configured `max_output_tokens`.

use providers::{Capability, ChatRequest, ContentPart, MessageContent, Role};
use serde_json::Value;

use crate::error::ApiError;
use crate::routing::Target;

/// Check `req` against what `target` can do.
pub fn check(req: &ChatRequest, target: &Target) -> Result<(), ApiError> {
    let need = |c: Capability, param: &dyn Fn() -> String| {
        if target.capabilities.has(c) {
            Ok(())
        } else {
            Err(missing(target, c, param()))
        }
    };
    if req.is_stream() {
        need(Capability::Streaming, &|| "stream".into())?;
    }
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        need(Capability::Tools, &|| "tools".into())?;
    }
    if let Some(kind) = req
        .response_format
        .as_ref()
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        && kind != "text"
    {
        need(Capability::Json, &|| "response_format".into())?;
    }
    for (i, m) in req.messages.iter().enumerate() {
        if m.role == Role::Tool || m.tool_calls.as_ref().is_some_and(|c| !c.is_empty()) {
            need(Capability::Tools, &|| format!("messages[{i}]"))?;
        }
        if let Some(MessageContent::Parts(parts)) = &m.content {
            for (j, p) in parts.iter().enumerate() {
                if matches!(p, ContentPart::ImageUrl { .. }) {
                    need(Capability::Vision, &|| {
                        format!("messages[{i}].content[{j}]")
                    })?;
                }
            }
        }
    }
    Ok(())
}

/// A provider that requires an output cap (Anthropic's `max_tokens`) gets the model's
/// configured `max_output_tokens` when the client set none; without one configured the
/// adapter sends its own default.
pub fn fill_required_output_cap(req: &mut ChatRequest, target: &Target) {
    if target.provider.kind().requires_max_tokens()
        && req.requested_max_output().is_none()
        && let Some(cap) = target.max_output_tokens
    {
        req.max_tokens = Some(cap);
    }
}

/// The embeddings endpoint needs a model with the `embeddings` capability.
pub fn check_embeddings(target: &Target) -> Result<(), ApiError> {
    if target.capabilities.has(Capability::Embeddings) {
        Ok(())
    } else {
        Err(missing(target, Capability::Embeddings, "model".into()))
    }
}

fn missing(target: &Target, c: Capability, param: String) -> ApiError {
    ApiError::invalid(
        param,
        format!(
            "The model `{}` does not support {} (capability `{c}`)",
            target.alias,
            c.describe()
        ),
    )
}
