-- The daily digest of overdue and due-today discharge tasks is sent once per JST day, however
-- many instances run: an instance claims the day by inserting its row (the primary key refuses
-- a second claim) in the transaction that queues the day's e-mails.
CREATE TABLE task_digest_days (
    day DATE PRIMARY KEY,
    claimed_by TEXT NOT NULL,
    claimed_at TIMESTAMP NOT NULL,
    emails INTEGER NOT NULL
);
