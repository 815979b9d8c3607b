DROP TABLE totp_recovery_codes;
