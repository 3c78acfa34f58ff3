//! Anthropic SSE → canonical chunks, one event at a time: text deltas become content deltas,
//! each `tool_use` block becomes a tool call whose `input_json_delta` fragments stream as
//! argument fragments under its own tool-call index, `message_delta` gives the finish reason
//! and `message_stop` the usage chunk. Event types added to the API later are skipped, as the
//! reference asks clients to do.

use std::collections::HashMap;

use serde_json::Value;

use super::convert::{JSON_TOOL, finish_reason, usage};
use super::wire::{Block, BlockDelta, StreamEvent, WireUsage};
use super::{error_from_body, wire};
use crate::event_stream::{Out, Translate};
use crate::openai::relayed_message;
use crate::sse::SseEvent;
use crate::{
    ChatChunk, ChunkChoice, Delta, FinishReason, FunctionCallDelta, ProviderError,
    ProviderErrorKind, Role, ToolCallDelta, ToolKind, UsageField, unix_now,
};

const KNOWN_EVENTS: [&str; 8] = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
];

/// What a content block index of the upstream stream carries.
#[derive(Debug, Clone, Copy)]
enum BlockKind {
    Text,
    /// A tool call, with its index among the message's tool calls.
    Tool(u32),
    /// The JSON-mode answer tool: its input streams as content.
    JsonAnswer,
    /// Thinking and other blocks that are not translated.
    Skipped,
}

pub(crate) struct Translator {
    json_mode: bool,
    template: ChatChunk,
    usage: WireUsage,
    blocks: HashMap<u32, BlockKind>,
    tools: u32,
    done: bool,
}

impl Translator {
    pub(crate) fn new(json_mode: bool) -> Translator {
        Translator {
            json_mode,
            template: ChatChunk {
                id: "".into(),
                object: "chat.completion.chunk".into(),
                created: unix_now(),
                model: "".into(),
                choices: Vec::new(),
                usage: UsageField::Null,
                system_fingerprint: None,
                raw: None,
            },
            usage: WireUsage::default(),
            blocks: HashMap::new(),
            tools: 0,
            done: false,
        }
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<FinishReason>) -> ChatChunk {
        let mut c = self.template.clone();
        c.choices.push(ChunkChoice {
            index: 0,
            delta,
            finish_reason,
            logprobs: None,
        });
        c
    }

    fn content(&self, text: String) -> ChatChunk {
        self.chunk(
            Delta {
                content: Some(text),
                ..Delta::default()
            },
            None,
        )
    }

    fn tool_delta(&self, call: ToolCallDelta) -> ChatChunk {
        self.chunk(
            Delta {
                tool_calls: Some(vec![call]),
                ..Delta::default()
            },
            None,
        )
    }

    fn handle(&mut self, ev: StreamEvent, out: &mut Out) {
        match ev {
            StreamEvent::MessageStart { message } => {
                self.template.id = message.id.into();
                self.template.model = message.model.into();
                self.usage = message.usage;
                out.push_back(Ok(self.chunk(
                    Delta {
                        role: Some(Role::Assistant),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                )));
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                let kind = match content_block {
                    Block::Text { text, .. } => {
                        if !text.is_empty() {
                            out.push_back(Ok(self.content(text)));
                        }
                        BlockKind::Text
                    }
                    Block::ToolUse { name, .. } if self.json_mode && name == JSON_TOOL => {
                        BlockKind::JsonAnswer
                    }
                    Block::ToolUse { id, name, .. } => {
                        let n = self.tools;
                        self.tools += 1;
                        out.push_back(Ok(self.tool_delta(ToolCallDelta {
                            index: n,
                            id: Some(id),
                            kind: Some(ToolKind::Function),
                            function: Some(FunctionCallDelta {
                                name: Some(name),
                                arguments: Some(String::new()),
                            }),
                        })));
                        BlockKind::Tool(n)
                    }
                    _ => BlockKind::Skipped,
                };
                self.blocks.insert(index, kind);
            }
            StreamEvent::ContentBlockDelta { index, delta } => {
                let kind = self.blocks.get(&index).copied().unwrap_or(BlockKind::Text);
                match (kind, delta) {
                    (BlockKind::Skipped, _) => {}
                    // Anthropic opens every tool input with an empty fragment.
                    (_, BlockDelta::InputJsonDelta { partial_json }) if partial_json.is_empty() => {
                    }
                    (_, BlockDelta::TextDelta { text }) => out.push_back(Ok(self.content(text))),
                    (BlockKind::Tool(n), BlockDelta::InputJsonDelta { partial_json }) => {
                        out.push_back(Ok(self.tool_delta(ToolCallDelta {
                            index: n,
                            function: Some(FunctionCallDelta {
                                name: None,
                                arguments: Some(partial_json),
                            }),
                            ..ToolCallDelta::default()
                        })));
                    }
                    (BlockKind::JsonAnswer, BlockDelta::InputJsonDelta { partial_json }) => {
                        out.push_back(Ok(self.content(partial_json)));
                    }
                    _ => {}
                }
            }
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping => {}
            StreamEvent::MessageDelta { delta, usage: u } => {
                self.usage.output_tokens = u.output_tokens;
                if let Some(v) = u.input_tokens {
                    self.usage.input_tokens = v;
                }
                if u.cache_creation_input_tokens.is_some() {
                    self.usage.cache_creation_input_tokens = u.cache_creation_input_tokens;
                }
                if u.cache_read_input_tokens.is_some() {
                    self.usage.cache_read_input_tokens = u.cache_read_input_tokens;
                }
                if let Some(r) = delta.stop_reason {
                    let finish = match finish_reason(r) {
                        FinishReason::ToolCalls if self.tools == 0 => FinishReason::Stop,
                        f => f,
                    };
                    out.push_back(Ok(self.chunk(Delta::default(), Some(finish))));
                }
            }
            StreamEvent::MessageStop => {
                let mut c = self.template.clone();
                c.usage = UsageField::Present(usage(&self.usage));
                out.push_back(Ok(c));
                self.done = true;
            }
            StreamEvent::Error { error } => {
                let mut e = error_from_body(None, &error);
                if e.kind == ProviderErrorKind::Unavailable {
                    e.kind = ProviderErrorKind::StreamInterrupted;
                    e.message = relayed_message(e.kind, None);
                }
                out.push_back(Err(e));
            }
        }
    }
}

impl Translate for Translator {
    fn event(&mut self, ev: SseEvent, out: &mut Out) {
        let Ok(value) = serde_json::from_str::<Value>(&ev.data) else {
            out.push_back(Err(invalid()));
            return;
        };
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
        if !KNOWN_EVENTS.contains(&kind) {
            return;
        }
        match serde_json::from_value::<wire::StreamEvent>(value) {
            Ok(ev) => self.handle(ev, out),
            Err(_) => out.push_back(Err(invalid())),
        }
    }

    fn done(&self) -> bool {
        self.done
    }
}

fn invalid() -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Decode,
        "upstream sent an invalid stream event",
    )
}
