//! The usage ledger row: what one request cost, how long it took and how it ended.
//!
//! Rows hold ids and numbers only (never prompt or response bodies) so the table stays near
//! 200 bytes a row and can grow to hundreds of millions of rows. The SQL lives in `sql`.

pub(crate) mod report;
pub(crate) mod sql;

/// One row of `usage_records`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRecord {
    /// At most [`UsageRecord::MAX_REQUEST_ID_CHARS`] characters; longer ids are cut on write.
    pub request_id: String,
    /// Unix milliseconds when the request started.
    pub ts_ms: i64,
    /// The authenticated API key; `None` in open mode.
    pub key_id: Option<i64>,
    pub route: Route,
    /// The alias the client asked for.
    pub model: String,
    /// Provider name from the config.
    pub provider: String,
    pub upstream_model: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    /// Integer micro-USD.
    pub cost_micros: i64,
    pub latency_ms: i64,
    /// Time to first token, for streams.
    pub ttft_ms: Option<i64>,
    /// The HTTP status the client got; 499 when the client went away.
    pub status: i32,
    /// A stable error code such as `provider_error`.
    pub error_code: Option<String>,
    pub cache_status: CacheStatus,
    /// A bit set of the `FLAG_*` constants.
    pub flags: i64,
    /// Upstream calls made (retries and fallbacks included); 0 for a cache hit.
    pub attempts: i32,
    /// The deployment that answered (`provider/upstream_model`) when it is not the first one
    /// tried.
    pub served_by: Option<String>,
    /// Why the request was served by a fallback, e.g. `exhausted_retries`, `circuit_open`.
    pub fallback_reason: Option<String>,
    /// The assistant version whose prompt and parameters were applied.
    pub assistant_version_id: Option<i64>,
    /// The experiment variant the conversation was assigned to.
    pub variant: Option<String>,
    pub conversation_id: Option<i64>,
    /// What a cache hit would have cost at the provider, in micro-USD.
    pub cost_saved_micros: i64,
}

impl UsageRecord {
    pub const FLAG_STREAMED: i64 = 1;
    pub const FLAG_TOKENS_ESTIMATED: i64 = 2;
    pub const FLAG_TRUNCATED: i64 = 4;
    pub const FLAG_CLIENT_CANCELLED: i64 = 8;
    /// A call Gatehouse made itself to summarise a conversation (not a client's message).
    pub const FLAG_SUMMARY: i64 = 16;

    pub const MAX_REQUEST_ID_CHARS: usize = 128;
    /// Cap for `model`, `provider`, `upstream_model` and `error_code`: a client-chosen alias
    /// must not be able to bloat the ledger.
    pub const MAX_TEXT_CHARS: usize = 256;

    pub fn has_flag(&self, flag: i64) -> bool {
        self.flags & flag == flag
    }
}

/// Which API family served the request. Stored as a small integer: never renumber a variant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Route {
    #[default]
    Chat,
    Messages,
    Embeddings,
    /// `POST /v1/audio/transcriptions`.
    Transcription,
}

impl Route {
    pub const fn as_i16(self) -> i16 {
        match self {
            Route::Chat => 0,
            Route::Messages => 1,
            Route::Embeddings => 2,
            Route::Transcription => 3,
        }
    }

    pub const fn from_i16(value: i16) -> Option<Route> {
        match value {
            0 => Some(Route::Chat),
            1 => Some(Route::Messages),
            2 => Some(Route::Embeddings),
            3 => Some(Route::Transcription),
            _ => None,
        }
    }
}

/// What the response cache did for the request. Stored as a small integer: never renumber.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CacheStatus {
    /// The cache is not configured for this request's route or model.
    #[default]
    None,
    Miss,
    Hit,
    SemanticHit,
    /// The cache applies but was bypassed: `x-gatehouse-cache: skip`, or a temperature above
    /// the caching threshold.
    Skip,
}

impl CacheStatus {
    pub const fn as_i16(self) -> i16 {
        match self {
            CacheStatus::None => 0,
            CacheStatus::Miss => 1,
            CacheStatus::Hit => 2,
            CacheStatus::SemanticHit => 3,
            CacheStatus::Skip => 4,
        }
    }

    pub const fn from_i16(value: i16) -> Option<CacheStatus> {
        match value {
            0 => Some(CacheStatus::None),
            1 => Some(CacheStatus::Miss),
            2 => Some(CacheStatus::Hit),
            3 => Some(CacheStatus::SemanticHit),
            4 => Some(CacheStatus::Skip),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_codes_round_trip_and_are_stable() {
        let routes = [
            Route::Chat,
            Route::Messages,
            Route::Embeddings,
            Route::Transcription,
        ];
        let codes: Vec<i16> = routes.iter().map(|r| r.as_i16()).collect();
        assert_eq!(codes, [0, 1, 2, 3]);
        for r in routes {
            assert_eq!(Route::from_i16(r.as_i16()), Some(r));
        }
        assert_eq!(Route::from_i16(4), None);

        let statuses = [
            CacheStatus::None,
            CacheStatus::Miss,
            CacheStatus::Hit,
            CacheStatus::SemanticHit,
            CacheStatus::Skip,
        ];
        let codes: Vec<i16> = statuses.iter().map(|s| s.as_i16()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4]);
        for s in statuses {
            assert_eq!(CacheStatus::from_i16(s.as_i16()), Some(s));
        }
        assert_eq!(CacheStatus::from_i16(-1), None);
    }
}
