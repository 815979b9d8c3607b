DROP TABLE idempotency_keys;
DROP TABLE note_reads;
DROP TABLE note_versions;
DROP TABLE notes;
DROP FUNCTION notes_append_only();
