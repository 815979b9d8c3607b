-- Webhooks for partner systems. An organisation's administrator registers an endpoint; changes
-- to the patients whose care team has a member of that organisation are POSTed to it, signed
-- with the endpoint's secret, through the same outbox as e-mail and push: one outbox row per
-- event and endpoint (channel 'webhook'), retried with backoff, never lost.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    -- The partner's URL (https; checked against private addresses when registered and again
    -- when each delivery resolves it).
    url TEXT NOT NULL,
    -- The HMAC-SHA256 key deliveries are signed with. The server must read it to sign, so it is
    -- kept as is (like a TOTP secret) and shown to the administrator only when it is made.
    secret TEXT NOT NULL,
    -- 'active' or 'disabled'; why it was disabled: 'admin' or 'failures'.
    status TEXT NOT NULL,
    disabled_reason TEXT,
    disabled_at TIMESTAMP,
    -- Failed delivery attempts in a row; a success resets it, the configured limit disables.
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    secret_rotated_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- One endpoint per URL and organisation: a registration retried after a lost answer is refused
-- (409) rather than doubling every delivery.
CREATE UNIQUE INDEX webhook_endpoints_organization_url ON webhook_endpoints (organization_id, url);

ALTER TABLE email_outbox ADD COLUMN webhook_endpoint_id TEXT;
