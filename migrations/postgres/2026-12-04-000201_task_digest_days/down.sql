DROP TABLE task_digest_days;
