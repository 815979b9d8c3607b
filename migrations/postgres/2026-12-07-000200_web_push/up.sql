-- Web Push (RFC 8030/8291/8292). A person's browsers and phones register push subscriptions;
-- alerts reach them through the same outbox as e-mail: one outbox row per message and channel
-- (and, for push, per subscription), so a push is never lost and never sent twice, exactly as an
-- e-mail. Rows queued before this migration are e-mails.
CREATE TABLE push_subscriptions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    -- The push service's URL for this subscription (a capability URL: never shown to operators).
    endpoint TEXT NOT NULL,
    -- The browser's P-256 public key (65 bytes, uncompressed) and auth secret (16 bytes),
    -- base64url without padding, as PushSubscription.toJSON() gives them.
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX push_subscriptions_endpoint ON push_subscriptions (endpoint);
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);

ALTER TABLE email_outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'email';
ALTER TABLE email_outbox ADD COLUMN push_subscription_id TEXT;
