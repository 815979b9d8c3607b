-- SpO2 scale 2 follows the patient (docs/domain.md, NEWS2): a note records why its SpO2 was
-- scored on the scale it was — `standard` (scale 1, no recorded 88–92% target),
-- `patient_target` (scale 2, the clinician's decision recorded for the patient) or
-- `note_override` (scale 1 for a scale-2 patient, with the reason given in the note).
-- Versions recorded before this upgrade keep NULL: which rule scored them was not recorded, and
-- note versions are append-only (never updated), so nothing is guessed for them.
ALTER TABLE note_versions ADD COLUMN spo2_scale_basis TEXT;
ALTER TABLE note_versions ADD COLUMN spo2_scale_reason TEXT;
