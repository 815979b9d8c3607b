DROP TABLE emergency_card_versions;
DROP TABLE emergency_cards;
DROP TABLE allergy_versions;
DROP TABLE allergies;
DROP TABLE medication_reconciliations;
DROP TABLE medication_versions;
DROP TABLE medications;
