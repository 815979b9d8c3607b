ALTER TABLE email_outbox DROP COLUMN push_subscription_id;
ALTER TABLE email_outbox DROP COLUMN channel;
DROP TABLE push_subscriptions;
