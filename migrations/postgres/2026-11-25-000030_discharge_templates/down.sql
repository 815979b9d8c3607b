DROP TABLE discharge_task_templates;
