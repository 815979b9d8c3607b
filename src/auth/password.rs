//! Passwords: argon2id at OWASP's minimum (19 MiB, 2 iterations, 1 lane), verified on the
//! blocking pool, with the same work for an unknown account as for a wrong password.

use std::collections::HashSet;
use std::sync::OnceLock;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{AppError, FieldError};

pub const MIN_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 128;

/// Breached-password keys (see common_passwords.README.md for the source and licence), one a
/// line, compared by [`key`].
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// Words that make a password guessable for this service in particular (ASVS 5.0 6.2.11): the
/// product and the city it serves, compared by [`key`] with separators removed.
const CONTEXT_WORDS: &[&str] = &[
    "renkei",
    "renkeinote",
    "renkei note",
    "連携",
    "連携ノート",
    "在宅療養連携ノート",
    "kawasaki",
    "kawasakicity",
    "川崎",
    "川崎市",
    "かわさき",
    "カワサキ",
];

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

/// The slots of the hashing pool: at most as many argon2 runs at a time as there are cores.
/// Each takes 19 MiB and a core's worth of work for tens of milliseconds, so more at once only
/// queues inside the CPU and grows memory.
fn slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get))
    })
}

/// Runs slow password work on the blocking pool, in one of the bounded slots. Never call it
/// from inside a database transaction: the transaction would hold its locks through it.
async fn bounded<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
    let _slot = slots().acquire().await.map_err(|e| AppError::internal(format!("password work slots: {e}")))?;
    actix_web::web::block(work).await.map_err(|e| AppError::internal(format!("password work failed: {e}")))
}

/// [`verify`] in the bounded hashing pool.
pub async fn verify_bounded(password: String, stored: Option<String>) -> Result<bool, AppError> {
    bounded(move || verify(&password, stored.as_deref())).await
}

/// [`hash`] in the bounded hashing pool.
pub async fn hash_bounded(password: String) -> Result<String, AppError> {
    bounded(move || hash(&password)).await?
}

/// The password rules: length only (no composition rules, per NIST SP 800-63B), not a breached
/// password, not the service's, the city's or the account's own name or e-mail address plus
/// digits or symbols.
pub fn check_policy(field: &str, password: &str, email: &str, name: &str) -> Result<(), AppError> {
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
    } else if is_common(password) || is_context_word(password, email, name) {
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

fn normalise(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    text.nfkc().collect::<String>().to_lowercase()
}

/// What a password is compared by: NFKC (so full-width `Ｐａｓｓ` is `pass`), lower case, and
/// without trailing digits and symbols, so that `Password123!` and `password` are one entry.
/// A password of digits and symbols only is its own key.
pub fn key(password: &str) -> String {
    let normalised = normalise(password.trim());
    let stripped = normalised.trim_end_matches(|c: char| !c.is_alphabetic());
    if stripped.is_empty() {
        normalised
    } else {
        stripped.to_string()
    }
}

/// A key without spaces, hyphens, dots and other separators (`renkei-note` → `renkeinote`).
fn compact(key: &str) -> String {
    key.chars().filter(|c| c.is_alphanumeric()).collect()
}

fn common_keys() -> &'static HashSet<String> {
    static KEYS: OnceLock<HashSet<String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(key)
            .collect()
    })
}

/// A breached password, or one with a breached password before its trailing digits and symbols.
pub fn is_common(password: &str) -> bool {
    let k = key(password);
    let keys = common_keys();
    keys.contains(&k) || keys.contains(&compact(&k))
}

/// The password is essentially a word of this service's context, plus digits or symbols: the
/// product, the city, or the account's own e-mail address, its local part, name or name parts.
/// A longer phrase that merely contains such a word (`かわさき在宅ケア連携ノート`) is fine.
pub fn is_context_word(password: &str, email: &str, name: &str) -> bool {
    let candidate = compact(&key(password));
    if candidate.is_empty() {
        return false;
    }
    let email = email.trim();
    let local = email.split('@').next().unwrap_or_default();
    let mut words: Vec<&str> = CONTEXT_WORDS.to_vec();
    words.extend([email, local, name]);
    words.extend(local.split(['.', '_', '-', '+']));
    words.extend(name.split_whitespace());
    words.iter().map(|w| compact(&key(w))).any(|w| !w.is_empty() && w == candidate)
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

    fn refused(password: &str, email: &str, name: &str) -> bool {
        check_policy("password", password, email, name).is_err()
    }

    #[test]
    fn policy() {
        assert!(refused("short", "a@b.jp", "x"));
        assert!(refused("password1234", "a@b.jp", "x"));
        assert!(refused("Password1234", "a@b.jp", "x"));
        assert!(refused("nurse@example.jp", "nurse@example.jp", "x"));
        assert!(!refused("かわさき在宅ケア連携ノート", "a@b.jp", "x"));
        assert!(!refused("tall-cedar-river-morning", "a@b.jp", "x"));
    }

    #[test]
    fn breached_passwords_with_digits_and_symbols_are_refused() {
        assert!(common_keys().len() > 30_000, "the breached list is loaded");
        for p in [
            "Password123!",
            "password!!!!2026",
            "QWERTY123456",
            "Ｐａｓｓｗｏｒｄ１２３４",
            "iloveyou2026!!",
            "123456789012",
        ] {
            assert!(refused(p, "a@b.jp", "x"), "{p} should be refused");
        }
        for p in [
            "tall-cedar-river-morning",
            "かわさきの在宅ケアをつなぐ",
            "morning-river-cedar-tall",
            "visiting nurse 2026 spring",
        ] {
            assert!(!refused(p, "a@b.jp", "x"), "{p} should be accepted");
        }
    }

    #[test]
    fn context_words_with_digits_and_symbols_are_refused() {
        for p in
            ["Kawasaki2026", "renkeinote12", "Renkei-Note-2026!", "川崎２０２６！！！！！！", "連携ノート123456789"]
        {
            assert!(refused(p, "a@b.jp", "x"), "{p} should be refused");
        }
        // The account's own e-mail address, its local part and its name.
        assert!(refused("yamada.hanako2026", "yamada.hanako@example.jp", "x"));
        assert!(refused("hanako-1234567", "yamada.hanako@example.jp", "x"));
        assert!(refused("Sakuragawa1234", "n@example.jp", "Sakuragawa Midori"));
        assert!(refused("山田花子１２３４５６７８", "n@example.jp", "山田 花子"));
        // Longer phrases that only contain such a word are fine.
        assert!(!refused("かわさき在宅ケア連携ノート", "a@b.jp", "x"));
        assert!(!refused("kawasaki-river-morning-tea", "a@b.jp", "x"));
        assert!(!refused("sakuragawa-midori-garden", "n@example.jp", "Sakuragawa Midori"));
    }
}
