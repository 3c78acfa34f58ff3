//! The request and response bodies of the conversations API, and how stored rows are shown.

use providers::{FinishReason, StreamOptions, Usage};
use serde::{Deserialize, Serialize};
use store::{ConversationRecord, MessageRecord};
use utoipa::{IntoParams, ToSchema};

use crate::dates::format_ms;

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: i64,
    /// `user`, `assistant` or `system`.
    pub role: String,
    pub content: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
    /// `up`, `down` or absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating_comment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    pub id: i64,
    pub object: &'static str,
    /// `assistant/<slug>` or a model name.
    pub model: String,
    pub title: Option<String>,
    /// The end-user id that owns it, if any.
    pub user: Option<String>,
    /// Everything this conversation cost so far, micro-USD.
    pub cost_micros: i64,
    pub message_count: i64,
    /// The stored context summary of older turns, if the conversation got that long.
    pub summary: Option<String>,
    pub summary_through_message_id: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<MessageView>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationList {
    pub object: &'static str,
    pub data: Vec<ConversationView>,
    pub has_more: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversation {
    /// The assistant to talk to (its slug).
    #[serde(default)]
    pub assistant: Option<String>,
    /// A model instead of an assistant (`default` when neither is given).
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    /// End-user id; or the `x-gatehouse-user` header.
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct ListQuery {
    /// 1–100, default 20.
    #[serde(default)]
    pub limit: Option<i64>,
    /// Only conversations with a smaller id (the last id of the previous page).
    #[serde(default)]
    pub before: Option<i64>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct UserQuery {
    /// End-user id; or the `x-gatehouse-user` header.
    #[serde(default)]
    pub user: Option<String>,
}

/// Roles a stored message may have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoredRole {
    #[default]
    User,
    Assistant,
    System,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    pub content: String,
    #[serde(default)]
    pub role: StoredRole,
    /// `false` only stores the message (any role); `true` (default) also answers it.
    #[serde(default = "yes")]
    pub reply: bool,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub user: Option<String>,
}

pub fn yes() -> bool {
    true
}

/// A reply and what it cost.
#[derive(Debug, Serialize, ToSchema)]
pub struct SendResult {
    pub conversation_id: i64,
    pub user_message: Option<MessageView>,
    pub message: MessageView,
    pub finish_reason: Option<FinishReason>,
    pub usage: Option<Usage>,
    pub cost_micros: i64,
    pub conversation_cost_micros: i64,
    /// `conversation_ceiling` or `daily_ceiling` when the assistant's downgrade model answered.
    pub downgraded: Option<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryView {
    pub conversation_id: i64,
    pub summary: String,
    pub cost_micros: i64,
    pub conversation_cost_micros: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Thumb {
    Up,
    Down,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateMessage {
    pub rating: Thumb,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RatingView {
    pub conversation_id: i64,
    pub message_id: i64,
    pub rating: Thumb,
    pub comment: Option<String>,
}

pub fn message_view(m: MessageRecord) -> MessageView {
    MessageView {
        id: m.id,
        role: m.role,
        content: m.content,
        created_at: format_ms(m.created_at_ms),
        model: m.model,
        variant: m.variant,
        request_id: m.request_id,
        prompt_tokens: m.prompt_tokens,
        completion_tokens: m.completion_tokens,
        cost_micros: m.cost_micros,
        rating: m.rating.map(|r| if r > 0 { "up" } else { "down" }),
        rating_comment: m.rating_comment,
    }
}

pub fn view(c: ConversationRecord, messages: Option<Vec<MessageRecord>>) -> ConversationView {
    let user = c
        .owner
        .split_once(':')
        .map(|(_, u)| u)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    ConversationView {
        id: c.id,
        object: "conversation",
        model: c.model,
        title: c.title,
        user,
        cost_micros: c.cost_micros,
        message_count: c.message_count,
        summary: c.summary,
        summary_through_message_id: c.summary_through_id,
        created_at: format_ms(c.created_at_ms),
        updated_at: format_ms(c.updated_at_ms),
        messages: messages.map(|m| m.into_iter().map(message_view).collect()),
    }
}
