-- Routing, assistant and cache facts of each request; same columns as on SQLite.
ALTER TABLE usage_records
    ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1,
    ADD COLUMN served_by TEXT,
    ADD COLUMN fallback_reason TEXT,
    ADD COLUMN assistant_version_id BIGINT,
    ADD COLUMN variant TEXT,
    ADD COLUMN conversation_id BIGINT,
    ADD COLUMN cost_saved_micros BIGINT NOT NULL DEFAULT 0;
