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
