-- Patients, consent, care teams, ward coordinators, emergency access and the audit trail.
-- Every table that holds patient data carries patient_id (docs/architecture.md, "Two backends, one code path").

CREATE TABLE patients (
    id TEXT PRIMARY KEY,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    family_name_kana TEXT NOT NULL,
    given_name_kana TEXT NOT NULL,
    -- Kana without spaces, for prefix search on the full reading.
    name_kana_search TEXT NOT NULL,
    birth_date DATE NOT NULL,
    sex TEXT NOT NULL,
    ward_code TEXT NOT NULL REFERENCES wards (code),
    address TEXT,
    phone TEXT,
    care_level TEXT NOT NULL,
    status TEXT NOT NULL,
    emergency_contact_name TEXT,
    emergency_contact_relationship TEXT,
    emergency_contact_phone TEXT,
    -- A prescribed target saturation of 88–92% (hypercapnic respiratory failure): NEWS2 SpO2 scale 2.
    spo2_target_88_92 BOOLEAN NOT NULL,
    registered_by TEXT NOT NULL REFERENCES users (id),
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX patients_ward_status ON patients (ward_code, status);
CREATE INDEX patients_kana ON patients (name_kana_search);

CREATE TABLE consents (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    scope TEXT NOT NULL,
    obtained_from TEXT NOT NULL,
    obtained_on DATE NOT NULL,
    obtained_by TEXT NOT NULL REFERENCES users (id),
    note TEXT,
    revoked_at TIMESTAMP,
    revoked_by TEXT REFERENCES users (id),
    revoke_reason TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX consents_patient ON consents (patient_id, created_at);

-- A membership with no ended_at is the access boundary (src/access.rs).
CREATE TABLE care_team_members (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    role TEXT NOT NULL,
    is_lead BOOLEAN NOT NULL,
    started_on DATE NOT NULL,
    ended_on DATE,
    ended_at TIMESTAMP,
    added_by TEXT NOT NULL REFERENCES users (id),
    ended_by TEXT REFERENCES users (id),
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX care_team_members_patient ON care_team_members (patient_id, ended_at);
CREATE INDEX care_team_members_user ON care_team_members (user_id, ended_at);

CREATE TABLE ward_coordinators (
    ward_code TEXT NOT NULL REFERENCES wards (code),
    user_id TEXT NOT NULL REFERENCES users (id),
    assigned_by TEXT NOT NULL REFERENCES users (id),
    assigned_at TIMESTAMP NOT NULL,
    PRIMARY KEY (ward_code, user_id)
);
CREATE INDEX ward_coordinators_user ON ward_coordinators (user_id);

CREATE TABLE emergency_access (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    reason TEXT NOT NULL,
    granted_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX emergency_access_user ON emergency_access (user_id, patient_id, expires_at);
CREATE INDEX emergency_access_patient ON emergency_access (patient_id, granted_at);

-- Append-only, hash-chained audit trail. One chain per patient (chain_key = patient id; '-' for
-- events about no existing patient), so writes for different patients never wait on each other;
-- the head row of a chain is locked only by writers of that chain.
CREATE TABLE audit_chain_heads (
    chain_key TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    chain_key TEXT NOT NULL,
    chain_seq BIGINT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    actor_id TEXT,
    action TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT,
    patient_id TEXT,
    outcome TEXT NOT NULL,
    priority TEXT NOT NULL,
    source_ip TEXT,
    detail TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_events_chain ON audit_events (chain_key, chain_seq);
CREATE INDEX audit_events_patient ON audit_events (patient_id, occurred_at);
CREATE INDEX audit_events_actor ON audit_events (actor_id, occurred_at);

-- The trail is append-only in the database itself, not only in the API.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
