-- The recorded insurance numbers carry a version, as every record that people edit does: a PUT
-- names the version it replaces (If-Match), so two people typing in the numbers from different
-- cards do not silently overwrite each other. Rows recorded before are version 1.
ALTER TABLE patient_insurance ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
