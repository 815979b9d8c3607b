ALTER TABLE patient_insurance DROP COLUMN version;
