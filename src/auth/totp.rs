//! Two-factor sign-in with TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, ±1 step of clock
//! drift). Each time step is accepted once per account, so an observed code cannot be replayed.

use totp_rs::{Algorithm, Secret, TOTP};

const STEP_SECS: u64 = 30;

fn totp(secret_base32: &str, account: &str) -> Option<TOTP> {
    let bytes = Secret::Encoded(secret_base32.to_string()).to_bytes().ok()?;
    TOTP::new(Algorithm::SHA1, 6, 1, STEP_SECS, bytes, Some("RenkeiNote".into()), account.to_string()).ok()
}

/// A fresh secret (base32) and the `otpauth://` URL an authenticator app scans.
pub fn new_secret(account: &str) -> Option<(String, String)> {
    let secret = Secret::generate_secret().to_encoded().to_string();
    let url = totp(&secret, account)?.get_url();
    Some((secret, url))
}

/// The `otpauth://` URL of a secret already made (an enrolment shown again).
pub fn url(secret_base32: &str, account: &str) -> Option<String> {
    Some(totp(secret_base32, account)?.get_url())
}

/// The time step the code matches, if it matches one within the drift window and is newer than
/// the last step this account used.
pub fn verify(secret_base32: &str, code: &str, last_step: Option<i64>, unix_now: u64) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret_base32, "")?;
    let current = (unix_now / STEP_SECS) as i64;
    (current - 1..=current + 1)
        .filter(|step| last_step.is_none_or(|last| *step > last))
        .find(|step| t.generate(*step as u64 * STEP_SECS) == code)
}

/// The code for a moment (used by the CLI's tests and by client test helpers).
pub fn code_at(secret_base32: &str, unix_time: u64) -> Option<String> {
    Some(totp(secret_base32, "")?.generate(unix_time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_verify_once() {
        let (secret, url) = new_secret("nurse@example.jp").unwrap();
        assert!(url.starts_with("otpauth://totp/"));
        let now = 1_800_000_000u64;
        let code = code_at(&secret, now).unwrap();
        let step = verify(&secret, &code, None, now).unwrap();
        assert_eq!(verify(&secret, &code, Some(step), now), None, "a replayed code is refused");
        assert_eq!(verify(&secret, "000000x", None, now), None);
        let next = code_at(&secret, now + 30).unwrap();
        assert_eq!(verify(&secret, &next, Some(step), now), Some(step + 1));
    }
}
