-- Single-use recovery codes for two-factor sign-in (src/auth/recovery.rs): ten per account, made
-- when its owner asks, each usable once in place of a TOTP code. Only the SHA-256 of each (with
-- the account's id) is kept; a used one keeps `used_at`.
CREATE TABLE totp_recovery_codes (
    user_id TEXT NOT NULL REFERENCES users (id),
    code_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    PRIMARY KEY (user_id, code_hash)
);
