//! Prompt lint: the token count of every assistant's system prompt and of every variant prompt
//! of its live experiments, with the tiktoken encoding of the model that will read it, against
//! the limit (`[assistants] prompt_token_limit`, 2,000 by default). `gatehouse lint-prompts`
//! prints the report and exits 1 when any prompt is over, so CI can gate on it.

use std::fmt::Write as _;

use store::Store;
use tiktoken_rs::CoreBPE;
use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};

use super::spec::AssistantSpec;
use crate::config::Config;
use crate::experiments::VariantSpec;
use crate::usage::now_ms;

/// Tokens of one prompt and the encoding that counted them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptCount {
    pub tokens: u64,
    pub encoding: &'static str,
}

/// The encoding of an upstream model name; models tiktoken does not know (local models, the
/// mock) are counted with o200k, the encoding of current OpenAI models.
fn encoding(upstream_model: &str) -> (&'static CoreBPE, &'static str) {
    match get_tokenizer(upstream_model) {
        Some(Tokenizer::Cl100kBase) => (tiktoken_rs::cl100k_base_singleton(), "cl100k_base"),
        Some(Tokenizer::P50kBase) => (tiktoken_rs::p50k_base_singleton(), "p50k_base"),
        Some(Tokenizer::P50kEdit) => (tiktoken_rs::p50k_edit_singleton(), "p50k_edit"),
        Some(Tokenizer::R50kBase | Tokenizer::Gpt2) => {
            (tiktoken_rs::r50k_base_singleton(), "r50k_base")
        }
        _ => (tiktoken_rs::o200k_base_singleton(), "o200k_base"),
    }
}

/// The upstream model behind a model name as an assistant writes it: a declared alias's
/// first deployment, or the part after `<provider>/`.
fn upstream_of<'a>(config: &'a Config, model: &'a str) -> &'a str {
    config.models.iter().find(|m| m.alias == model).map_or_else(
        || model.split_once('/').map_or(model, |(_, m)| m),
        |m| m.upstream_model.as_str(),
    )
}

pub fn count_prompt(config: &Config, prompt: &str, model: &str) -> PromptCount {
    let (bpe, name) = encoding(upstream_of(config, model));
    PromptCount {
        tokens: bpe.encode_ordinary(prompt).len() as u64,
        encoding: name,
    }
}

/// One linted prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintLine {
    /// `support` or `support` experiment 3 variant `B`.
    pub what: String,
    pub model: String,
    pub count: PromptCount,
    pub over: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintReport {
    pub limit: u64,
    pub lines: Vec<LintLine>,
}

impl LintReport {
    pub fn failures(&self) -> usize {
        self.lines.iter().filter(|l| l.over).count()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            let _ = writeln!(
                out,
                "{} {}: {} tokens ({} for `{}`)",
                if l.over { "FAIL" } else { "ok  " },
                l.what,
                l.count.tokens,
                l.count.encoding,
                l.model
            );
        }
        let n = self.failures();
        if n == 0 {
            let _ = writeln!(
                out,
                "{} prompt(s) checked; all within the limit of {} tokens",
                self.lines.len(),
                self.limit
            );
        } else {
            let _ = writeln!(
                out,
                "{n} of {} prompt(s) over the limit of {} tokens",
                self.lines.len(),
                self.limit
            );
        }
        out
    }
}

/// Lints every live assistant's prompt and the variant prompts of its experiments that have
/// not ended. A definition that no longer parses is reported as a failure.
pub async fn lint_store(
    config: &Config,
    store: &Store,
    limit: u64,
) -> Result<LintReport, store::StoreError> {
    let now = now_ms();
    let line = |what: String, model: &str, prompt: &str| {
        let count = count_prompt(config, prompt, model);
        LintLine {
            what,
            model: model.to_owned(),
            count,
            over: count.tokens > limit,
        }
    };
    let mut lines = Vec::new();
    for a in store.assistants().await? {
        let spec: AssistantSpec = match serde_json::from_str(&a.spec) {
            Ok(s) => s,
            Err(e) => {
                lines.push(LintLine {
                    what: format!(
                        "assistant `{}` v{} (unreadable definition: {e})",
                        a.slug, a.version
                    ),
                    model: String::new(),
                    count: PromptCount {
                        tokens: 0,
                        encoding: "none",
                    },
                    over: true,
                });
                continue;
            }
        };
        lines.push(line(
            format!("assistant `{}` v{}", a.slug, a.version),
            &spec.model,
            &spec.system_prompt,
        ));
        if let Some(e) = store.live_experiment(a.id, now).await? {
            let variants: Vec<VariantSpec> = serde_json::from_str(&e.variants).unwrap_or_default();
            for v in variants {
                if let Some(p) = &v.system_prompt {
                    let model = v.model.as_deref().unwrap_or(&spec.model);
                    lines.push(line(
                        format!(
                            "assistant `{}` experiment {} variant `{}`",
                            a.slug, e.id, v.name
                        ),
                        model,
                        p,
                    ));
                }
            }
        }
    }
    Ok(LintReport { limit, lines })
}
