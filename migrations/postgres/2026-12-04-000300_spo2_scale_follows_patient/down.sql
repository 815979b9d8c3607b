ALTER TABLE note_versions DROP COLUMN spo2_scale_reason;
ALTER TABLE note_versions DROP COLUMN spo2_scale_basis;
