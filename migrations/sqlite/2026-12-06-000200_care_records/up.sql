-- What a home-care team keeps besides notes (docs/domain.md, "Medications, allergies and the
-- emergency card"): the medication list (FHIR MedicationStatement), allergies and
-- contraindications (AllergyIntolerance) and the emergency card (急変時情報 / ACP).
-- Each is versioned like notes: a head row names the current version (its optimistic-concurrency
-- counter), and every version is a row of its own that is never changed or deleted; a record
-- wrongly entered is marked entered in error by one more version, never removed.
CREATE TABLE medications (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX medications_patient ON medications (patient_id);
CREATE TABLE medication_versions (
    id TEXT PRIMARY KEY NOT NULL,
    medication_id TEXT NOT NULL REFERENCES medications (id),
    version INTEGER NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    drug_name TEXT NOT NULL,
    yj_code TEXT,
    hot_code TEXT,
    dose TEXT,
    timing TEXT,
    route TEXT,
    prescriber TEXT,
    pharmacy TEXT,
    started_on DATE,
    stopped_on DATE,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    note TEXT,
    reason TEXT,
    recorded_by TEXT NOT NULL REFERENCES users (id),
    recorded_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX medication_versions_version ON medication_versions (medication_id, version);
CREATE INDEX medication_versions_patient ON medication_versions (patient_id, recorded_at);
-- A pharmacist's reconciliation (服薬調整・薬剤情報提供): the list as it stood was checked on a date.
CREATE TABLE medication_reconciliations (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    checked_on DATE NOT NULL,
    checked_by TEXT NOT NULL REFERENCES users (id),
    medication_count INTEGER NOT NULL,
    comment TEXT,
    recorded_at TIMESTAMP NOT NULL
);
CREATE INDEX medication_reconciliations_patient ON medication_reconciliations (patient_id, recorded_at);

CREATE TABLE allergies (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX allergies_patient ON allergies (patient_id);
CREATE TABLE allergy_versions (
    id TEXT PRIMARY KEY NOT NULL,
    allergy_id TEXT NOT NULL REFERENCES allergies (id),
    version INTEGER NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    substance TEXT NOT NULL,
    category TEXT NOT NULL,
    reaction TEXT,
    severity TEXT,
    clinical_status TEXT NOT NULL,
    verification_status TEXT NOT NULL,
    note TEXT,
    reason TEXT,
    recorded_by TEXT NOT NULL REFERENCES users (id),
    recorded_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX allergy_versions_version ON allergy_versions (allergy_id, version);
CREATE INDEX allergy_versions_patient ON allergy_versions (patient_id, recorded_at);

-- One card per patient. Contacts and main diagnoses are short JSON arrays of the version.
-- The DNAR decision is a physician's: who recorded it and on what date it was decided.
CREATE TABLE emergency_cards (
    patient_id TEXT PRIMARY KEY NOT NULL REFERENCES patients (id),
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE emergency_card_versions (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    version INTEGER NOT NULL,
    place_of_care TEXT,
    resuscitation_wishes TEXT,
    dnar_decision TEXT,
    dnar_decided_on DATE,
    dnar_recorded_by TEXT REFERENCES users (id),
    key_person_name TEXT,
    key_person_relationship TEXT,
    key_person_phone TEXT,
    contacts TEXT NOT NULL,
    physician_24h_phone TEXT,
    diagnoses TEXT NOT NULL,
    note TEXT,
    recorded_by TEXT NOT NULL REFERENCES users (id),
    recorded_at TIMESTAMP NOT NULL,
    CHECK ((dnar_decision IS NULL) = (dnar_decided_on IS NULL)),
    CHECK ((dnar_decision IS NULL) = (dnar_recorded_by IS NULL))
);
CREATE UNIQUE INDEX emergency_card_versions_version ON emergency_card_versions (patient_id, version);

-- Nothing here is ever deleted, and a version is never changed.
CREATE TRIGGER medication_versions_no_update BEFORE UPDATE ON medication_versions
BEGIN SELECT RAISE(ABORT, 'medication_versions is append-only'); END;
CREATE TRIGGER medication_versions_no_delete BEFORE DELETE ON medication_versions
BEGIN SELECT RAISE(ABORT, 'medication_versions is append-only'); END;
CREATE TRIGGER medications_no_delete BEFORE DELETE ON medications
BEGIN SELECT RAISE(ABORT, 'medications are never deleted: mark one entered in error'); END;
CREATE TRIGGER medication_reconciliations_no_update BEFORE UPDATE ON medication_reconciliations
BEGIN SELECT RAISE(ABORT, 'medication_reconciliations is append-only'); END;
CREATE TRIGGER medication_reconciliations_no_delete BEFORE DELETE ON medication_reconciliations
BEGIN SELECT RAISE(ABORT, 'medication_reconciliations is append-only'); END;
CREATE TRIGGER allergy_versions_no_update BEFORE UPDATE ON allergy_versions
BEGIN SELECT RAISE(ABORT, 'allergy_versions is append-only'); END;
CREATE TRIGGER allergy_versions_no_delete BEFORE DELETE ON allergy_versions
BEGIN SELECT RAISE(ABORT, 'allergy_versions is append-only'); END;
CREATE TRIGGER allergies_no_delete BEFORE DELETE ON allergies
BEGIN SELECT RAISE(ABORT, 'allergies are never deleted: mark one entered in error'); END;
CREATE TRIGGER emergency_card_versions_no_update BEFORE UPDATE ON emergency_card_versions
BEGIN SELECT RAISE(ABORT, 'emergency_card_versions is append-only'); END;
CREATE TRIGGER emergency_card_versions_no_delete BEFORE DELETE ON emergency_card_versions
BEGIN SELECT RAISE(ABORT, 'emergency_card_versions is append-only'); END;
CREATE TRIGGER emergency_cards_no_delete BEFORE DELETE ON emergency_cards
BEGIN SELECT RAISE(ABORT, 'emergency cards are never deleted'); END;
