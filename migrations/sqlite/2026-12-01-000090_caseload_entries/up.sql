-- One row per patient: what a ward's caseload shows of them, kept current in the same
-- transaction as every change that moves it (src/caseload/entries.rs). A caseload page of a
-- 15,000-patient ward is then one indexed query over this table, not a scan of the ward's notes.
-- Values that depend on the clock (age, days since the last visit, overdue tasks) are derived at
-- read time from the stored dates.
CREATE TABLE caseload_entries (
    patient_id TEXT PRIMARY KEY REFERENCES patients (id),
    ward_code TEXT NOT NULL REFERENCES wards (code),
    status TEXT NOT NULL,
    -- "family given" in katakana: the default sort.
    name_kana TEXT NOT NULL,
    birth_date DATE NOT NULL,
    care_level TEXT NOT NULL,
    -- Position of care_level in the scale none < applying < support_1 … care_5, for sorting.
    care_level_rank INTEGER NOT NULL,
    -- Active care-team members, and whether one of them is the primary (home) physician.
    team_size INTEGER NOT NULL,
    has_primary_physician BOOLEAN NOT NULL,
    -- Flags raised and not yet resolved (active or acknowledged), and the highest severity.
    active_flags INTEGER NOT NULL,
    highest_flag_severity TEXT,
    -- The latest NEWS2 among the current versions of the patient's notes.
    latest_news2_total INTEGER,
    latest_news2_band TEXT,
    latest_news2_at TIMESTAMP,
    -- When the latest visit note's visit happened.
    last_visit_at TIMESTAMP,
    -- The most recently opened discharge case still open, and the earliest deadline among its
    -- open tasks (a task is overdue once that moment has passed).
    open_case_id TEXT,
    planned_discharge_on DATE,
    next_task_due_at TIMESTAMP,
    -- active, revoked or none.
    consent_state TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX caseload_entries_ward ON caseload_entries (ward_code, status, name_kana, patient_id);
