-- Failed patient identifications when opening a discharge case (src/patients/identification.rs):
-- one counter per caller and one per requested patient id, whether or not such a patient
-- exists, so that a throttled answer says nothing about the patient. The key is a hash of the
-- scope and the id, so nothing a client typed is stored. A fixed window starts with its first
-- failure; notified_at records when the patient's team lead was told during the window.
CREATE TABLE identification_throttle (
    throttle_key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    window_started_at TIMESTAMP NOT NULL,
    notified_at TIMESTAMP
);
