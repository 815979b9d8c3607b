-- 入退院支援加算2: the screening for patients who will find discharge hard is due within 3 days of
-- admission since the 2020 fee revision, as for 加算1 (it allowed 7 days before). The variant row
-- a hospital claiming 加算2 switches to says so, and the open tasks made from it move with it.
UPDATE discharge_task_templates
SET offset_days = 3,
    source = '入退院支援加算2 (2020改定以降)',
    note = '入院後3日以内(加算2、2020改定以降。改定前は7日以内)。加算1の discharge_screening と同じ期限。'
WHERE key = 'discharge_screening_addon2';

-- Its open tasks still on the old 7-day rule: 4 days earlier (a deadline is the end of a JST day).
UPDATE discharge_tasks
SET offset_days = 3,
    due_at = due_at - INTERVAL '4 days',
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
