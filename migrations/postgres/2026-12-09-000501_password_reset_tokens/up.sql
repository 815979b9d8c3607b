-- Links for resetting a forgotten password (src/auth/reset.rs): only the SHA-256 of the random
-- token is kept, each works once (`used_at`) and until `expires_at` (30 minutes).
CREATE TABLE password_reset_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    client_ip TEXT
);
CREATE INDEX password_reset_tokens_user ON password_reset_tokens (user_id);
