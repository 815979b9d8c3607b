ALTER TABLE attachments DROP COLUMN sha1;
