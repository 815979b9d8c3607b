-- Offline-safe POSTs of discharge coordination keep their Idempotency-Key in idempotency_keys,
-- with the request's fingerprint and the first answer, as every other POST does
-- (src/idempotency.rs). The keys each discharge table kept beside its rows go; the rows stay.
-- Keys sent before this upgrade are not carried over: a retry of such a request after the
-- upgrade would be done again (the old columns held no answer to replay).

DROP INDEX discharge_cases_idempotency;
ALTER TABLE discharge_cases DROP COLUMN idempotency_key;

DROP INDEX discharge_tasks_idempotency;
ALTER TABLE discharge_tasks DROP COLUMN idempotency_key;

DROP INDEX discharge_task_comments_idempotency;
ALTER TABLE discharge_task_comments DROP COLUMN idempotency_key;

DROP INDEX discharge_conferences_idempotency;
ALTER TABLE discharge_conferences DROP COLUMN idempotency_key;
