-- The per-table keys come back, empty, in their old place: the columns that stood after them
-- are moved behind them (renamed, added again, copied, dropped), since neither backend inserts a
-- column in the middle of a table.

ALTER TABLE discharge_cases ADD COLUMN idempotency_key TEXT;
ALTER TABLE discharge_cases RENAME COLUMN version TO version_moved;
ALTER TABLE discharge_cases ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
UPDATE discharge_cases SET version = version_moved;
ALTER TABLE discharge_cases DROP COLUMN version_moved;
ALTER TABLE discharge_cases RENAME COLUMN created_at TO created_at_moved;
ALTER TABLE discharge_cases ADD COLUMN created_at TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
UPDATE discharge_cases SET created_at = created_at_moved;
ALTER TABLE discharge_cases DROP COLUMN created_at_moved;
ALTER TABLE discharge_cases RENAME COLUMN updated_at TO updated_at_moved;
ALTER TABLE discharge_cases ADD COLUMN updated_at TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
UPDATE discharge_cases SET updated_at = updated_at_moved;
ALTER TABLE discharge_cases DROP COLUMN updated_at_moved;
CREATE UNIQUE INDEX discharge_cases_idempotency ON discharge_cases (opened_by, idempotency_key);

ALTER TABLE discharge_tasks ADD COLUMN idempotency_key TEXT;
ALTER TABLE discharge_tasks RENAME COLUMN version TO version_moved;
ALTER TABLE discharge_tasks ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
UPDATE discharge_tasks SET version = version_moved;
ALTER TABLE discharge_tasks DROP COLUMN version_moved;
ALTER TABLE discharge_tasks RENAME COLUMN created_at TO created_at_moved;
ALTER TABLE discharge_tasks ADD COLUMN created_at TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
UPDATE discharge_tasks SET created_at = created_at_moved;
ALTER TABLE discharge_tasks DROP COLUMN created_at_moved;
ALTER TABLE discharge_tasks RENAME COLUMN updated_at TO updated_at_moved;
ALTER TABLE discharge_tasks ADD COLUMN updated_at TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
UPDATE discharge_tasks SET updated_at = updated_at_moved;
ALTER TABLE discharge_tasks DROP COLUMN updated_at_moved;
CREATE UNIQUE INDEX discharge_tasks_idempotency ON discharge_tasks (created_by, idempotency_key);

DROP INDEX discharge_task_comments_task;
ALTER TABLE discharge_task_comments ADD COLUMN idempotency_key TEXT;
ALTER TABLE discharge_task_comments RENAME COLUMN created_at TO created_at_moved;
ALTER TABLE discharge_task_comments ADD COLUMN created_at TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
UPDATE discharge_task_comments SET created_at = created_at_moved;
ALTER TABLE discharge_task_comments DROP COLUMN created_at_moved;
CREATE INDEX discharge_task_comments_task ON discharge_task_comments (task_id, created_at);
CREATE UNIQUE INDEX discharge_task_comments_idempotency ON discharge_task_comments (author_id, idempotency_key);

ALTER TABLE discharge_conferences ADD COLUMN idempotency_key TEXT;
ALTER TABLE discharge_conferences RENAME COLUMN created_at TO created_at_moved;
ALTER TABLE discharge_conferences ADD COLUMN created_at TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
UPDATE discharge_conferences SET created_at = created_at_moved;
ALTER TABLE discharge_conferences DROP COLUMN created_at_moved;
CREATE UNIQUE INDEX discharge_conferences_idempotency ON discharge_conferences (recorded_by, idempotency_key);
