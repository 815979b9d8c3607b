-- Photos and documents on notes and discharge cases. The bytes live in the object store under a
-- random key the server mints (never a name a client sent); a row exists only once its object is
-- stored, so an interrupted upload leaves at most an orphan object that `renkei attachments sweep`
-- removes. A note's attachment belongs to the version that was current when it was added: an
-- older version keeps exactly the files it had.
-- Like notes, attachments are append-only: an attachment is never edited or deleted, only marked
-- entered in error (attachment_errors) and hidden from normal views.
CREATE TABLE attachments (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    note_id TEXT REFERENCES notes (id),
    note_version INTEGER,
    case_id TEXT REFERENCES discharge_cases (id),
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    byte_size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    storage_key TEXT NOT NULL,
    thumbnail_key TEXT,
    uploaded_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    CHECK ((note_id IS NULL) = (note_version IS NULL)),
    CHECK ((note_id IS NULL) <> (case_id IS NULL))
);
CREATE UNIQUE INDEX attachments_storage_key ON attachments (storage_key);
CREATE INDEX attachments_note ON attachments (note_id, note_version);
CREATE INDEX attachments_case ON attachments (case_id);
CREATE INDEX attachments_patient ON attachments (patient_id, created_at);

CREATE TABLE attachment_errors (
    attachment_id TEXT PRIMARY KEY NOT NULL REFERENCES attachments (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    reason TEXT NOT NULL,
    marked_by TEXT NOT NULL REFERENCES users (id),
    marked_at TIMESTAMP NOT NULL
);

CREATE TRIGGER attachments_no_update BEFORE UPDATE ON attachments
BEGIN
    SELECT RAISE(ABORT, 'attachments is append-only: an attachment is only marked entered in error');
END;
CREATE TRIGGER attachments_no_delete BEFORE DELETE ON attachments
BEGIN
    SELECT RAISE(ABORT, 'attachments is append-only: an attachment is only marked entered in error');
END;
CREATE TRIGGER attachment_errors_no_update BEFORE UPDATE ON attachment_errors
BEGIN
    SELECT RAISE(ABORT, 'attachment_errors is append-only');
END;
CREATE TRIGGER attachment_errors_no_delete BEFORE DELETE ON attachment_errors
BEGIN
    SELECT RAISE(ABORT, 'attachment_errors is append-only');
END;
