-- Routing, assistant and cache facts of each request. Nullable text columns cost one header
-- byte when empty, so plain requests stay compact.
ALTER TABLE usage_records ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
ALTER TABLE usage_records ADD COLUMN served_by TEXT;
ALTER TABLE usage_records ADD COLUMN fallback_reason TEXT;
ALTER TABLE usage_records ADD COLUMN assistant_version_id INTEGER;
ALTER TABLE usage_records ADD COLUMN variant TEXT;
ALTER TABLE usage_records ADD COLUMN conversation_id INTEGER;
ALTER TABLE usage_records ADD COLUMN cost_saved_micros INTEGER NOT NULL DEFAULT 0;
