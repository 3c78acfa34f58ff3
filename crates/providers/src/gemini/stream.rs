//! Gemini SSE (`streamGenerateContent?alt=sse`) → canonical chunks. Each event is a whole
//! `GenerateContentResponse` holding the next piece of every candidate: its text becomes a
//! content delta, each function call a complete tool-call delta (Gemini does not fragment
//! arguments), its `finishReason` a finish chunk. Gemini sends no end marker: the stream is
//! complete when the bytes end after a finish reason, and the last `usageMetadata` becomes the
//! usage chunk then.

use std::collections::HashMap;

use serde_json::Value;

use super::convert::{blocked, finish_reason, split_parts, usage};
use super::error_from_body;
use super::wire::{ErrorBody, GenerateContentResponse, UsageMetadata};
use crate::event_stream::{Out, Translate};
use crate::openai::relayed_message;
use crate::sse::SseEvent;
use crate::{
    ChatChunk, ChunkChoice, Delta, FinishReason, FunctionCallDelta, ProviderError,
    ProviderErrorKind, Role, ToolCallDelta, UsageField, unix_now,
};

pub(crate) struct Translator {
    model: String,
    template: Option<ChatChunk>,
    usage: Option<UsageMetadata>,
    /// Tool calls so far, per candidate.
    calls: HashMap<u32, usize>,
    finished: bool,
}

impl Translator {
    pub(crate) fn new(model: &str) -> Translator {
        Translator {
            model: model.into(),
            template: None,
            usage: None,
            calls: HashMap::new(),
            finished: false,
        }
    }

    fn chunk(&self, index: u32, delta: Delta, finish_reason: Option<FinishReason>) -> ChatChunk {
        let mut c = self.template.clone().unwrap_or_else(|| empty_chunk(""));
        c.choices.push(ChunkChoice {
            index,
            delta,
            finish_reason,
            logprobs: None,
        });
        c
    }

    fn response(&mut self, resp: GenerateContentResponse, out: &mut Out) {
        if resp.candidates.is_empty()
            && let Some(e) = blocked(&resp)
        {
            out.push_back(Err(e));
            return;
        }
        if self.template.is_none() {
            let mut t = empty_chunk(resp.model_version.as_deref().unwrap_or(&self.model));
            t.id = resp
                .response_id
                .clone()
                .map_or_else(|| "gemini-response".into(), Into::into);
            self.template = Some(t);
            let role = Delta {
                role: Some(Role::Assistant),
                content: Some(String::new()),
                ..Delta::default()
            };
            out.push_back(Ok(self.chunk(0, role, None)));
        }
        if let Some(u) = resp.usage_metadata {
            self.usage = Some(u);
        }
        for (cand, n) in resp.candidates.iter().zip(0u32..) {
            let index = cand.index.unwrap_or(n);
            let first = self.calls.get(&index).copied().unwrap_or(0);
            let parts = cand.content.as_ref().map_or(&[][..], |c| &c.parts[..]);
            let (text, calls) = split_parts(parts, first);
            if !text.is_empty() {
                let d = Delta {
                    content: Some(text),
                    ..Delta::default()
                };
                out.push_back(Ok(self.chunk(index, d, None)));
            }
            if !calls.is_empty() {
                let deltas = calls
                    .into_iter()
                    .zip(first..)
                    .map(|(c, i)| ToolCallDelta {
                        index: u32::try_from(i).unwrap_or(u32::MAX),
                        id: Some(c.id),
                        kind: Some(c.kind),
                        function: Some(FunctionCallDelta {
                            name: Some(c.function.name),
                            arguments: Some(c.function.arguments),
                        }),
                    })
                    .collect::<Vec<_>>();
                self.calls.insert(index, first + deltas.len());
                let d = Delta {
                    tool_calls: Some(deltas),
                    ..Delta::default()
                };
                out.push_back(Ok(self.chunk(index, d, None)));
            }
            if let Some(r) = cand.finish_reason {
                let has_calls = self.calls.get(&index).is_some_and(|n| *n > 0);
                let f = finish_reason(r, has_calls);
                out.push_back(Ok(self.chunk(index, Delta::default(), Some(f))));
                self.finished = true;
            }
        }
    }
}

fn empty_chunk(model: &str) -> ChatChunk {
    ChatChunk {
        id: "".into(),
        object: "chat.completion.chunk".into(),
        created: unix_now(),
        model: model.into(),
        choices: Vec::new(),
        usage: UsageField::Null,
        system_fingerprint: None,
        raw: None,
    }
}

impl Translate for Translator {
    fn event(&mut self, ev: SseEvent, out: &mut Out) {
        let Ok(value) = serde_json::from_str::<Value>(&ev.data) else {
            out.push_back(Err(invalid()));
            return;
        };
        if value.get("error").is_some() {
            let e = match serde_json::from_value::<ErrorBody>(value) {
                Ok(b) => {
                    let mut e = error_from_body(None, &b.error);
                    if e.kind == ProviderErrorKind::Unavailable {
                        e.kind = ProviderErrorKind::StreamInterrupted;
                        e.message = relayed_message(e.kind, None);
                    }
                    e
                }
                Err(_) => invalid(),
            };
            out.push_back(Err(e));
            return;
        }
        match serde_json::from_value::<GenerateContentResponse>(value) {
            Ok(resp) => self.response(resp, out),
            Err(_) => out.push_back(Err(invalid())),
        }
    }

    fn done(&self) -> bool {
        false
    }

    fn end(&mut self, out: &mut Out) -> bool {
        if !self.finished {
            return false;
        }
        if let Some(u) = &self.usage {
            let mut c = self
                .template
                .clone()
                .unwrap_or_else(|| empty_chunk(&self.model));
            c.usage = UsageField::Present(usage(u));
            out.push_back(Ok(c));
        }
        true
    }
}

fn invalid() -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Decode,
        "upstream sent an invalid stream event",
    )
}
