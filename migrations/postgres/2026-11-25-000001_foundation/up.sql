-- Foundation: wards, organisations, accounts and sign-in sessions.
-- Only types both backends share: TEXT, BOOLEAN, TIMESTAMP (UTC), DATE, INTEGER, BIGINT.

CREATE TABLE wards (
    code TEXT PRIMARY KEY,
    city_code TEXT NOT NULL,
    name TEXT NOT NULL,
    name_en TEXT NOT NULL
);

-- Kawasaki City's seven wards, by the local government codes of the Geospatial Information
-- Authority of Japan's municipality table (docs/domain.md). Another city loads its own.
INSERT INTO wards (code, city_code, name, name_en) VALUES
    ('14131', '14130', '川崎区', 'Kawasaki-ku'),
    ('14132', '14130', '幸区', 'Saiwai-ku'),
    ('14133', '14130', '中原区', 'Nakahara-ku'),
    ('14134', '14130', '高津区', 'Takatsu-ku'),
    ('14135', '14130', '多摩区', 'Tama-ku'),
    ('14136', '14130', '宮前区', 'Miyamae-ku'),
    ('14137', '14130', '麻生区', 'Asao-ku');

CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    name_kana TEXT,
    ward_code TEXT REFERENCES wards (code),
    address TEXT,
    phone TEXT,
    active BOOLEAN NOT NULL,
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX organizations_kind_ward ON organizations (kind, ward_code);

CREATE TABLE organization_services (
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    service TEXT NOT NULL,
    PRIMARY KEY (organization_id, service)
);
CREATE INDEX organization_services_service ON organization_services (service);

CREATE TABLE users (
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
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email);
CREATE INDEX users_organization ON users (organization_id);

-- A sign-in session is one refresh-token family. Access tokens name their session, and the
-- session is checked on every request, so revoking it ends every token at once.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    revoked_reason TEXT,
    client_ip TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Refresh tokens are stored only as a SHA-256 hash; each is used once and then replaced.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    issued_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Failed sign-ins per e-mail address (hashed), known or not, so that a locked account and an
-- unknown address look the same from outside.
CREATE TABLE login_throttle (
    email_key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    lockouts INTEGER NOT NULL,
    last_failure_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP
);
