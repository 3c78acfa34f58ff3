-- Assistants with version history, conversations, A/B experiments and ratings; same columns as
-- on SQLite. An assistant's definition is a JSON document (the gateway owns its shape); every
-- edit adds an immutable version row, and usage records point at the version that served them.
CREATE TABLE assistants (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug               TEXT    NOT NULL UNIQUE,
    current_version_id BIGINT,
    created_at_ms      BIGINT  NOT NULL,
    updated_at_ms      BIGINT  NOT NULL,
    -- Deleted assistants keep their versions so the ledger still names them.
    deleted_at_ms      BIGINT
);

CREATE TABLE assistant_versions (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    assistant_id  BIGINT  NOT NULL REFERENCES assistants (id),
    version       BIGINT  NOT NULL,
    spec          TEXT    NOT NULL,
    note          TEXT,
    created_at_ms BIGINT  NOT NULL,
    UNIQUE (assistant_id, version)
);

CREATE TABLE experiments (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    assistant_id        BIGINT  NOT NULL REFERENCES assistants (id),
    name                TEXT    NOT NULL,
    variants            TEXT    NOT NULL,
    starts_at_ms        BIGINT  NOT NULL,
    ends_at_ms          BIGINT,
    stopped_at_ms       BIGINT,
    promoted_variant    TEXT,
    promoted_version_id BIGINT,
    created_at_ms       BIGINT  NOT NULL
);
CREATE INDEX experiments_assistant ON experiments (assistant_id);

-- `owner` is the canonical "<key id or ->:<end-user id>" string every lookup matches exactly.
CREATE TABLE conversations (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner              TEXT    NOT NULL,
    owner_key_id       BIGINT,
    assistant_id       BIGINT  REFERENCES assistants (id),
    model              TEXT    NOT NULL,
    title              TEXT,
    summary            TEXT,
    summary_through_id BIGINT,
    cost_micros        BIGINT  NOT NULL DEFAULT 0,
    message_count      BIGINT  NOT NULL DEFAULT 0,
    created_at_ms      BIGINT  NOT NULL,
    updated_at_ms      BIGINT  NOT NULL
);
CREATE INDEX conversations_owner ON conversations (owner, id);

CREATE TABLE conversation_messages (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id      BIGINT  NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role                 TEXT    NOT NULL,
    content              TEXT    NOT NULL,
    request_id           TEXT,
    model                TEXT,
    assistant_version_id BIGINT,
    experiment_id        BIGINT,
    variant              TEXT,
    prompt_tokens        BIGINT  NOT NULL DEFAULT 0,
    completion_tokens    BIGINT  NOT NULL DEFAULT 0,
    cost_micros          BIGINT  NOT NULL DEFAULT 0,
    created_at_ms        BIGINT  NOT NULL
);
CREATE INDEX conversation_messages_conversation ON conversation_messages (conversation_id, id);

CREATE TABLE ratings (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      BIGINT  NOT NULL UNIQUE REFERENCES conversation_messages (id) ON DELETE CASCADE,
    conversation_id BIGINT  NOT NULL,
    experiment_id   BIGINT,
    variant         TEXT,
    rating          BIGINT  NOT NULL,
    comment         TEXT,
    created_at_ms   BIGINT  NOT NULL
);
CREATE INDEX ratings_experiment ON ratings (experiment_id, variant);

-- Partial indexes: plain requests (no assistant, no conversation) cost the ledger nothing extra.
CREATE INDEX usage_records_assistant ON usage_records (assistant_version_id, ts_ms)
    WHERE assistant_version_id IS NOT NULL;
CREATE INDEX usage_records_conversation ON usage_records (conversation_id)
    WHERE conversation_id IS NOT NULL;
