-- The shared notebook: notes, their versions, read receipts (既読), and the
-- idempotency keys that make offline retries of a POST safe. Every patient-data table carries
-- patient_id (docs/architecture.md, "Two backends, one code path").
--
-- A note is never edited or deleted (真正性, authenticity of the electronic record): `notes` holds
-- what never changes (patient, kind, author, when it was first recorded) and `note_versions` every
-- version of its content; an amendment adds a version with a reason, and the current version is
-- the highest one. Both tables refuse UPDATE and DELETE in the database itself.

CREATE TABLE notes (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    kind TEXT NOT NULL,
    author_id TEXT NOT NULL REFERENCES users (id),
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    -- The author's profession when the note was written (lists filter by it).
    author_profession TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX notes_patient_created ON notes (patient_id, created_at);

CREATE TABLE note_versions (
    note_id TEXT NOT NULL REFERENCES notes (id),
    version INTEGER NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    occurred_at TIMESTAMP NOT NULL,
    text TEXT NOT NULL,
    soap_subjective TEXT,
    soap_objective TEXT,
    soap_assessment TEXT,
    soap_plan TEXT,
    -- Vital signs as given (all NULL when the note has none).
    temperature DOUBLE PRECISION,
    systolic_bp INTEGER,
    diastolic_bp INTEGER,
    pulse INTEGER,
    respiratory_rate INTEGER,
    spo2 INTEGER,
    spo2_scale INTEGER,
    on_oxygen BOOLEAN,
    consciousness TEXT,
    -- NEWS2 scored when the version was recorded, so lists need no recomputation; the subscores
    -- are a JSON object (NULL entries = not measured).
    news2_total INTEGER,
    news2_band TEXT,
    news2_partial BOOLEAN,
    news2_subscores TEXT,
    -- 在宅医療情報連携加算 (2024): a physician's information-sharing note (kind physician_info_sharing).
    next_visit_on DATE,
    treatment_policy_changed BOOLEAN,
    treatment_policy_summary TEXT,
    cautions_for_team TEXT,
    author_id TEXT NOT NULL REFERENCES users (id),
    -- Why this version supersedes the previous one (NULL for version 1).
    reason TEXT,
    recorded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (note_id, version)
);
-- The patient's notebook, newest first: GET /patients/{id}/notes, timeline and vital-sign trends.
CREATE INDEX note_versions_list ON note_versions (patient_id, occurred_at DESC, note_id);

-- Who read which note, first read kept. The author counts as having read their own note.
CREATE TABLE note_reads (
    note_id TEXT NOT NULL REFERENCES notes (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    read_at TIMESTAMP NOT NULL,
    PRIMARY KEY (note_id, user_id)
);
CREATE INDEX note_reads_user ON note_reads (user_id);

-- Idempotency-Key of a POST, per user: the first request's hash and answer, kept at least 7 days.
-- A row without a status is a request still in flight.
CREATE TABLE idempotency_keys (
    user_id TEXT NOT NULL REFERENCES users (id),
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status_code INTEGER,
    response_body TEXT,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Notes are append-only in the database itself, not only in the API.
CREATE TRIGGER notes_no_update BEFORE UPDATE ON notes
BEGIN
    SELECT RAISE(ABORT, 'notes is append-only: a note is amended by adding a version');
END;
CREATE TRIGGER notes_no_delete BEFORE DELETE ON notes
BEGIN
    SELECT RAISE(ABORT, 'notes is append-only: a note is amended by adding a version');
END;
CREATE TRIGGER note_versions_no_update BEFORE UPDATE ON note_versions
BEGIN
    SELECT RAISE(ABORT, 'note_versions is append-only: a note is amended by adding a version');
END;
CREATE TRIGGER note_versions_no_delete BEFORE DELETE ON note_versions
BEGIN
    SELECT RAISE(ABORT, 'note_versions is append-only: a note is amended by adding a version');
END;
