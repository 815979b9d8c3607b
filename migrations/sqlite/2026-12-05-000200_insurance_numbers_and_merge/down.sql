DROP INDEX patients_superseded_by;
ALTER TABLE patients DROP COLUMN superseded_by;
DROP TABLE patient_insurance;
