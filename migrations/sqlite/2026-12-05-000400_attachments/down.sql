DROP TABLE attachment_errors;
DROP TABLE attachments;
