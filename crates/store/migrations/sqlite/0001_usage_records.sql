-- The usage ledger. Integer codes for enums (see usage::Route and usage::CacheStatus) and
-- no bodies keep a row near 200 bytes. `id` is the rowid, so it costs no extra index.
CREATE TABLE usage_records (
    id                INTEGER PRIMARY KEY,
    request_id        TEXT    NOT NULL,
    ts_ms             INTEGER NOT NULL,
    key_id            INTEGER,
    route             INTEGER NOT NULL,
    model             TEXT    NOT NULL,
    provider          TEXT    NOT NULL,
    upstream_model    TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    cost_micros       INTEGER NOT NULL,
    latency_ms        INTEGER NOT NULL,
    ttft_ms           INTEGER,
    status            INTEGER NOT NULL,
    error_code        TEXT,
    cache_status      INTEGER NOT NULL,
    flags             INTEGER NOT NULL
);

CREATE INDEX usage_records_ts_ms ON usage_records (ts_ms);
CREATE INDEX usage_records_request_id ON usage_records (request_id);
