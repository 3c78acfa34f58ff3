-- API keys, key-set version and audit log; same columns as on SQLite (integers are BIGINT so
-- the gateway reads every one as i64).
CREATE TABLE api_keys (
    id                     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rpm                    BIGINT,
    tpm                    BIGINT,
    max_concurrent         BIGINT,
    daily_budget_micros    BIGINT,
    monthly_budget_micros  BIGINT,
    expires_at_ms          BIGINT,
    allow_downgrade        BIGINT NOT NULL DEFAULT 0,
    created_at_ms          BIGINT NOT NULL,
    revoked_at_ms          BIGINT,
    budget_reset_at_ms     BIGINT,
    previous_expires_at_ms BIGINT,
    prefix                 TEXT   NOT NULL UNIQUE,
    hash                   TEXT   NOT NULL,
    name                   TEXT   NOT NULL,
    owner                  TEXT,
    team                   TEXT,
    allowed_models         TEXT,
    metadata               TEXT   NOT NULL DEFAULT '{}',
    priority               TEXT   NOT NULL DEFAULT 'normal',
    previous_prefix        TEXT,
    previous_hash          TEXT
);

CREATE TABLE access_state (
    id           BIGINT PRIMARY KEY CHECK (id = 1),
    keys_version BIGINT NOT NULL
);
INSERT INTO access_state (id, keys_version) VALUES (1, 0);

CREATE TABLE audit_log (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts_ms      BIGINT NOT NULL,
    actor      TEXT   NOT NULL,
    action     TEXT   NOT NULL,
    target     TEXT,
    outcome    TEXT   NOT NULL,
    request_id TEXT,
    ip         TEXT,
    detail     TEXT
);
CREATE INDEX audit_log_ts_ms ON audit_log (ts_ms);
CREATE INDEX audit_log_action_ts_ms ON audit_log (action, ts_ms);

CREATE INDEX usage_records_key_ts_ms ON usage_records (key_id, ts_ms);
