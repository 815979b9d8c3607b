-- The visit week: each member's recurring visits (visit plans) and one-off appointments,
-- conferences among them. Versioned like the care records: a head row names the current version
-- (its optimistic-concurrency counter) and every version is a row of its own that is never
-- changed or deleted. A plan ends (valid_until); an appointment is cancelled or marked entered in
-- error; neither is removed.
CREATE TABLE visit_plans (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX visit_plans_patient ON visit_plans (patient_id);
-- weekdays: ISO weekday numbers (1 = Monday) as a JSON array; start_minute: minutes after
-- midnight in Asia/Tokyo (no TIME type both backends share).
CREATE TABLE visit_plan_versions (
    id TEXT PRIMARY KEY NOT NULL,
    plan_id TEXT NOT NULL REFERENCES visit_plans (id),
    version INTEGER NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    service_type TEXT NOT NULL,
    weekdays TEXT NOT NULL,
    start_minute INTEGER NOT NULL,
    duration_minutes INTEGER NOT NULL,
    valid_from DATE NOT NULL,
    valid_until DATE,
    note TEXT,
    reason TEXT,
    recorded_by TEXT NOT NULL REFERENCES users (id),
    recorded_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX visit_plan_versions_version ON visit_plan_versions (plan_id, version);
CREATE INDEX visit_plan_versions_user ON visit_plan_versions (user_id);

-- attendees: user ids of care-team members, a JSON array. minutes_note_id: the note holding
-- the minutes of a conference.
CREATE TABLE appointments (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX appointments_patient ON appointments (patient_id);
CREATE TABLE appointment_versions (
    id TEXT PRIMARY KEY NOT NULL,
    appointment_id TEXT NOT NULL REFERENCES appointments (id),
    version INTEGER NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    kind TEXT NOT NULL,
    service_type TEXT,
    starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP NOT NULL,
    place TEXT,
    video_url TEXT,
    attendees TEXT NOT NULL,
    status TEXT NOT NULL,
    minutes_note_id TEXT REFERENCES notes (id),
    note TEXT,
    reason TEXT,
    recorded_by TEXT NOT NULL REFERENCES users (id),
    recorded_at TIMESTAMP NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE UNIQUE INDEX appointment_versions_version ON appointment_versions (appointment_id, version);
CREATE INDEX appointment_versions_patient ON appointment_versions (patient_id, starts_at);

-- Nothing here is ever deleted, and a version is never changed.
CREATE FUNCTION visit_week_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: a plan is ended, an appointment cancelled or marked entered in error', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER visit_plan_versions_no_update BEFORE UPDATE OR DELETE ON visit_plan_versions
    FOR EACH ROW EXECUTE FUNCTION visit_week_append_only();
CREATE TRIGGER visit_plans_no_delete BEFORE DELETE ON visit_plans
    FOR EACH ROW EXECUTE FUNCTION visit_week_append_only();
CREATE TRIGGER appointment_versions_no_update BEFORE UPDATE OR DELETE ON appointment_versions
    FOR EACH ROW EXECUTE FUNCTION visit_week_append_only();
CREATE TRIGGER appointments_no_delete BEFORE DELETE ON appointments
    FOR EACH ROW EXECUTE FUNCTION visit_week_append_only();
CREATE TRIGGER visit_plan_versions_no_truncate BEFORE TRUNCATE ON visit_plan_versions
    FOR EACH STATEMENT EXECUTE FUNCTION visit_week_append_only();
CREATE TRIGGER visit_plans_no_truncate BEFORE TRUNCATE ON visit_plans
    FOR EACH STATEMENT EXECUTE FUNCTION visit_week_append_only();
CREATE TRIGGER appointment_versions_no_truncate BEFORE TRUNCATE ON appointment_versions
    FOR EACH STATEMENT EXECUTE FUNCTION visit_week_append_only();
CREATE TRIGGER appointments_no_truncate BEFORE TRUNCATE ON appointments
    FOR EACH STATEMENT EXECUTE FUNCTION visit_week_append_only();
