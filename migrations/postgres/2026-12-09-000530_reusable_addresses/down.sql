-- Fails while two accounts share an address, rather than lose either.
DROP INDEX users_email;
DROP INDEX users_email_active;
CREATE UNIQUE INDEX users_email ON users (email);
