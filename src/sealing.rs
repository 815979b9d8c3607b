//! Secrets the service must read back (today the webhook signing secrets) are kept sealed at
//! rest: AES-256-GCM under a server key that lives outside the database (`RENKEI_SECRETS_KEY`),
//! so a copy of the database or a backup does not hand out the means to forge events to the
//! partners. Each sealed value is bound to the row it belongs to (the associated data), so a
//! sealed secret copied onto another row does not open.
//!
//! The stored form is `sealed:v1:<key id>:<nonce>:<ciphertext>` (base64url). The key id names
//! which key sealed it, so keys can be rotated: the new key goes in `RENKEI_SECRETS_KEY`, the
//! old one in `RENKEI_SECRETS_KEY_PREVIOUS`, and the next start (or `renkei migrate`) seals
//! every stored value again under the new key ([`Sealer::needs_sealing`]). A value without the
//! prefix was written by a release that stored secrets in the clear; it is read as it is and
//! sealed at the next start.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

const PREFIX: &str = "sealed:v1:";

/// A 32-byte key and the short id derived from it (the first 8 bytes of its SHA-256, hex).
#[derive(Clone)]
struct Key {
    id: String,
    cipher: Aes256Gcm,
}

impl Key {
    fn new(bytes: &[u8; 32]) -> Key {
        let digest = Sha256::digest(bytes);
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Key { id, cipher: Aes256Gcm::new(bytes.into()) }
    }
}

/// Seals and opens secrets with the current key; opens with the previous ones as well.
#[derive(Clone)]
pub struct Sealer {
    current: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for Sealer {
    // Only which keys, never the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current.id)
            .field("previous", &self.previous.iter().map(|k| k.id.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

/// Why a stored value did not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Sealed under a key this instance does not have (configure it as a previous key).
    UnknownKey(String),
    /// Malformed, changed, or sealed for another row.
    Corrupt,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::UnknownKey(id) => {
                write!(f, "sealed under key {id}, which is neither RENKEI_SECRETS_KEY nor a previous key")
            }
            OpenError::Corrupt => write!(f, "the sealed value is damaged or belongs to another record"),
        }
    }
}

impl Sealer {
    /// The sealer of `RENKEI_SECRETS_KEY` (`current`) and `RENKEI_SECRETS_KEY_PREVIOUS`.
    pub fn new(current: &[u8; 32], previous: &[[u8; 32]]) -> Sealer {
        Sealer { current: Key::new(current), previous: previous.iter().map(Key::new).collect() }
    }

    /// Seals `secret` for the record named by `bound_to` (e.g. `webhook_endpoints:<id>`).
    pub fn seal(&self, secret: &str, bound_to: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        let sealed = self
            .current
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: secret.as_bytes(), aad: bound_to.as_bytes() })
            // AES-GCM fails only for inputs of gigabytes.
            .unwrap_or_else(|_| unreachable!("a secret of a few bytes always seals"));
        format!("{PREFIX}{}:{}:{}", self.current.id, B64.encode(nonce), B64.encode(sealed))
    }

    /// The secret a stored value holds (a value from before sealing is the secret itself).
    pub fn open(&self, stored: &str, bound_to: &str) -> Result<String, OpenError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_string()) };
        let mut parts = rest.split(':');
        let (Some(id), Some(nonce), Some(sealed), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OpenError::Corrupt);
        };
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| OpenError::UnknownKey(id.to_string()))?;
        let nonce: [u8; 12] = B64.decode(nonce).ok().and_then(|n| n.try_into().ok()).ok_or(OpenError::Corrupt)?;
        let sealed = B64.decode(sealed).map_err(|_| OpenError::Corrupt)?;
        let plain = key
            .cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: &sealed, aad: bound_to.as_bytes() })
            .map_err(|_| OpenError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| OpenError::Corrupt)
    }

    /// Whether a stored value should be sealed again: it is in the clear, or under a key that
    /// is not the current one.
    pub fn needs_sealing(&self, stored: &str) -> bool {
        match stored.strip_prefix(PREFIX) {
            None => true,
            Some(rest) => rest.split(':').next() != Some(self.current.id.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_record_and_never_shows() {
        let sealer = Sealer::new(&[7; 32], &[]);
        let stored = sealer.seal("whsec_abc", "webhook_endpoints:1");
        assert!(stored.starts_with("sealed:v1:") && !stored.contains("whsec_abc"), "{stored}");
        assert_ne!(stored, sealer.seal("whsec_abc", "webhook_endpoints:1"), "a fresh nonce each time");
        assert_eq!(sealer.open(&stored, "webhook_endpoints:1").as_deref(), Ok("whsec_abc"));
        assert_eq!(sealer.open(&stored, "webhook_endpoints:2"), Err(OpenError::Corrupt));
        let mut changed = stored.clone();
        changed.replace_range(changed.len() - 3.., "AAA");
        assert_eq!(sealer.open(&changed, "webhook_endpoints:1"), Err(OpenError::Corrupt));
        assert!(!sealer.needs_sealing(&stored));
        assert!(!format!("{sealer:?}").contains("7, 7"));
    }

    #[test]
    fn keys_rotate_and_clear_values_from_before_are_read_then_sealed() {
        let old = Sealer::new(&[1; 32], &[]);
        let stored = old.seal("whsec_x", "r");
        let new = Sealer::new(&[2; 32], &[[1; 32]]);
        assert_eq!(new.open(&stored, "r").as_deref(), Ok("whsec_x"));
        assert!(new.needs_sealing(&stored));
        let without_old = Sealer::new(&[2; 32], &[]);
        assert!(matches!(without_old.open(&stored, "r"), Err(OpenError::UnknownKey(_))));
        assert_eq!(new.open("whsec_clear", "r").as_deref(), Ok("whsec_clear"));
        assert!(new.needs_sealing("whsec_clear"));
    }
}
