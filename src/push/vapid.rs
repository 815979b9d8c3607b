//! VAPID (RFC 8292): this service's identity towards push services. Every push request carries
//! a short-lived ES256 JWT for the endpoint's origin, signed with the configured P-256 key, and
//! the public key, which the app also gives the browser when it subscribes
//! (`applicationServerKey`), so a push service accepts messages for its subscriptions only from
//! this service.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use serde::Serialize;

/// How long one signature is good for (RFC 8292 allows at most 24 hours).
const VALID_SECS: i64 = 12 * 3600;

#[derive(Clone)]
pub struct Vapid {
    key: EncodingKey,
    /// The uncompressed public key (65 bytes), base64url without padding.
    public_key: String,
    subject: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    exp: i64,
    sub: &'a str,
}

impl Vapid {
    pub fn new(private_key: &[u8; 32], subject: &str) -> Result<Vapid, String> {
        let secret = p256::SecretKey::from_bytes(private_key.into()).map_err(|_| "invalid VAPID key".to_string())?;
        let der = secret.to_pkcs8_der().map_err(|e| format!("VAPID key: {e}"))?;
        let public = secret.public_key().to_encoded_point(false);
        Ok(Vapid {
            key: EncodingKey::from_ec_der(der.as_bytes()),
            public_key: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public.as_bytes()),
            subject: subject.to_string(),
        })
    }

    /// The public key for `applicationServerKey`, base64url.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The `Authorization` header for a push request to `endpoint` (`vapid t=…, k=…`).
    pub fn authorization(&self, endpoint: &str, now_unix: i64) -> Result<String, String> {
        let audience = super::origin(endpoint);
        let claims = Claims { aud: &audience, exp: now_unix + VALID_SECS, sub: &self.subject };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.key)
            .map_err(|e| format!("cannot sign the VAPID token: {e}"))?;
        Ok(format!("vapid t={token}, k={}", self.public_key))
    }
}

impl std::fmt::Debug for Vapid {
    // The private key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid").field("public_key", &self.public_key).field("subject", &self.subject).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_verifies_with_the_public_key_for_the_endpoints_origin() {
        let vapid = Vapid::new(&[7u8; 32], "mailto:ops@example.jp").unwrap();
        let header = vapid.authorization("https://push.example.net/send/abc?x=1", 1_800_000_000).unwrap();
        let (t, k) = header.strip_prefix("vapid t=").unwrap().split_once(", k=").unwrap();
        assert_eq!(k, vapid.public_key());
        let public = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(k).unwrap();
        let point = p256::EncodedPoint::from_bytes(&public).unwrap();
        let (x, y) = (point.x().unwrap(), point.y().unwrap());
        let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let key = jsonwebtoken::DecodingKey::from_ec_components(&enc(x), &enc(y)).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.set_audience(&["https://push.example.net"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(t, &key, &validation).unwrap();
        assert_eq!(data.claims["sub"], "mailto:ops@example.jp");
        assert_eq!(data.claims["exp"], 1_800_000_000 + VALID_SECS);
    }
}
