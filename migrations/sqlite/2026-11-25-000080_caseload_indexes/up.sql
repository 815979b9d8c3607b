-- The caseload: the latest visit note of each patient of a ward.
CREATE INDEX notes_patient_kind ON notes (patient_id, kind);
