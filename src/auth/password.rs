//! Passwords: argon2id at OWASP's minimum (19 MiB, 2 iterations, 1 lane), verified on the
//! blocking pool, with the same work for an unknown account as for a wrong password.

use std::sync::OnceLock;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{AppError, FieldError};

pub const MIN_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 128;

/// Most common passwords of at least 12 characters (from public breach-frequency lists), one a
/// line, compared case-insensitively. Shorter ones are already refused by the length rule.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

fn argon2() -> Argon2<'static> {
    // OWASP Password Storage Cheat Sheet: m=19456 KiB, t=2, p=1 is the minimum for argon2id.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash(password: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(format!("argon2 hash: {e}")))
}

/// Checks a password against a stored hash; `None` (no such account) spends the same effort on
/// a dummy hash so response time does not tell which accounts exist.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("renkei-dummy-password-for-timing").unwrap_or_default());
    let (candidate, real) = match stored {
        Some(s) => (s, true),
        None => (dummy.as_str(), false),
    };
    let ok = match PasswordHash::new(candidate) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    };
    ok && real
}

/// [`verify`] on the blocking pool, at most as many at a time as there are cores: each check
/// takes 19 MiB and a core's worth of work for tens of milliseconds, so more at once only
/// queues inside the CPU and grows memory.
pub async fn verify_bounded(password: String, stored: Option<String>) -> Result<bool, AppError> {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get))
    });
    let _slot = slots.acquire().await.map_err(|e| AppError::internal(format!("password check slots: {e}")))?;
    actix_web::web::block(move || verify(&password, stored.as_deref()))
        .await
        .map_err(|e| AppError::internal(format!("password check failed: {e}")))
}

/// The password rules: length only (no composition rules, per NIST SP 800-63B), not a common
/// password, not the account's own e-mail address.
pub fn check_policy(field: &str, password: &str, email: &str) -> Result<(), AppError> {
    let chars = password.chars().count();
    let problem = if chars < MIN_LENGTH {
        Some((
            "too_short",
            format!("パスワードは{MIN_LENGTH}文字以上にしてください。"),
            format!("The password must be at least {MIN_LENGTH} characters long."),
        ))
    } else if chars > MAX_LENGTH {
        Some((
            "too_long",
            format!("パスワードは{MAX_LENGTH}文字以内にしてください。"),
            format!("The password must be at most {MAX_LENGTH} characters long."),
        ))
    } else if is_common(password) || password.trim().eq_ignore_ascii_case(email.trim()) {
        Some((
            "too_common",
            "よく使われていて推測されやすいパスワードです。別のものにしてください。".to_string(),
            "This password is too common and easy to guess. Choose another.".to_string(),
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some((code, ja, en)) => Err(AppError::validation(vec![FieldError::new(field, code, ja, en)])),
    }
}

pub fn is_common(password: &str) -> bool {
    let lower = password.to_lowercase();
    COMMON_PASSWORDS.lines().map(str::trim).any(|line| !line.is_empty() && !line.starts_with('#') && line == lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery staple", Some(&h)));
        assert!(!verify("wrong horse battery staple", Some(&h)));
        assert!(!verify("correct horse battery staple", None));
    }

    #[test]
    fn policy() {
        assert!(check_policy("password", "short", "a@b.jp").is_err());
        assert!(check_policy("password", "password1234", "a@b.jp").is_err());
        assert!(check_policy("password", "Password1234", "a@b.jp").is_err());
        assert!(check_policy("password", "nurse@example.jp", "nurse@example.jp").is_err());
        assert!(check_policy("password", "かわさき在宅ケア連携ノート", "a@b.jp").is_ok());
        assert!(check_policy("password", "tall-cedar-river-morning", "a@b.jp").is_ok());
    }
}
