-- The outbox: one row per email, written in the transaction of the change that asks for it.
CREATE TABLE IF NOT EXISTS kinto_emailer_outbox (
    id BIGSERIAL PRIMARY KEY,
    bucket_id TEXT NOT NULL,
    collection_id TEXT,
    hook TEXT NOT NULL,
    uri TEXT,
    action TEXT,
    event TEXT,
    subject TEXT,
    recipients_count INTEGER NOT NULL,
    -- What the email says (pyramid_mailer's fields), rendered to MIME by the worker.
    message JSONB NOT NULL,
    -- After a partial refusal: the recipients still to try; NULL: all of them.
    remaining JSONB,
    size INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    next_attempt TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until TIMESTAMPTZ,
    worker TEXT,
    created TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    last_modified TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    sent TIMESTAMPTZ
);

-- What workers claim, and what the byte limit sums.
CREATE INDEX IF NOT EXISTS idx_kinto_emailer_outbox_pending
    ON kinto_emailer_outbox (bucket_id, id) WHERE status IN ('queued', 'sending', 'retrying');
-- The hourly limit of a bucket, and the status views.
CREATE INDEX IF NOT EXISTS idx_kinto_emailer_outbox_bucket_created
    ON kinto_emailer_outbox (bucket_id, created);
-- What the workers purge.
CREATE INDEX IF NOT EXISTS idx_kinto_emailer_outbox_ended
    ON kinto_emailer_outbox (last_modified) WHERE status NOT IN ('queued', 'sending', 'retrying');

INSERT INTO metadata (name, value) VALUES ('kinto_emailer_schema_version', '2');
