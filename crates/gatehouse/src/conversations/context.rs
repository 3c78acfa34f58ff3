//! Context management: a conversation's next request is its stored summary (if any), the turns
//! after it and the new message. When that comes near the model's context window — over 80% of
//! the window minus the output reserve, counting the system prompt — the older turns are folded
//! into the summary by the assistant's cheap model (`summary_model`), the summary is stored, and
//! only the newest turns that fit in half the budget are sent with it, so the request fits.
//!
//! Token counts are the gateway's estimate (tiktoken o200k plus OpenAI's per-message overhead),
//! the same one the ledger uses when a provider reports no usage. A conversation whose model
//! has no known context window (and no `context_window` on its assistant) is sent whole.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use providers::{ChatRequest, Message, Role};
use store::{ConversationRecord, MessageRecord, Route, UsageRecord};

use crate::app::{AppState, RequestId};
use crate::assistants::apply::{Applied, ConversationLink, Session, internal};
use crate::assistants::lint::count_prompt;
use crate::assistants::spec::MODEL_PREFIX;
use crate::chat::{self, Outcome};
use crate::error::{ApiError, ErrorCode};
use crate::usage::{count_tokens, estimate_prompt_tokens};

/// Begins the system message that carries the summary.
pub const SUMMARY_PREFIX: &str = "Summary of the earlier conversation: ";

const FOLD_INSTRUCTION: &str = "You keep a running summary of a conversation between a user \
     and an assistant. Merge the previous summary (if any) and the new turns into one concise \
     summary that keeps names, facts, decisions and open questions. Reply with the summary only.";
const SHORT_INSTRUCTION: &str = "Summarise the conversation below in two or three sentences. \
     Reply with the summary only.";

/// The token budget of a conversation's requests.
#[derive(Debug, Clone)]
pub struct Budget {
    pub window: u64,
    /// Tokens kept free for the answer.
    pub reserve: u64,
    /// The longest system prompt the request may get (the assistant's or a variant's).
    pub system_tokens: u64,
    pub summary_model: String,
    /// The window of the summary model (its own input must fit too).
    pub summary_window: u64,
    /// Who the summary calls are charged to.
    pub assistant: Option<(i64, i64)>,
}

impl Budget {
    /// Prompt tokens a request may use.
    pub fn prompt_limit(&self) -> u64 {
        self.window.saturating_sub(self.reserve)
    }
}

fn group_window(state: &AppState, model: &str) -> (Option<u64>, Option<u64>) {
    state.router.group(model).map_or((None, None), |g| {
        (
            g.context_window.map(u64::from),
            g.deployments
                .first()
                .and_then(|d| d.target.max_output_tokens)
                .map(u64::from),
        )
    })
}

/// The conversation's budget; `None` when no window is known.
pub async fn budget(
    state: &AppState,
    conv: &ConversationRecord,
) -> Result<Option<Budget>, ApiError> {
    profile(state, conv)
        .await
        .map(|(b, known)| known.then_some(b))
}

/// The budget, and whether its window is known (else it assumes 8,192 tokens).
async fn profile(state: &AppState, conv: &ConversationRecord) -> Result<(Budget, bool), ApiError> {
    let (window, max_tokens, summary_model, system_tokens, assistant) =
        match conv.model.strip_prefix(MODEL_PREFIX) {
            Some(slug) => match state
                .assistants
                .get(&state.store, slug)
                .await
                .map_err(|e| internal(&e))?
            {
                Some(a) => {
                    let s = &a.spec;
                    let mut prompts = vec![(s.system_prompt.as_str(), s.model.as_str())];
                    if let Some(e) = &a.experiment {
                        for v in &e.variants {
                            if let Some(p) = &v.system_prompt {
                                prompts.push((p, v.model.as_deref().unwrap_or(&s.model)));
                            }
                        }
                    }
                    let system = prompts
                        .iter()
                        .map(|(p, m)| {
                            count_prompt(&state.config, p, m)
                                .tokens
                                .max(count_tokens(p))
                        })
                        .max()
                        .unwrap_or(0);
                    let (w, out) = group_window(state, &s.model);
                    (
                        s.context_window.map(u64::from).or(w),
                        s.max_tokens.map(u64::from).or(out),
                        s.summary_model.clone().unwrap_or_else(|| s.model.clone()),
                        system,
                        Some((a.id, a.version_id)),
                    )
                }
                // The pipeline answers for a missing assistant.
                None => (None, None, state.config.default_model.clone(), 0, None),
            },
            None => {
                let (w, out) = group_window(state, &conv.model);
                (w, out, conv.model.clone(), 0, None)
            }
        };
    let known = window.is_some();
    let window = window.unwrap_or(8_192);
    let reserve = max_tokens.unwrap_or(window / 4).min(window / 2);
    let summary_window = group_window(state, &summary_model).0.unwrap_or(window);
    Ok((
        Budget {
            window,
            reserve,
            system_tokens: system_tokens + 3,
            summary_model,
            summary_window,
            assistant,
        },
        known,
    ))
}

fn role_of(m: &MessageRecord) -> Role {
    match m.role.as_str() {
        "assistant" => Role::Assistant,
        "system" => Role::System,
        _ => Role::User,
    }
}

fn tokens_of(messages: &[Message]) -> u64 {
    estimate_prompt_tokens(&ChatRequest {
        messages: messages.to_vec(),
        ..ChatRequest::default()
    })
}

fn message_tokens(m: &MessageRecord) -> u64 {
    3 + count_tokens(&m.content)
}

/// The first `max` tokens of `text` (o200k).
pub fn truncate_tokens(text: &str, max: u64) -> String {
    let bpe = tiktoken_rs::o200k_base_singleton();
    let tokens = bpe.encode_ordinary(text);
    if tokens.len() as u64 <= max {
        return text.to_owned();
    }
    bpe.decode(tokens[..usize::try_from(max).unwrap_or(0)].to_vec())
        .unwrap_or_default()
}

/// Builds the messages of the next request (without the assistant's system prompt, which the
/// pipeline adds), summarising older turns when needed. Returns the messages and what the
/// summary calls cost.
pub async fn messages_for(
    state: &Arc<AppState>,
    request_id: &RequestId,
    conv: &ConversationRecord,
    history: &[MessageRecord],
    new_text: &str,
) -> Result<(Vec<Message>, i64), ApiError> {
    let live: Vec<&MessageRecord> = history
        .iter()
        .filter(|m| conv.summary_through_id.is_none_or(|t| m.id > t))
        .collect();
    let new_msg = Message::text(Role::User, new_text);
    let summary_msg = |s: &str| Message::text(Role::System, format!("{SUMMARY_PREFIX}{s}"));
    let assemble = |summary: Option<&str>, turns: &[&MessageRecord]| {
        let mut out: Vec<Message> = summary.map(summary_msg).into_iter().collect();
        out.extend(
            turns
                .iter()
                .map(|m| Message::text(role_of(m), m.content.clone())),
        );
        out.push(new_msg.clone());
        out
    };
    let whole = assemble(conv.summary.as_deref(), &live);
    let Some(b) = budget(state, conv).await? else {
        return Ok((whole, 0));
    };
    let limit = b.prompt_limit();
    if b.system_tokens + tokens_of(&whole) <= limit * 8 / 10 {
        return Ok((whole, 0));
    }
    let summary_cap = (limit / 4).max(16);
    let keep_budget =
        (limit / 2).saturating_sub(b.system_tokens + tokens_of(std::slice::from_ref(&new_msg)));
    let mut keep_from = live.len();
    let mut kept = 0;
    while keep_from > 0 {
        let t = message_tokens(live[keep_from - 1]);
        if kept + t > keep_budget {
            break;
        }
        kept += t;
        keep_from -= 1;
    }
    let mut cost = 0;
    let mut summary = conv.summary.clone();
    if keep_from > 0 {
        let fold = &live[..keep_from];
        let (s, c) = fold_turns(
            state,
            request_id,
            conv.id,
            &b,
            summary.as_deref(),
            fold,
            summary_cap,
        )
        .await?;
        cost += c;
        let through = fold.last().map_or(0, |m| m.id);
        state
            .store
            .set_conversation_summary(conv.id, &s, through)
            .await
            .map_err(|e| internal(&e))?;
        summary = Some(s);
    }
    let messages = assemble(summary.as_deref(), &live[keep_from..]);
    if b.system_tokens + tokens_of(&messages) > limit {
        return Err(ApiError {
            param: Some("content".into()),
            ..ApiError::new(
                ErrorCode::ContextLengthExceeded,
                format!(
                    "The message does not fit the model's context window ({} tokens, {} kept for the answer)",
                    b.window, b.reserve
                ),
            )
        });
    }
    Ok((messages, cost))
}

/// Folds `turns` into `previous` with the summary model, in as many calls as its window needs.
/// Returns the summary (at most `cap` tokens) and the calls' cost.
pub async fn fold_turns(
    state: &Arc<AppState>,
    request_id: &RequestId,
    conversation_id: i64,
    b: &Budget,
    previous: Option<&str>,
    turns: &[&MessageRecord],
    cap: u64,
) -> Result<(String, i64), ApiError> {
    // What one call may read: the summary window less the answer, instructions and summary.
    let input = b
        .summary_window
        .saturating_sub(cap * 2 + count_tokens(FOLD_INSTRUCTION) + 32)
        .max(64);
    let mut summary = previous.map(str::to_owned);
    let mut cost = 0;
    let mut calls = 0;
    let mut i = 0;
    while i < turns.len() {
        let mut text = String::new();
        let mut used = 0;
        while i < turns.len() {
            let line = format!("{}: {}\n", turns[i].role, turns[i].content);
            let t = count_tokens(&line);
            if used + t > input {
                if used == 0 {
                    text.push_str(&truncate_tokens(&line, input));
                    i += 1;
                }
                break;
            }
            text.push_str(&line);
            used += t;
            i += 1;
        }
        let prompt = match &summary {
            Some(s) => format!("Previous summary:\n{s}\n\nNew turns:\n{text}"),
            None => format!("New turns:\n{text}"),
        };
        calls += 1;
        let (s, c) = call_summary_model(
            state,
            request_id,
            calls,
            conversation_id,
            b,
            FOLD_INSTRUCTION,
            &prompt,
            cap,
        )
        .await?;
        cost += c;
        summary = Some(truncate_tokens(&s, cap));
    }
    Ok((summary.unwrap_or_default(), cost))
}

/// A 2–3 sentence summary of the whole conversation, made now and not stored.
pub async fn short_summary(
    state: &Arc<AppState>,
    request_id: &RequestId,
    conv: &ConversationRecord,
    history: &[MessageRecord],
) -> Result<(String, i64), ApiError> {
    let (b, _) = profile(state, conv).await?;
    let live: Vec<&MessageRecord> = history
        .iter()
        .filter(|m| conv.summary_through_id.is_none_or(|t| m.id > t))
        .collect();
    let mut transcript = String::new();
    if let Some(s) = &conv.summary {
        transcript.push_str(&format!("(Earlier: {s})\n"));
    }
    for m in &live {
        transcript.push_str(&format!("{}: {}\n", m.role, m.content));
    }
    let room = b.summary_window.saturating_sub(512);
    let mut cost = 0;
    if count_tokens(&transcript) > room {
        let (s, c) = fold_turns(
            state,
            request_id,
            conv.id,
            &b,
            conv.summary.as_deref(),
            &live,
            room / 4,
        )
        .await?;
        cost += c;
        transcript = s;
    }
    let (text, c) = call_summary_model(
        state,
        request_id,
        99,
        conv.id,
        &b,
        SHORT_INSTRUCTION,
        &transcript,
        200,
    )
    .await?;
    Ok((first_sentences(&text, 3), cost + c))
}

/// At most `n` sentences of `text` (a sentence ends in `.`, `!` or `?` before whitespace).
pub fn first_sentences(text: &str, n: usize) -> String {
    let text = text.trim();
    let mut ends = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|(_, next)| next.is_whitespace())
        {
            ends += 1;
            if ends == n {
                return text[..i + c.len_utf8()].to_owned();
            }
        }
    }
    text.to_owned()
}

/// One call to the summary model through the chat pipeline: its usage record carries the
/// conversation (and the assistant, without a variant) and the summary flag.
#[expect(clippy::too_many_arguments, reason = "one internal call site shape")]
async fn call_summary_model(
    state: &Arc<AppState>,
    parent: &RequestId,
    n: u32,
    conversation_id: i64,
    b: &Budget,
    instruction: &str,
    input: &str,
    max_tokens: u64,
) -> Result<(String, i64), ApiError> {
    let req = ChatRequest {
        model: b.summary_model.clone(),
        messages: vec![
            Message::text(Role::System, instruction),
            Message::text(Role::User, input),
        ],
        max_tokens: Some(u32::try_from(max_tokens).unwrap_or(u32::MAX).max(1)),
        ..ChatRequest::default()
    };
    let request_id = RequestId {
        id: Arc::from(format!("{}:summary-{n}", parent.id)),
        logged_by_guard: Arc::new(AtomicBool::new(false)),
    };
    let mut session = Session::in_conversation(ConversationLink {
        id: conversation_id,
        cost_before: 0,
        user_text: None,
    });
    session.flags = UsageRecord::FLAG_SUMMARY;
    session.applied = b.assistant.map(|(assistant_id, version_id)| Applied {
        assistant_id,
        slug: String::new(),
        version_id,
        variant: None,
        experiment_id: None,
        downgraded: None,
    });
    // The gateway's own call: no key's rate limits or budget (the cost is the conversation's).
    let outcome = chat::run_with(
        state,
        &request_id,
        &crate::auth::Principal::default(),
        Route::Chat,
        req,
        Instant::now(),
        &mut session,
        &crate::cache::CacheContext::internal(),
    )
    .await;
    let cost = session.finished().map_or(0, |r| r.cost_micros);
    let text = match outcome {
        Ok(Outcome::Complete(resp)) => resp
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .unwrap_or_default(),
        Ok(Outcome::Stream(_)) => String::new(),
        Err(e) => {
            if cost > 0 {
                let _ = state
                    .store
                    .add_conversation_cost(conversation_id, cost, crate::usage::now_ms())
                    .await;
            }
            return Err(e);
        }
    };
    Ok((text, cost))
}
