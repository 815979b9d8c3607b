-- The row as seeded before the correction; tasks keep the deadlines they were given.
UPDATE discharge_task_templates
SET offset_days = 7,
    source = '入退院支援加算2',
    note = '入院後7日以内(加算2)。既定は加算1の discharge_screening。'
WHERE key = 'discharge_screening_addon2';
