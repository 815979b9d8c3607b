ALTER TABLE email_outbox DROP COLUMN webhook_endpoint_id;
DROP TABLE webhook_endpoints;
