-- API keys, the key-set version every instance polls (revocation reaches all of them within a
-- second), and the audit log. Secrets are never stored: `hash` is the hex SHA-256 of the whole
-- key, `prefix` its visible, indexed start. JSON columns hold text the gateway parses.
CREATE TABLE api_keys (
    id                     INTEGER PRIMARY KEY,
    prefix                 TEXT    NOT NULL UNIQUE,
    hash                   TEXT    NOT NULL,
    name                   TEXT    NOT NULL,
    owner                  TEXT,
    team                   TEXT,
    allowed_models         TEXT,
    rpm                    INTEGER,
    tpm                    INTEGER,
    max_concurrent         INTEGER,
    daily_budget_micros    INTEGER,
    monthly_budget_micros  INTEGER,
    expires_at_ms          INTEGER,
    metadata               TEXT    NOT NULL DEFAULT '{}',
    priority               TEXT    NOT NULL DEFAULT 'normal',
    allow_downgrade        INTEGER NOT NULL DEFAULT 0,
    created_at_ms          INTEGER NOT NULL,
    revoked_at_ms          INTEGER,
    budget_reset_at_ms     INTEGER,
    previous_prefix        TEXT,
    previous_hash          TEXT,
    previous_expires_at_ms INTEGER
);

CREATE TABLE access_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    keys_version INTEGER NOT NULL
);
INSERT INTO access_state (id, keys_version) VALUES (1, 0);

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    ts_ms      INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    target     TEXT,
    outcome    TEXT    NOT NULL,
    request_id TEXT,
    ip         TEXT,
    detail     TEXT
);
CREATE INDEX audit_log_ts_ms ON audit_log (ts_ms);
CREATE INDEX audit_log_action_ts_ms ON audit_log (action, ts_ms);

-- Spend per key (budgets seeded at startup, GET /v1/usage).
CREATE INDEX usage_records_key_ts_ms ON usage_records (key_id, ts_ms);
