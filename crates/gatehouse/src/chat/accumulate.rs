//! Assembles the chunks of a stream into the `chat.completion` they amount to, so a streamed
//! answer can be cached and later served to plain and streaming clients alike.

use std::collections::BTreeMap;

use providers::{
    AssistantMessage, ChatChunk, ChatResponse, Choice, FinishReason, FunctionCall, Role, ToolCall,
    ToolKind, Usage,
};

#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Default)]
struct PartialChoice {
    content: Option<String>,
    refusal: Option<String>,
    calls: BTreeMap<u32, PartialCall>,
    finish_reason: Option<FinishReason>,
}

#[derive(Default)]
pub struct Accumulator {
    head: Option<(String, i64, String, Option<String>)>,
    choices: BTreeMap<u32, PartialChoice>,
}

impl Accumulator {
    pub fn push(&mut self, chunk: &ChatChunk) {
        if self.head.is_none() {
            self.head = Some((
                chunk.id.to_string(),
                chunk.created,
                chunk.model.to_string(),
                chunk.system_fingerprint.as_deref().map(str::to_owned),
            ));
        }
        for c in &chunk.choices {
            let acc = self.choices.entry(c.index).or_default();
            if let Some(text) = &c.delta.content {
                acc.content.get_or_insert_with(String::new).push_str(text);
            }
            if let Some(text) = &c.delta.refusal {
                acc.refusal.get_or_insert_with(String::new).push_str(text);
            }
            for call in c.delta.tool_calls.iter().flatten() {
                let p = acc.calls.entry(call.index).or_default();
                if let Some(id) = &call.id {
                    p.id.push_str(id);
                }
                if let Some(f) = &call.function {
                    p.name.push_str(f.name.as_deref().unwrap_or(""));
                    p.arguments.push_str(f.arguments.as_deref().unwrap_or(""));
                }
            }
            if c.finish_reason.is_some() {
                acc.finish_reason = c.finish_reason;
            }
        }
    }

    /// The whole response, with the usage the stream settled on; `None` if nothing came.
    pub fn finish(self, usage: Usage) -> Option<ChatResponse> {
        let (id, created, model, system_fingerprint) = self.head?;
        let choices = self
            .choices
            .into_iter()
            .map(|(index, c)| Choice {
                index,
                message: AssistantMessage {
                    role: Role::Assistant,
                    content: c.content,
                    tool_calls: (!c.calls.is_empty()).then(|| {
                        c.calls
                            .into_values()
                            .map(|p| ToolCall {
                                id: p.id,
                                kind: ToolKind::Function,
                                function: FunctionCall {
                                    name: p.name,
                                    arguments: p.arguments,
                                },
                            })
                            .collect()
                    }),
                    refusal: c.refusal,
                },
                finish_reason: c.finish_reason,
                logprobs: None,
            })
            .collect();
        Some(ChatResponse {
            id,
            object: "chat.completion".into(),
            created,
            model,
            choices,
            usage: Some(usage),
            system_fingerprint,
            service_tier: None,
            raw: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_through_a_response() {
        let original: ChatResponse = serde_json::from_value(serde_json::json!({
            "id": "c1", "object": "chat.completion", "created": 5, "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"},
                {"index": 1, "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                 "finish_reason": "tool_calls"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        }))
        .unwrap();
        let mut acc = Accumulator::default();
        for chunk in original.clone().into_chunks() {
            acc.push(&chunk);
        }
        let back = acc.finish(Usage::new(3, 2, 0)).unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&original).unwrap()
        );
        // Bad input: a stream that sent nothing assembles to nothing.
        assert!(Accumulator::default().finish(Usage::default()).is_none());
    }
}
