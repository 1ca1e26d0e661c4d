-- A deep backlog costs nothing (issue 23): each of the worker's statements reads only what it
-- needs, however many emails wait and however many ended rows the status views keep.

-- One index per waiting status, each as small as the rows in it: the claim takes each
-- bucket's first queued rows, the retries due and the leases expired, without reading the
-- backlog. A row is in one of them at a time: an insert or an update maintains one, as the
-- index they replace.
CREATE INDEX IF NOT EXISTS idx_kinto_emailer_outbox_queued
    ON kinto_emailer_outbox (bucket_id, id) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS idx_kinto_emailer_outbox_retrying
    ON kinto_emailer_outbox (next_attempt) WHERE status = 'retrying';
CREATE INDEX IF NOT EXISTS idx_kinto_emailer_outbox_sending
    ON kinto_emailer_outbox (lease_until) WHERE status = 'sending';
DROP INDEX IF EXISTS idx_kinto_emailer_outbox_pending;

-- The status views' default order (newest first, NULLS LAST as they write it), read from
-- the index: the first page of a bucket without sorting all of its rows. Backwards, the
-- ascending order too.
CREATE INDEX IF NOT EXISTS idx_kinto_emailer_outbox_bucket_listed
    ON kinto_emailer_outbox (bucket_id, created DESC NULLS LAST, id DESC NULLS LAST);
DROP INDEX IF EXISTS idx_kinto_emailer_outbox_bucket_created;

-- The hourly limit's count, with the predicate it counts by (windows were read from the
-- table to be left out): an index-only scan where the table's pages allow it.
CREATE INDEX IF NOT EXISTS idx_kinto_emailer_outbox_bucket_hour
    ON kinto_emailer_outbox (bucket_id, queued_at)
    WHERE status NOT IN ('dropped', 'collecting', 'closing');
DROP INDEX IF EXISTS idx_kinto_emailer_outbox_bucket_queued;

INSERT INTO metadata (name, value) VALUES ('kinto_emailer_schema_version', '6');
