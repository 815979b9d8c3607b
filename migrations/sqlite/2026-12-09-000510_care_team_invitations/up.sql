-- Invitations into a patient's care team (src/patients/invitations.rs): a lead or care manager
-- invites an account, or an e-mail address, in a role; the invitee accepts or declines with the
-- e-mailed one-time token, of which only the SHA-256 is kept. `status` is pending, accepted,
-- declined or revoked; a pending invitation past `expires_at` reads as expired.
CREATE TABLE care_team_invitations (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    token_hash TEXT NOT NULL,
    invitee_user_id TEXT REFERENCES users (id),
    invitee_email TEXT,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    invited_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    responded_at TIMESTAMP,
    responded_by TEXT REFERENCES users (id),
    member_id TEXT REFERENCES care_team_members (id),
    CHECK (invitee_user_id IS NOT NULL OR invitee_email IS NOT NULL)
);
CREATE INDEX care_team_invitations_patient ON care_team_invitations (patient_id, created_at);
CREATE UNIQUE INDEX care_team_invitations_token ON care_team_invitations (token_hash);
