DROP INDEX notes_patient_kind;
