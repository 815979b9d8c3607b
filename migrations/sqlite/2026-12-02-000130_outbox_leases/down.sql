ALTER TABLE email_outbox DROP COLUMN sent_by;
