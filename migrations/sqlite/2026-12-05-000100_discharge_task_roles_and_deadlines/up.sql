-- Discharge tasks: who does them, and two deadlines corrected to the fee rules (docs/domain.md).
-- One migration, since each migration changes the schema (tests/api/schema.rs).

-- 1. Team roles.
-- Who does a discharge task is a role on the case's care team, not a profession: the hospital's
-- discharge-support staff (`hospital_staff`: every team member of the case's hospital, its
-- discharge nurse and its medical social worker alike), the care manager, the home physician
-- (`primary_physician`), the visiting nurse, the pharmacist (src/vocab.rs TeamRole). Templates and
-- tasks carry it beside the profession they keep for older clients; routing follows the role.

ALTER TABLE discharge_task_templates ADD COLUMN team_role TEXT NOT NULL DEFAULT 'other';
ALTER TABLE discharge_tasks ADD COLUMN team_role TEXT;

-- The seeded rows by what they are (a row a hospital gave to its discharge nurse, profession
-- `nurse`, stays the hospital's); any other row by its profession (`ROLE_FOR_PROFESSION` in
-- src/discharge/tasks.rs says the same).
UPDATE discharge_task_templates SET team_role = CASE
    WHEN key IN ('discharge_screening', 'discharge_screening_addon2', 'patient_family_interview',
                 'patient_family_interview_long_term_care', 'multidisciplinary_conference',
                 'joint_discharge_conference') THEN 'hospital_staff'
    WHEN key IN ('admission_info', 'admission_info_ii', 'discharge_info_collection', 'care_plan',
                 'equipment_home_adaptation') THEN 'care_manager'
    WHEN key IN ('home_nursing_order', 'special_home_nursing_order') THEN 'primary_physician'
    WHEN key = 'medication_reconciliation' THEN 'pharmacist'
    WHEN key = 'first_home_visit' THEN 'visiting_nurse'
    WHEN profession = 'physician' THEN 'primary_physician'
    WHEN profession = 'nurse' THEN 'visiting_nurse'
    WHEN profession = 'social_worker' THEN 'hospital_staff'
    WHEN profession IN ('pharmacist', 'care_manager', 'dentist', 'therapist', 'helper') THEN profession
    ELSE 'other'
END;

-- Tasks from a template take its role; ad-hoc tasks the role of their profession, or else of
-- their assignee on the team.
UPDATE discharge_tasks SET team_role = (
    SELECT t.team_role FROM discharge_task_templates t WHERE t.key = discharge_tasks.template_key
)
WHERE template_key IS NOT NULL;
UPDATE discharge_tasks SET team_role = CASE
    WHEN profession = 'physician' THEN 'primary_physician'
    WHEN profession = 'nurse' THEN 'visiting_nurse'
    WHEN profession = 'social_worker' THEN 'hospital_staff'
    WHEN profession IN ('pharmacist', 'care_manager', 'dentist', 'therapist', 'helper', 'other') THEN profession
    ELSE NULL
END
WHERE team_role IS NULL AND profession IS NOT NULL;
UPDATE discharge_tasks SET team_role = (
    SELECT m.role FROM care_team_members m
    WHERE m.patient_id = discharge_tasks.patient_id AND m.user_id = discharge_tasks.assignee_id
    ORDER BY m.ended_at IS NOT NULL, m.started_on DESC, m.id DESC
    LIMIT 1
)
WHERE team_role IS NULL AND assignee_id IS NOT NULL;

-- 2. 入退院支援加算2.
-- 入退院支援加算2: the screening for patients who will find discharge hard is due within 3 days of
-- admission since the 2020 fee revision, as for 加算1 (it allowed 7 days before). The variant row
-- a hospital claiming 加算2 switches to says so, and the open tasks made from it move with it.
UPDATE discharge_task_templates
SET offset_days = 3,
    source = '入退院支援加算2 (2020改定以降)',
    note = '入院後3日以内(加算2、2020改定以降。改定前は7日以内)。加算1の discharge_screening と同じ期限。'
WHERE key = 'discharge_screening_addon2';

-- Its open tasks still on the old 7-day rule: 4 days earlier. A deadline is the end of a JST day,
-- stored as 'YYYY-MM-DD 14:59:59.999999' UTC, so moving the date part moves it exactly.
UPDATE discharge_tasks
SET offset_days = 3,
    due_at = CASE WHEN due_at IS NULL THEN NULL ELSE date(substr(due_at, 1, 10), '-4 days') || substr(due_at, 11) END,
    version = version + 1
WHERE template_key = 'discharge_screening_addon2'
  AND offset_days = 7
  AND status NOT IN ('rejected', 'cancelled', 'failed', 'completed', 'entered_in_error');

-- Their patients' caseload entries are written again at start (`renkei migrate`, `renkei serve`).
DELETE FROM caseload_entries
WHERE patient_id IN (
    SELECT t.patient_id FROM discharge_tasks t JOIN discharge_cases c ON c.id = t.case_id
    WHERE t.template_key = 'discharge_screening_addon2' AND c.status IN ('open', 'discharged')
);

-- 3. 退院時共同指導.
-- 退院時共同指導料1/2: the joint guidance may be given on the day of discharge itself, so the
-- joint discharge conference is due by the end of the discharge day (anchor `discharge_day`: the
-- actual discharge date once known, the planned one until then), not by the end of the day before.
UPDATE discharge_task_templates
SET anchor = 'discharge_day', offset_days = 0, due_rule = 'end_of_day'
WHERE key = 'joint_discharge_conference'
  AND anchor = 'planned_discharge' AND offset_days = 0 AND due_rule = 'before_anchor';

-- Its open tasks follow: the end (JST) of the case's discharge day, stored as that date at
-- 14:59:59.999999 UTC; no deadline while neither date is known.
UPDATE discharge_tasks
SET anchor = 'discharge_day',
    offset_days = 0,
    due_rule = 'end_of_day',
    due_at = (
        SELECT CASE
            WHEN COALESCE(c.discharged_on, c.planned_discharge_on) IS NULL THEN NULL
            ELSE COALESCE(c.discharged_on, c.planned_discharge_on) || ' 14:59:59.999999'
        END
        FROM discharge_cases c WHERE c.id = discharge_tasks.case_id
    ),
    version = version + 1
WHERE template_key = 'joint_discharge_conference'
  AND anchor = 'planned_discharge' AND offset_days = 0 AND due_rule = 'before_anchor'
  AND status NOT IN ('rejected', 'cancelled', 'failed', 'completed', 'entered_in_error');

-- Their patients' caseload entries are written again at start (`renkei migrate`, `renkei serve`).
DELETE FROM caseload_entries
WHERE patient_id IN (
    SELECT t.patient_id FROM discharge_tasks t JOIN discharge_cases c ON c.id = t.case_id
    WHERE t.template_key = 'joint_discharge_conference' AND c.status IN ('open', 'discharged')
);

-- 4. The caseload.
-- The caseload keeps a discharge case after discharge, until it is closed or cancelled
-- (src/caseload/entries.rs). Entries written before this counted open cases only: those of
-- patients with a discharged case are dropped here and written again, from the source tables, at
-- start (`renkei migrate` and `renkei serve` fill missing entries).
DELETE FROM caseload_entries
WHERE patient_id IN (SELECT patient_id FROM discharge_cases WHERE status = 'discharged');
