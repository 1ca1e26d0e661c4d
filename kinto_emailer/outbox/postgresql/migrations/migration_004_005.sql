-- Slack messages and webhook deliveries wait in the same table as emails (issue 21).
ALTER TABLE kinto_emailer_outbox
    -- 'email', 'slack' or 'webhook'.
    ADD COLUMN IF NOT EXISTS channel TEXT NOT NULL DEFAULT 'email',
    -- The Slack channel or the webhook endpoint's name, as the status views show it; NULL
    -- for an email. Never a URL: the worker looks it up in the settings.
    ADD COLUMN IF NOT EXISTS destination TEXT,
    -- What is posted. JSON, not JSONB: the keys keep their order, so that every attempt of
    -- a webhook sends (and signs) the same bytes.
    ADD COLUMN IF NOT EXISTS payload JSON;
-- A Slack message or a webhook has no email.
ALTER TABLE kinto_emailer_outbox ALTER COLUMN message DROP NOT NULL;

INSERT INTO metadata (name, value) VALUES ('kinto_emailer_schema_version', '5');
