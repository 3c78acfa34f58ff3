//! Canonical chunks → Anthropic SSE events, for the gateway's Anthropic-format endpoint. The
//! sequence is Anthropic's: `message_start`, `ping`, then per content block
//! `content_block_start` / `content_block_delta`… / `content_block_stop` (text as
//! `text_delta`, tool calls as `tool_use` blocks with `input_json_delta` fragments), then
//! `message_delta` with the stop reason and the final usage, and `message_stop`. Every event is
//! written with its `event:` line: the Anthropic SDKs ignore unnamed events.

use std::collections::HashMap;

use super::inbound::{error_body, message_id, stop_reason, wire_usage};
use super::wire::{
    Block, BlockDelta, DeltaUsage, MessageDeltaBody, MessageResponse, Role, StopReason,
    StreamEvent, WireUsage,
};
use crate::{ChatChunk, FinishReason, Usage};

/// The block currently open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u32),
    /// A tool call: (block index, tool-call index).
    Tool(u32, u32),
}

/// Stateful encoder: feed chunks with [`EventEncoder::chunk`], end with
/// [`EventEncoder::finish`] or [`EventEncoder::error`].
#[derive(Debug)]
pub struct EventEncoder {
    model: String,
    input_tokens_estimate: u64,
    started: bool,
    open: Option<Open>,
    next_block: u32,
    seen_tools: HashMap<u32, u32>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
}

impl EventEncoder {
    /// `model` names the model in `message_start`; `input_tokens_estimate` is its usage until
    /// the final usage arrives in `message_delta`.
    pub fn new(model: impl Into<String>, input_tokens_estimate: u64) -> EventEncoder {
        EventEncoder {
            model: model.into(),
            input_tokens_estimate,
            started: false,
            open: None,
            next_block: 0,
            seen_tools: HashMap::new(),
            finish: None,
            usage: None,
        }
    }

    fn start(&mut self, id: &str, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(StreamEvent::MessageStart {
            message: MessageResponse {
                id: message_id(id),
                kind: "message".into(),
                role: Role::Assistant,
                model: self.model.clone(),
                content: Vec::new(),
                stop_reason: None,
                stop_sequence: None,
                usage: WireUsage {
                    input_tokens: self.input_tokens_estimate,
                    output_tokens: 0,
                    cache_creation_input_tokens: Some(0),
                    cache_read_input_tokens: Some(0),
                },
            },
        });
        out.push(StreamEvent::Ping);
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(Open::Text(i) | Open::Tool(i, _)) = self.open.take() {
            out.push(StreamEvent::ContentBlockStop { index: i });
        }
    }

    fn text(&mut self, text: String, out: &mut Vec<StreamEvent>) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => {
                self.close(out);
                let i = self.next_block;
                self.next_block += 1;
                out.push(StreamEvent::ContentBlockStart {
                    index: i,
                    content_block: Block::text(""),
                });
                self.open = Some(Open::Text(i));
                i
            }
        };
        out.push(StreamEvent::ContentBlockDelta {
            index,
            delta: BlockDelta::TextDelta { text },
        });
    }

    /// Translate one canonical chunk into the events it implies.
    pub fn chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<StreamEvent>) {
        self.start(&chunk.id, out);
        if let Some(u) = chunk.usage.usage() {
            self.usage = Some(u);
        }
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return;
        };
        let d = &choice.delta;
        for t in [&d.content, &d.refusal].into_iter().flatten() {
            if !t.is_empty() {
                self.text(t.clone(), out);
            }
        }
        for call in d.tool_calls.iter().flatten() {
            let args = call
                .function
                .as_ref()
                .and_then(|f| f.arguments.clone())
                .unwrap_or_default();
            let block = match (self.open, self.seen_tools.get(&call.index)) {
                (Some(Open::Tool(b, t)), _) if t == call.index => b,
                (_, Some(_)) => {
                    // Anthropic blocks cannot be reopened; upstreams do not interleave calls.
                    tracing::warn!(
                        tool_call = call.index,
                        "dropped a fragment of a tool call whose block was closed"
                    );
                    continue;
                }
                (_, None) => {
                    self.close(out);
                    let b = self.next_block;
                    self.next_block += 1;
                    self.seen_tools.insert(call.index, b);
                    out.push(StreamEvent::ContentBlockStart {
                        index: b,
                        content_block: Block::ToolUse {
                            id: call.id.clone().unwrap_or_else(|| format!("toolu_{b}")),
                            name: call
                                .function
                                .as_ref()
                                .and_then(|f| f.name.clone())
                                .unwrap_or_default(),
                            input: serde_json::json!({}),
                        },
                    });
                    self.open = Some(Open::Tool(b, call.index));
                    b
                }
            };
            if !args.is_empty() {
                out.push(StreamEvent::ContentBlockDelta {
                    index: block,
                    delta: BlockDelta::InputJsonDelta { partial_json: args },
                });
            }
        }
        if let Some(f) = choice.finish_reason {
            self.finish = Some(f);
            self.close(out);
        }
    }

    /// The stream ended normally: close the open block, then `message_delta` (stop reason and
    /// final usage) and `message_stop`.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        self.start("gatehouse", out);
        self.close(out);
        let u = wire_usage(&self.usage.unwrap_or_default());
        out.push(StreamEvent::MessageDelta {
            delta: MessageDeltaBody {
                stop_reason: Some(match self.finish {
                    None => StopReason::EndTurn,
                    f => stop_reason(f),
                }),
                stop_sequence: None,
            },
            usage: DeltaUsage {
                output_tokens: u.output_tokens,
                input_tokens: Some(u.input_tokens),
                cache_creation_input_tokens: u.cache_creation_input_tokens,
                cache_read_input_tokens: u.cache_read_input_tokens,
            },
        });
        out.push(StreamEvent::MessageStop);
    }

    /// The stream failed after it started: an `error` event ends it.
    pub fn error(&mut self, status: u16, message: &str, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent::Error {
            error: error_body(status, message).error,
        });
    }
}

/// One event as SSE text: `event: <name>\ndata: <json>\n\n`.
pub fn encode_event(ev: &StreamEvent) -> String {
    let data = serde_json::to_string(ev).unwrap_or_else(|_| "{}".into());
    format!("event: {}\ndata: {data}\n\n", ev.name())
}
