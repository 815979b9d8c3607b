-- The address of a deactivated account may be used again for a new account (a person who left
-- an office and joins another, or a shared office address handed on). Only accounts in use must
-- differ in address; a deactivated one keeps its address and its history, apart from the new one.
DROP INDEX users_email;
CREATE UNIQUE INDEX users_email_active ON users (email) WHERE active;
CREATE INDEX users_email ON users (email);
