-- The caseload keeps a discharge case after discharge, until it is closed or cancelled
-- (src/caseload/entries.rs). Entries written before this counted open cases only: those of
-- patients with a discharged case are dropped here and written again, from the source tables, at
-- start (`renkei migrate` and `renkei serve` fill missing entries).
DELETE FROM caseload_entries
WHERE patient_id IN (SELECT patient_id FROM discharge_cases WHERE status = 'discharged');
