//! The chat pipeline's assistant hook. For `"model": "assistant/<slug>"` it loads the
//! assistant, assigns the experiment variant, enforces the cost ceilings (refuse or downgrade),
//! then rewrites the request: the system prompt goes first, the assistant's temperature and
//! top_p replace the client's, its max_tokens caps the client's, and `model` becomes the
//! assistant's (or variant's, or downgrade) model. The pipeline then runs as for any request.
//!
//! [`Session`] carries what a request knows beyond its body (its conversation, what was
//! applied) into the usage guard, and gets the final usage record back.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use providers::{ChatRequest, Message, Role};
use store::UsageRecord;

use super::runtime::Loaded;
use super::spec::{CeilingAction, MODEL_PREFIX};
use crate::app::{AppState, RequestId};
use crate::dates::{DAY_MS, day_of};
use crate::error::{ApiError, ErrorCode};
use crate::usage::{UsageGuard, now_ms};

/// The conversation a request belongs to.
#[derive(Debug, Clone)]
pub struct ConversationLink {
    pub id: i64,
    /// The conversation's cost before this request (what the per-conversation ceiling checks).
    pub cost_before: i64,
    /// The user message to store with the reply.
    pub user_text: Option<String>,
}

/// Which ceiling was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceiling {
    Conversation,
    Daily,
}

impl Ceiling {
    pub fn as_str(self) -> &'static str {
        match self {
            Ceiling::Conversation => "conversation_ceiling",
            Ceiling::Daily => "daily_ceiling",
        }
    }
}

/// What the hook applied.
#[derive(Debug, Clone)]
pub struct Applied {
    pub assistant_id: i64,
    pub slug: String,
    pub version_id: i64,
    pub variant: Option<String>,
    pub experiment_id: Option<i64>,
    /// Set when a ceiling made the request use the downgrade model.
    pub downgraded: Option<Ceiling>,
}

/// Per-request context of the assistant and conversation layers.
#[derive(Debug, Default)]
pub struct Session {
    pub conversation: Option<ConversationLink>,
    pub applied: Option<Applied>,
    /// Extra `UsageRecord::FLAG_*` bits for the record.
    pub flags: i64,
    finished: Arc<Mutex<Option<UsageRecord>>>,
}

impl Session {
    pub fn in_conversation(link: ConversationLink) -> Session {
        Session {
            conversation: Some(link),
            ..Session::default()
        }
    }

    /// The request's usage record, once its guard has finished.
    pub fn finished(&self) -> Option<UsageRecord> {
        self.finished
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Put the assistant version, variant and conversation on the usage record, and have the
    /// final record counted in the assistant's daily spend and handed back to this session.
    pub fn annotate(&self, guard: &mut UsageGuard, state: &AppState) {
        let conversation_id = self.conversation.as_ref().map(|c| c.id);
        let applied = self.applied.as_ref();
        if applied.is_none() && conversation_id.is_none() {
            return;
        }
        guard.set_assistant(
            applied.map(|a| a.version_id),
            applied.and_then(|a| a.variant.clone()),
            conversation_id,
        );
        if self.flags != 0 {
            guard.set_flag(self.flags);
        }
        let slot = Arc::clone(&self.finished);
        let assistant_id = applied.map(|a| a.assistant_id);
        let runtime = Arc::clone(&state.assistants);
        guard.on_finish(Box::new(move |r| {
            if let Some(id) = assistant_id {
                runtime.add_spend(id, r.cost_micros, r.ts_ms);
            }
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(r.clone());
        }));
    }
}

/// The hook: a no-op unless `req.model` names an assistant.
pub async fn apply(
    state: &AppState,
    req: &mut ChatRequest,
    session: &mut Session,
    request_id: &RequestId,
) -> Result<(), ApiError> {
    let Some(slug) = req.model.strip_prefix(MODEL_PREFIX) else {
        return Ok(());
    };
    let loaded = state
        .assistants
        .get(&state.store, slug)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| ApiError {
            param: Some("model".into()),
            ..ApiError::new(
                ErrorCode::ModelNotFound,
                format!(
                    "There is no assistant `{}`",
                    slug.chars().take(64).collect::<String>()
                ),
            )
        })?;
    let spec = &loaded.spec;
    if !spec.enabled {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("The assistant `{}` is disabled", loaded.slug),
        ));
    }
    let now = now_ms();
    let unit = match (&session.conversation, req.user.as_deref()) {
        (Some(c), _) => c.id.to_string(),
        (None, Some(u)) if !u.is_empty() => u.to_owned(),
        _ => request_id.id.to_string(),
    };
    let assigned = loaded
        .experiment
        .as_ref()
        .filter(|e| e.is_running(now))
        .map(|e| (e.id, e.assign(&unit).clone()));
    let variant = assigned.as_ref().map(|(_, v)| v);
    let mut model = variant
        .and_then(|v| v.model.clone())
        .unwrap_or_else(|| spec.model.clone());
    let mut downgraded = None;
    if let Some(reached) = ceiling_reached(state, &loaded, session, now).await? {
        match (spec.at_ceiling, &spec.downgrade_model) {
            (CeilingAction::Downgrade, Some(cheaper)) => {
                model.clone_from(cheaper);
                downgraded = Some(reached);
            }
            _ => return Err(refusal(&loaded, reached, now)),
        }
    }
    let prompt = variant
        .and_then(|v| v.system_prompt.as_deref())
        .unwrap_or(&spec.system_prompt);
    if !prompt.is_empty() {
        req.messages.insert(0, Message::text(Role::System, prompt));
    }
    if let Some(t) = variant.and_then(|v| v.temperature).or(spec.temperature) {
        req.temperature = Some(t);
    }
    if let Some(p) = spec.top_p {
        req.top_p = Some(p);
    }
    if let Some(cap) = spec.max_tokens {
        if let Some(n) = req.max_completion_tokens.as_mut() {
            *n = (*n).min(cap);
        } else {
            req.max_tokens = Some(req.max_tokens.map_or(cap, |n| n.min(cap)));
        }
    }
    req.model = model;
    session.applied = Some(Applied {
        assistant_id: loaded.id,
        slug: loaded.slug.clone(),
        version_id: loaded.version_id,
        variant: variant.map(|v| v.name.clone()),
        experiment_id: assigned.as_ref().map(|(id, _)| *id),
        downgraded,
    });
    Ok(())
}

async fn ceiling_reached(
    state: &AppState,
    a: &Loaded,
    session: &Session,
    now: i64,
) -> Result<Option<Ceiling>, ApiError> {
    if let (Some(limit), Some(c)) = (a.spec.conversation_ceiling_micros, &session.conversation)
        && c.cost_before >= limit
    {
        return Ok(Some(Ceiling::Conversation));
    }
    if let Some(limit) = a.spec.daily_ceiling_micros {
        let spent = state
            .assistants
            .spent_today(&state.store, a.id, now)
            .await
            .map_err(|e| internal(&e))?;
        if spent >= limit {
            return Ok(Some(Ceiling::Daily));
        }
    }
    Ok(None)
}

fn refusal(a: &Loaded, reached: Ceiling, now: i64) -> ApiError {
    match reached {
        Ceiling::Conversation => ApiError::new(
            ErrorCode::AssistantCeilingReached,
            format!(
                "This conversation reached the cost ceiling of assistant `{}` ({} per conversation); start a new conversation",
                a.slug,
                dollars(a.spec.conversation_ceiling_micros.unwrap_or(0))
            ),
        ),
        Ceiling::Daily => {
            let reset = (day_of(now) + 1) * DAY_MS;
            ApiError {
                retry_after: Some(Duration::from_millis(
                    u64::try_from(reset - now).unwrap_or(0),
                )),
                ..ApiError::new(
                    ErrorCode::AssistantCeilingReached,
                    format!(
                        "The assistant `{}` reached its daily cost ceiling ({}); it resets at 00:00 UTC",
                        a.slug,
                        dollars(a.spec.daily_ceiling_micros.unwrap_or(0))
                    ),
                )
            }
        }
    }
}

/// Micro-USD as dollars with six decimals.
pub fn dollars(micros: i64) -> String {
    format!("${}.{:06}", micros / 1_000_000, (micros % 1_000_000).abs())
}

pub fn internal(e: &store::StoreError) -> ApiError {
    tracing::error!(error = %e, "database error");
    ApiError::new(ErrorCode::Internal, "Internal error (database)")
}
