-- Discharge coordination (入退院調整): cases opened by hospital staff, the tasks generated from
-- discharge_task_templates, comments on tasks, discharge conferences (退院前カンファレンス) with
-- their attendees, and the notices the team is given (the mail outbox sends them later).
-- Every table holds patient data and so carries patient_id (docs/architecture.md, "Two backends, one code path"). Only types both
-- backends share. Times are UTC; dates are calendar days in Japan.

CREATE TABLE discharge_cases (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    -- The hospital (organisation of kind hospital) of the staff member who opened the case.
    hospital_id TEXT NOT NULL REFERENCES organizations (id),
    opened_by TEXT NOT NULL REFERENCES users (id),
    -- The opener's care-team membership (role hospital_staff), ended when the case closes or is
    -- cancelled.
    opener_member_id TEXT NOT NULL REFERENCES care_team_members (id),
    -- The moment of admission when known; admitted_on (its JST day) always.
    admitted_at TIMESTAMP,
    admitted_on DATE NOT NULL,
    planned_discharge_on DATE,
    discharged_on DATE,
    -- open → discharged → closed, or open → cancelled.
    status TEXT NOT NULL,
    department TEXT,
    hospital_ward TEXT,
    reason TEXT,
    contact_name TEXT,
    contact_phone TEXT,
    cancel_reason TEXT,
    closed_at TIMESTAMP,
    cancelled_at TIMESTAMP,
    -- The Idempotency-Key the case was created with, unique per opener.
    idempotency_key TEXT,
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX discharge_cases_patient ON discharge_cases (patient_id, status);
-- At most one running case per patient, even when two hospitals open one at the same moment.
CREATE UNIQUE INDEX discharge_cases_running ON discharge_cases (patient_id) WHERE status IN ('open', 'discharged');
CREATE INDEX discharge_cases_hospital ON discharge_cases (hospital_id, status);
CREATE INDEX discharge_cases_status ON discharge_cases (status, id);
CREATE UNIQUE INDEX discharge_cases_idempotency ON discharge_cases (opened_by, idempotency_key);

-- A task of a case. Tasks from a template keep a copy of its deadline rule (anchor, offset_days,
-- due_rule, business_hours_rule), so that a later edit of the template does not move deadlines
-- already given; ad-hoc tasks have no rule and a deadline set by hand.
CREATE TABLE discharge_tasks (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES discharge_cases (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    template_key TEXT,
    title TEXT NOT NULL,
    description TEXT,
    source TEXT,
    -- Assigned to a profession (src/vocab.rs Profession), to one team member, or both.
    profession TEXT,
    assignee_id TEXT REFERENCES users (id),
    anchor TEXT,
    offset_days INTEGER,
    due_rule TEXT,
    business_hours_rule BOOLEAN,
    due_at TIMESTAMP,
    -- FHIR Task.status with _ for -: requested, accepted, rejected, cancelled, in_progress,
    -- on_hold, completed.
    status TEXT NOT NULL,
    status_reason TEXT,
    completed_at TIMESTAMP,
    completed_by TEXT REFERENCES users (id),
    sort_order INTEGER NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    idempotency_key TEXT,
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX discharge_tasks_case ON discharge_tasks (case_id, sort_order);
CREATE INDEX discharge_tasks_patient ON discharge_tasks (patient_id, status);
CREATE INDEX discharge_tasks_assignee ON discharge_tasks (assignee_id, status, due_at);
CREATE INDEX discharge_tasks_profession ON discharge_tasks (profession, status, due_at);
CREATE UNIQUE INDEX discharge_tasks_idempotency ON discharge_tasks (created_by, idempotency_key);

CREATE TABLE discharge_task_comments (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES discharge_tasks (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    author_id TEXT NOT NULL REFERENCES users (id),
    text TEXT NOT NULL,
    idempotency_key TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX discharge_task_comments_task ON discharge_task_comments (task_id, created_at);
CREATE INDEX discharge_task_comments_patient ON discharge_task_comments (patient_id);
CREATE UNIQUE INDEX discharge_task_comments_idempotency ON discharge_task_comments (author_id, idempotency_key);

-- 退院前カンファレンス / 退院時共同指導: what 退院・退所加算 and 退院時共同指導料 require on
-- record — when, where (or by video), who attended, and what was discussed.
CREATE TABLE discharge_conferences (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES discharge_cases (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    held_at TIMESTAMP NOT NULL,
    place TEXT,
    video BOOLEAN NOT NULL,
    content TEXT NOT NULL,
    recorded_by TEXT NOT NULL REFERENCES users (id),
    idempotency_key TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX discharge_conferences_case ON discharge_conferences (case_id, held_at);
CREATE INDEX discharge_conferences_patient ON discharge_conferences (patient_id);
CREATE UNIQUE INDEX discharge_conferences_idempotency ON discharge_conferences (recorded_by, idempotency_key);

CREATE TABLE discharge_conference_attendees (
    id TEXT PRIMARY KEY,
    conference_id TEXT NOT NULL REFERENCES discharge_conferences (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    profession TEXT NOT NULL,
    organization TEXT
);
CREATE INDEX discharge_conference_attendees_conference ON discharge_conference_attendees (conference_id, position);

-- Notices to the team (case opened, task assigned, patient discharged): the patient's timeline
-- entries for discharge coordination, and what the mail outbox will turn into emails.
-- recipient_id names one person (a task's assignee); NULL means the patient's active team.
CREATE TABLE discharge_events (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    case_id TEXT NOT NULL REFERENCES discharge_cases (id),
    task_id TEXT REFERENCES discharge_tasks (id),
    kind TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    actor_id TEXT NOT NULL REFERENCES users (id),
    recipient_id TEXT REFERENCES users (id)
);
CREATE INDEX discharge_events_patient ON discharge_events (patient_id, at);
CREATE INDEX discharge_events_case ON discharge_events (case_id, at);
