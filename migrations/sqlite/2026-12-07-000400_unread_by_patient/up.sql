-- What each person has not read, per patient of their current care teams: kept by the writes
-- that move it (a new note, a first read, a team change), so `GET /me/unread` reads one row
-- per patient instead of counting every note of the caseload on each request.
CREATE TABLE unread_by_patient (
    user_id TEXT NOT NULL REFERENCES users (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    unread_count INTEGER NOT NULL,
    newest_unread_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, patient_id)
);
-- The summary's order: the patient with the most recently recorded unread note first.
CREATE INDEX unread_by_patient_newest ON unread_by_patient (user_id, newest_unread_at DESC, patient_id);

-- An existing database: what every current member has not read now.
INSERT INTO unread_by_patient (user_id, patient_id, unread_count, newest_unread_at)
SELECT m.user_id, n.patient_id, COUNT(*), MAX(n.created_at)
FROM (SELECT DISTINCT user_id, patient_id FROM care_team_members WHERE ended_at IS NULL) m
JOIN notes n ON n.patient_id = m.patient_id
WHERE NOT EXISTS (SELECT 1 FROM note_reads r WHERE r.note_id = n.id AND r.user_id = m.user_id)
GROUP BY m.user_id, n.patient_id;
