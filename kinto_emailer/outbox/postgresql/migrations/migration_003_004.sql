-- The recipients the mail server refused for good, while it accepted the others:
-- [{"address", "code", "message"}], shown by the status views.
ALTER TABLE kinto_emailer_outbox
    ADD COLUMN IF NOT EXISTS refused JSONB NOT NULL DEFAULT '[]'::jsonb;

INSERT INTO metadata (name, value) VALUES ('kinto_emailer_schema_version', '4');
