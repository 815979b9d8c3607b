PRAGMA foreign_keys = OFF;
BEGIN;
DROP TABLE family_message_errors;
DROP TABLE family_messages;
DROP TABLE patient_participants;
ALTER TABLE care_team_invitations DROP COLUMN decided_at;
ALTER TABLE care_team_invitations DROP COLUMN decided_by;
ALTER TABLE patients DROP COLUMN approval_waived_at;
ALTER TABLE patients DROP COLUMN approval_waived_by;
ALTER TABLE patients DROP COLUMN approval_waived_reason;
-- Fails while accounts without an organisation exist: the older schema cannot hold them.
CREATE TABLE users_rebuilt (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    name_kana TEXT,
    profession TEXT NOT NULL,
    role TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    locale TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    password_changed_at TIMESTAMP NOT NULL,
    totp_secret TEXT,
    totp_enabled BOOLEAN NOT NULL,
    totp_last_step BIGINT,
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    flag_notifications TEXT NOT NULL DEFAULT 'all'
);
INSERT INTO users_rebuilt SELECT id, organization_id, email, name, name_kana, profession, role, active,
    locale, password_hash, password_changed_at, totp_secret, totp_enabled, totp_last_step, version,
    created_at, updated_at, flag_notifications FROM users;
DROP TABLE users;
ALTER TABLE users_rebuilt RENAME TO users;
CREATE UNIQUE INDEX users_email_active ON users (email) WHERE active;
CREATE INDEX users_email ON users (email);
CREATE INDEX users_organization ON users (organization_id);
COMMIT;
PRAGMA foreign_keys = ON;
