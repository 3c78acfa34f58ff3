//! What a cached response is keyed on. The exact key is a SHA-256 of the normalized request:
//! its scope (tenant, resolved model alias, assistant and version), the messages, and only the
//! parameters that change the output, with absent values replaced by the providers' defaults.
//! `user`, `stream`, `stream_options`, `metadata`, `store` and `service_tier` are left out.
//!
//! The semantic cache searches within a *partition*: the same hash over everything except the
//! last user turn, so only that turn may differ between a question and its neighbour, and a new
//! system prompt (a new assistant version) starts a new partition.

use std::collections::BTreeMap;

use providers::{ChatRequest, Message, Role, Stop, Tool};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::cache::SemanticPrompt;

/// Top-level request fields that do not change what the model answers.
const IGNORED_EXTRA: &[&str] = &["metadata", "store", "service_tier"];

/// Bump when the normalization changes, so old entries stop matching.
const FORMAT: u32 = 1;

/// Whose entries these are, how they are scoped and what they are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `key:<id>`, `anonymous` (open mode) or `shared` (when configured).
    pub tenant: String,
    /// The resolved model alias.
    pub model: String,
    /// The assistant the request runs as ("" when none).
    pub assistant: String,
    /// Its version ("" when none): a new version never matches an old one's entries.
    pub version: String,
}

#[derive(Serialize)]
struct Normalized<'a> {
    format: u32,
    tenant: &'a str,
    model: &'a str,
    assistant: &'a str,
    version: &'a str,
    messages: &'a [Message],
    temperature: f64,
    top_p: f64,
    max_output: Option<u32>,
    stop: Option<Vec<String>>,
    seed: Option<i64>,
    n: u32,
    tools: Option<&'a [Tool]>,
    tool_choice: Option<&'a Value>,
    response_format: Option<&'a Value>,
    extra: BTreeMap<&'a str, &'a Value>,
}

fn normalized<'a>(
    scope: &'a Scope,
    req: &'a ChatRequest,
    messages: &'a [Message],
) -> Normalized<'a> {
    Normalized {
        format: FORMAT,
        tenant: &scope.tenant,
        model: &scope.model,
        assistant: &scope.assistant,
        version: &scope.version,
        messages,
        temperature: req.temperature.unwrap_or(1.0),
        top_p: req.top_p.unwrap_or(1.0),
        max_output: req.requested_max_output(),
        stop: req.stop.as_ref().map(Stop::to_vec),
        seed: req.seed,
        n: req.n.unwrap_or(1),
        tools: req.tools.as_deref().filter(|t| !t.is_empty()),
        tool_choice: req.tool_choice.as_ref(),
        response_format: req.response_format.as_ref(),
        extra: req
            .extra
            .iter()
            .filter(|(k, _)| !IGNORED_EXTRA.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v))
            .collect(),
    }
}

fn hash(n: &Normalized<'_>) -> String {
    let mut h = Sha256::new();
    // Serializing plain structs, strings and JSON values cannot fail.
    let _ = serde_json::to_writer(HashWriter(&mut h), n);
    hex(&h.finalize())
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The exact-cache key of a request: 64 hex characters.
pub fn exact_key(scope: &Scope, req: &ChatRequest) -> String {
    hash(&normalized(scope, req, &req.messages))
}

/// A short, glob-safe tag of a scope value for Redis key names (so purges can match on it).
pub fn tag(value: &str) -> String {
    hex(&Sha256::digest(value.as_bytes())[..8])
}

/// The index of the last user message, if any.
fn last_user(req: &ChatRequest) -> Option<usize> {
    req.messages.iter().rposition(|m| m.role == Role::User)
}

fn text(m: &Message) -> String {
    m.content
        .as_ref()
        .map(providers::MessageContent::joined_text)
        .unwrap_or_default()
}

/// The semantic partition and the text to embed, or `None` when the request has no user turn
/// or its last user turn has no text.
pub fn semantic_parts(
    scope: &Scope,
    req: &ChatRequest,
    prompt: SemanticPrompt,
) -> Option<(String, String)> {
    let last = last_user(req)?;
    let question = text(&req.messages[last]);
    if question.trim().is_empty() {
        return None;
    }
    let mut rest = req.messages.clone();
    rest.remove(last);
    let partition = hash(&normalized(scope, req, &rest));
    let embed = match prompt {
        SemanticPrompt::LastUser => question,
        SemanticPrompt::SystemAndLastUser => {
            let system: Vec<String> = req
                .messages
                .iter()
                .filter(|m| matches!(m.role, Role::System | Role::Developer))
                .map(text)
                .collect();
            if system.is_empty() {
                question
            } else {
                format!("{}\n\n{question}", system.join("\n"))
            }
        }
    };
    Some((partition, embed))
}

/// Tool definitions, tool calls or tool results anywhere in the request.
pub fn uses_tools(req: &ChatRequest) -> bool {
    req.tools.as_ref().is_some_and(|t| !t.is_empty())
        || req.messages.iter().any(|m| {
            matches!(m.role, Role::Tool | Role::Function)
                || m.tool_calls.as_ref().is_some_and(|c| !c.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(tenant: &str) -> Scope {
        Scope {
            tenant: tenant.into(),
            model: "m1".into(),
            assistant: String::new(),
            version: String::new(),
        }
    }

    fn req(json: Value) -> ChatRequest {
        serde_json::from_value(json).unwrap()
    }

    fn base() -> Value {
        serde_json::json!({"model": "m1", "temperature": 0,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]})
    }

    fn with(field: &str, v: Value) -> ChatRequest {
        let mut b = base();
        b[field] = v;
        req(b)
    }

    #[test]
    fn what_is_part_of_the_key() {
        let s = scope("anonymous");
        let k = exact_key(&s, &req(base()));
        assert_eq!(k.len(), 64);
        // Not part of the key: the end user, streaming, stream options, metadata, the alias
        // the client typed (the scope carries the resolved one).
        for (field, v) in [
            ("user", serde_json::json!("alice")),
            ("stream", serde_json::json!(true)),
            ("stream_options", serde_json::json!({"include_usage": true})),
            ("metadata", serde_json::json!({"task": "x"})),
            ("model", serde_json::json!("default")),
        ] {
            assert_eq!(exact_key(&s, &with(field, v)), k, "{field} changed the key");
        }
        // Absent values equal the providers' defaults.
        assert_eq!(exact_key(&s, &with("top_p", serde_json::json!(1.0))), k);
        assert_eq!(exact_key(&s, &with("n", serde_json::json!(1))), k);
        // max_tokens and max_completion_tokens are one limit.
        assert_eq!(
            exact_key(&s, &with("max_tokens", serde_json::json!(50))),
            exact_key(&s, &with("max_completion_tokens", serde_json::json!(50)))
        );
        // Part of the key: every parameter that changes the output.
        for (field, v) in [
            ("temperature", serde_json::json!(0.2)),
            ("top_p", serde_json::json!(0.5)),
            ("max_tokens", serde_json::json!(50)),
            ("stop", serde_json::json!(["\n"])),
            ("seed", serde_json::json!(7)),
            ("n", serde_json::json!(2)),
            (
                "response_format",
                serde_json::json!({"type": "json_object"}),
            ),
            ("tool_choice", serde_json::json!("none")),
            ("frequency_penalty", serde_json::json!(0.5)),
            ("logit_bias", serde_json::json!({"50256": -100})),
        ] {
            assert_ne!(
                exact_key(&s, &with(field, v)),
                k,
                "{field} did not change the key"
            );
        }
        let mut other = base();
        other["messages"][1]["content"] = "What is 2+3?".into();
        assert_ne!(exact_key(&s, &req(other)), k);
        // Scope: tenant, model, assistant, version.
        assert_ne!(exact_key(&scope("key:1"), &req(base())), k);
        let mut v2 = scope("anonymous");
        v2.version = "v2".into();
        assert_ne!(exact_key(&v2, &req(base())), k);
    }

    #[test]
    fn temperature_absent_is_one() {
        let s = scope("anonymous");
        let mut b = base();
        b.as_object_mut().unwrap().remove("temperature");
        assert_eq!(
            exact_key(&s, &req(b)),
            exact_key(&s, &with("temperature", serde_json::json!(1.0)))
        );
    }

    #[test]
    fn semantic_partition_ignores_only_the_last_user_turn() {
        let s = scope("anonymous");
        let (p1, t1) = semantic_parts(&s, &req(base()), SemanticPrompt::SystemAndLastUser).unwrap();
        assert_eq!(t1, "Be brief.\n\nWhat is 2+2?");
        let mut b = base();
        b["messages"][1]["content"] = "what's 2 + 2".into();
        let (p2, t2) = semantic_parts(&s, &req(b.clone()), SemanticPrompt::LastUser).unwrap();
        assert_eq!((p2.as_str(), t2.as_str()), (p1.as_str(), "what's 2 + 2"));
        // A new system prompt is a new partition.
        b["messages"][0]["content"] = "Be verbose.".into();
        let (p3, _) = semantic_parts(&s, &req(b), SemanticPrompt::LastUser).unwrap();
        assert_ne!(p3, p1);
        // Bad input: no user turn at all, or an empty one.
        let none = req(
            serde_json::json!({"model": "m1", "messages": [{"role": "system", "content": "x"}]}),
        );
        assert!(semantic_parts(&s, &none, SemanticPrompt::LastUser).is_none());
        let empty =
            req(serde_json::json!({"model": "m1", "messages": [{"role": "user", "content": " "}]}));
        assert!(semantic_parts(&s, &empty, SemanticPrompt::LastUser).is_none());
    }

    #[test]
    fn tools_are_detected() {
        assert!(!uses_tools(&req(base())));
        let tools = with(
            "tools",
            serde_json::json!([{"type": "function", "function": {"name": "f"}}]),
        );
        assert!(uses_tools(&tools));
        let result = req(serde_json::json!({"model": "m1", "messages": [
            {"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
            {"role": "user", "content": "y"}]}));
        assert!(uses_tools(&result));
        assert_eq!(tag("m1").len(), 16);
    }
}
