-- People without an organisation exist: the patient, family members and the key person. Such an
-- account is never an administrator and is of no profession.
ALTER TABLE users ALTER COLUMN organization_id DROP NOT NULL;
ALTER TABLE users ADD CONSTRAINT users_layperson_without_organization
    CHECK (organization_id IS NOT NULL OR (profession = 'layperson' AND role = 'member'));

-- The patient, family members and the key person (キーパーソン) take part in a patient's circle
-- through a relation of their own, never as care-team members (src/patients/participants.rs).
-- A participant is invited by e-mail: the row exists from the invitation, with the SHA-256 of
-- its one-time token; `user_id` is set when the invitee takes it up. `status` is invited,
-- active or ended; an invited row past `expires_at` reads as expired.
CREATE TABLE patient_participants (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    user_id TEXT REFERENCES users (id),
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    relationship TEXT,
    status TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    invited_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    joined_at TIMESTAMP,
    ended_at TIMESTAMP,
    ended_by TEXT REFERENCES users (id)
);
CREATE INDEX patient_participants_patient ON patient_participants (patient_id, created_at);
CREATE INDEX patient_participants_user ON patient_participants (user_id, patient_id);
CREATE UNIQUE INDEX patient_participants_token ON patient_participants (token_hash);

-- The family channel (src/family/): messages between the patient's family and the team. What a
-- professional posts here is what they choose to share with the family. `flag_id` is the flag a
-- family member's message raised for the team.
CREATE TABLE family_messages (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    author_id TEXT NOT NULL REFERENCES users (id),
    text TEXT NOT NULL,
    flag_id TEXT REFERENCES flags (id),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX family_messages_patient ON family_messages (patient_id, created_at, id);

-- A family message sent by mistake is marked entered in error by its writer, with a reason; the
-- message itself stays as it was (append-only).
CREATE TABLE family_message_errors (
    message_id TEXT PRIMARY KEY REFERENCES family_messages (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    marked_by TEXT NOT NULL REFERENCES users (id),
    reason TEXT NOT NULL,
    marked_at TIMESTAMP NOT NULL
);

-- Joining waits for the patient's (or key person's) approval where they take part: an accepted
-- invitation is `awaiting_approval` until they decide (`approved` makes the membership, or
-- `refused`). `decided_by`/`decided_at` record who decided.
ALTER TABLE care_team_invitations ADD COLUMN decided_by TEXT REFERENCES users (id);
ALTER TABLE care_team_invitations ADD COLUMN decided_at TIMESTAMP;

-- For a patient who cannot approve (dementia, say), the care manager decides instead: the
-- recorded reason, who recorded it and when. NULL: the patient or key person approves.
ALTER TABLE patients ADD COLUMN approval_waived_reason TEXT;
ALTER TABLE patients ADD COLUMN approval_waived_by TEXT REFERENCES users (id);
ALTER TABLE patients ADD COLUMN approval_waived_at TIMESTAMP;
CREATE FUNCTION family_messages_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER family_messages_no_update BEFORE UPDATE OR DELETE ON family_messages
    FOR EACH ROW EXECUTE FUNCTION family_messages_append_only();
CREATE TRIGGER family_messages_no_truncate BEFORE TRUNCATE ON family_messages
    FOR EACH STATEMENT EXECUTE FUNCTION family_messages_append_only();
