-- FHIR's Attachment.hash is the SHA-1 of the data (R4 datatypes §2.24.0.3): kept beside the
-- SHA-256 the download ETag uses, computed while the file is received. Files stored before this
-- have none (NULL) and are exported without a hash; their bytes are never read back to fill it.
ALTER TABLE attachments ADD COLUMN sha1 TEXT;
