-- The usage ledger; same columns as the SQLite table. Fixed-width columns come first, widest
-- first, so PostgreSQL inserts no alignment padding between them.
CREATE TABLE usage_records (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts_ms             BIGINT   NOT NULL,
    key_id            BIGINT,
    prompt_tokens     BIGINT   NOT NULL,
    completion_tokens BIGINT   NOT NULL,
    cached_tokens     BIGINT   NOT NULL,
    cost_micros       BIGINT   NOT NULL,
    latency_ms        BIGINT   NOT NULL,
    ttft_ms           BIGINT,
    flags             BIGINT   NOT NULL,
    -- INTEGER, not SMALLINT: it holds the Rust i32 as is, so no value can fail a batch.
    status            INTEGER  NOT NULL,
    route             SMALLINT NOT NULL,
    cache_status      SMALLINT NOT NULL,
    request_id        VARCHAR(128) NOT NULL,
    model             TEXT     NOT NULL,
    provider          TEXT     NOT NULL,
    upstream_model    TEXT     NOT NULL,
    error_code        TEXT
);

CREATE INDEX usage_records_ts_ms ON usage_records (ts_ms);
CREATE INDEX usage_records_request_id ON usage_records (request_id);
