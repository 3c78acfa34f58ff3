-- Requests made without a key (open mode) need no entry in the per-key index: every query
-- through it names a key, so the index only holds keyed rows and an unkeyed insert skips it.
DROP INDEX usage_records_key_ts_ms;
CREATE INDEX usage_records_key_ts_ms ON usage_records (key_id, ts_ms) WHERE key_id IS NOT NULL;
