-- The recipients the mail server refused for good, while it accepted the others:
-- [{"address", "code", "message"}], shown by the status views.
ALTER TABLE kinto_emailer_outbox
    ADD COLUMN IF NOT EXISTS refused JSONB NOT NULL DEFAULT '[]'::jsonb;

-- When the email was queued, or queued again: what the hourly limit counts (not ``created``:
-- an old email queued again counts in the hour it is queued).
ALTER TABLE kinto_emailer_outbox ADD COLUMN IF NOT EXISTS queued_at TIMESTAMPTZ;
UPDATE kinto_emailer_outbox SET queued_at = created WHERE queued_at IS NULL;
ALTER TABLE kinto_emailer_outbox
    ALTER COLUMN queued_at SET DEFAULT clock_timestamp(),
    ALTER COLUMN queued_at SET NOT NULL;
CREATE INDEX IF NOT EXISTS idx_kinto_emailer_outbox_bucket_queued
    ON kinto_emailer_outbox (bucket_id, queued_at) WHERE status <> 'dropped';

INSERT INTO metadata (name, value) VALUES ('kinto_emailer_schema_version', '4');
