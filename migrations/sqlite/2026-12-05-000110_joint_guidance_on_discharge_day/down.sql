-- The row as seeded before (by the end of the day before the planned discharge); tasks keep the
-- deadlines they were given.
UPDATE discharge_task_templates
SET anchor = 'planned_discharge', offset_days = 0, due_rule = 'before_anchor'
WHERE key = 'joint_discharge_conference';
UPDATE discharge_tasks
SET anchor = 'planned_discharge', due_rule = 'before_anchor'
WHERE template_key = 'joint_discharge_conference' AND anchor = 'discharge_day';
