DROP TRIGGER audit_events_no_update ON audit_events;
DROP FUNCTION audit_events_append_only();
DROP TABLE audit_events;
DROP TABLE audit_chain_heads;
DROP TABLE emergency_access;
DROP TABLE ward_coordinators;
DROP TABLE care_team_members;
DROP TABLE consents;
DROP TABLE patients;
