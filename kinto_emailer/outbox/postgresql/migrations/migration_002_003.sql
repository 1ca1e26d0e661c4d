-- Time-window digests: one row per open window ('collecting'), to which every matching
-- change of any process adds its lines until the window closes; the worker that claims it
-- then puts its emails in the outbox.
ALTER TABLE kinto_emailer_outbox
    ADD COLUMN IF NOT EXISTS window_closes TIMESTAMPTZ,
    -- The emails, with marks where {count} and {items} go (kinto_emailer/drafts.py).
    ADD COLUMN IF NOT EXISTS window_draft JSONB,
    -- The first lines (kinto_emailer.max_digest_items), and how many objects in all.
    ADD COLUMN IF NOT EXISTS items JSONB,
    ADD COLUMN IF NOT EXISTS item_count INTEGER,
    -- The address of whoever made the changes; authors_mixed once several people did.
    ADD COLUMN IF NOT EXISTS author TEXT,
    ADD COLUMN IF NOT EXISTS authors_mixed BOOLEAN NOT NULL DEFAULT FALSE;

-- One window open per hook: every process adds to the same row.
CREATE UNIQUE INDEX IF NOT EXISTS idx_kinto_emailer_outbox_window_open
    ON kinto_emailer_outbox (hook) WHERE status = 'collecting';
-- What the workers close.
CREATE INDEX IF NOT EXISTS idx_kinto_emailer_outbox_window_closes
    ON kinto_emailer_outbox (window_closes) WHERE status IN ('collecting', 'closing');

INSERT INTO metadata (name, value) VALUES ('kinto_emailer_schema_version', '3');
