ALTER TABLE discharge_tasks DROP COLUMN team_role;
ALTER TABLE discharge_task_templates DROP COLUMN team_role;
