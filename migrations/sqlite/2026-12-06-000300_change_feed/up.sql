-- The change feed (GET /changes, GET /changes/stream): every recorded change, appended in the
-- writing transaction (src/sync). On SQLite the one writer appends (src/db/writer.rs), the
-- writer numbers the rows, and commit order is `seq` order: `tx` stays 0 (it orders PostgreSQL's
-- rows, whose transactions commit out of `seq` order; see src/sync/mod.rs).
-- A row with `user_id` is addressed to that person alone: access to the patient gained or lost.
CREATE TABLE change_log (
    seq BIGINT PRIMARY KEY NOT NULL,
    tx BIGINT NOT NULL DEFAULT 0,
    patient_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT,
    recorded_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX change_log_position ON change_log (tx, seq);
CREATE INDEX change_log_patient ON change_log (patient_id, tx, seq);

-- Who follows a patient's changes now (the care team's members in service), kept by the change
-- log so that a person who stops following gets a tombstone.
CREATE TABLE change_followers (
    patient_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (patient_id, user_id)
);
CREATE INDEX change_followers_user ON change_followers (user_id);
INSERT INTO change_followers (patient_id, user_id)
SELECT DISTINCT m.patient_id, m.user_id
FROM care_team_members m JOIN organizations o ON o.id = m.organization_id
WHERE m.ended_at IS NULL AND o.active;
