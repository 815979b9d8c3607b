-- The e-mail outbox. A row is written in the same transaction as whatever causes the e-mail, so
-- the commit is the promise that it will be sent; the worker of any instance delivers it.
-- Only types both backends share: TEXT, BOOLEAN, TIMESTAMP (UTC), INTEGER.

CREATE TABLE email_outbox (
    id TEXT PRIMARY KEY,
    -- The account the e-mail is for, when it is for one (its address is copied into to_address,
    -- so a later change of address does not redirect an e-mail already promised).
    recipient_user_id TEXT REFERENCES users (id),
    to_address TEXT NOT NULL,
    to_name TEXT,
    locale TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    -- The patient the notice is about (every table that holds patient data carries patient_id).
    patient_id TEXT,
    -- Producers that must notify exactly once per step (an escalation level, a digest day) set
    -- a key; a second row with the same key is not queued.
    dedupe_key TEXT,
    -- pending, sent or dead.
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    -- The lease of the worker that is sending it: another worker skips the row until it ends.
    locked_until TIMESTAMP,
    claimed_by TEXT,
    last_error TEXT,
    -- Derived from id, so a retry after an ambiguous failure carries the same Message-ID.
    message_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE INDEX email_outbox_status_next_attempt ON email_outbox (status, next_attempt_at);
CREATE UNIQUE INDEX email_outbox_dedupe_key ON email_outbox (dedupe_key);
CREATE INDEX email_outbox_recipient ON email_outbox (recipient_user_id);
