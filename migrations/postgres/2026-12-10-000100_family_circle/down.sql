DROP TABLE family_message_errors;
DROP TABLE family_messages;
DROP FUNCTION family_messages_append_only();
DROP TABLE patient_participants;
ALTER TABLE care_team_invitations DROP COLUMN decided_at;
ALTER TABLE care_team_invitations DROP COLUMN decided_by;
ALTER TABLE patients DROP COLUMN approval_waived_at;
ALTER TABLE patients DROP COLUMN approval_waived_by;
ALTER TABLE patients DROP COLUMN approval_waived_reason;
ALTER TABLE users DROP CONSTRAINT users_layperson_without_organization;
-- Fails while accounts without an organisation exist: the older schema cannot hold them.
ALTER TABLE users ALTER COLUMN organization_id SET NOT NULL;
