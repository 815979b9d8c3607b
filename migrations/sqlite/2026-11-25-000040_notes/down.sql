DROP TRIGGER note_versions_no_delete;
DROP TRIGGER note_versions_no_update;
DROP TRIGGER notes_no_delete;
DROP TRIGGER notes_no_update;
DROP TABLE idempotency_keys;
DROP TABLE note_reads;
DROP TABLE note_versions;
DROP TABLE notes;
