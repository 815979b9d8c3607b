-- The row as seeded before (by the end of the day before the planned discharge); tasks keep the
-- deadlines they were given.
UPDATE discharge_task_templates
SET anchor = 'planned_discharge', offset_days = 0, due_rule = 'before_anchor'
WHERE key = 'joint_discharge_conference';
UPDATE discharge_tasks
SET anchor = 'planned_discharge', due_rule = 'before_anchor'
WHERE template_key = 'joint_discharge_conference' AND anchor = 'discharge_day';

-- The row as seeded before the correction; tasks keep the deadlines they were given.
UPDATE discharge_task_templates
SET offset_days = 7,
    source = '入退院支援加算2',
    note = '入院後7日以内(加算2)。既定は加算1の discharge_screening。'
WHERE key = 'discharge_screening_addon2';

ALTER TABLE discharge_tasks DROP COLUMN team_role;
ALTER TABLE discharge_task_templates DROP COLUMN team_role;
