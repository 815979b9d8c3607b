ALTER TABLE users DROP COLUMN flag_notifications;
DROP TABLE flags;
