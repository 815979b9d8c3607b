-- The insurance numbers practice identifies a patient by (docs/domain.md, "Insurance numbers"):
-- 介護保険 保険者番号 (6 digits) and 被保険者番号 (10 digits); 医療保険 保険者番号 (8 digits, 6 for
-- 国民健康保険), 記号, 番号 and 枝番. Digits are stored as ASCII digits, card text in NFKC form.
-- One row per patient; a part not given is NULL. A hospital finds a patient by these numbers
-- together with the birth date and the kana family name.
CREATE TABLE patient_insurance (
    patient_id TEXT PRIMARY KEY REFERENCES patients (id),
    ltc_insurer_number TEXT,
    ltc_insured_number TEXT,
    medical_insurer_number TEXT,
    medical_symbol TEXT,
    medical_number TEXT,
    medical_branch TEXT,
    recorded_by TEXT NOT NULL REFERENCES users (id),
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX patient_insurance_ltc ON patient_insurance (ltc_insured_number, ltc_insurer_number);
CREATE INDEX patient_insurance_medical ON patient_insurance (medical_insurer_number, medical_number);
-- A duplicate registration merged into the patient that stays: the duplicate keeps its notes,
-- cases and audit trail (all append-only) and points at the surviving record.
ALTER TABLE patients ADD COLUMN superseded_by TEXT REFERENCES patients (id);
CREATE INDEX patients_superseded_by ON patients (superseded_by);
