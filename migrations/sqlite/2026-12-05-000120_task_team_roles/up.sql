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
