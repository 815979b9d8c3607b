-- Which service instance handed each e-mail to the mail server (its id is made at start:
-- host, process and a random part). Leases are now short and renewed while a send is in
-- progress; claimed_by names the instance holding the lease, sent_by the one that delivered.
ALTER TABLE email_outbox ADD COLUMN sent_by TEXT;
