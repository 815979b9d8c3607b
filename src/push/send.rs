//! Delivering one push message: encrypt it for the subscription (RFC 8291, aes128gcm), sign the
//! request (VAPID), POST it to the push service and say what became of it.

use std::time::Duration;

use base64::Engine;

use super::vapid::Vapid;
use super::Subscription;

/// How long a push service keeps a message for a device that is offline (RFC 8030 `TTL`): a
/// day, after which the alert has gone out by e-mail and escalated anyway.
const TTL_SECS: u64 = 24 * 3600;

/// What became of one push request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushDelivery {
    /// The push service accepted the message (201).
    Sent,
    /// The subscription no longer exists (404, 410): it is deleted, and the message with it.
    Gone(String),
    /// Refused for good (another 4xx: a malformed request, a key the service does not accept).
    Rejected(String),
    /// Failed for now (5xx, 429, network, timeout): retried after a backoff.
    Failed(String),
}

/// Sends push messages; one per instance, shared by the outbox worker's deliveries.
#[derive(Clone)]
pub struct Sender {
    client: reqwest13::Client,
    vapid: Option<Vapid>,
    allow_loopback: bool,
}

impl Sender {
    pub fn new(vapid: Option<Vapid>, timeout: Duration, allow_loopback: bool) -> Result<Sender, String> {
        // A push service's address comes from the subscriber's browser: public addresses only.
        let client =
            crate::outbound::client(concat!("Renkei-Note-Push/", env!("CARGO_PKG_VERSION")), timeout, allow_loopback)
                .map_err(|e| format!("cannot build the push client: {e}"))?;
        Ok(Sender { client, vapid, allow_loopback })
    }

    /// The VAPID public key the app subscribes with; `None` when push is off.
    pub fn public_key(&self) -> Option<&str> {
        self.vapid.as_ref().map(|v| v.public_key())
    }

    /// Encrypts `payload` for the subscription and posts it. `urgent` asks the push service to
    /// wake the device at once (RFC 8030 `Urgency: high`).
    pub async fn send(&self, subscription: &Subscription, payload: &[u8], urgent: bool) -> PushDelivery {
        let Some(vapid) = &self.vapid else {
            return PushDelivery::Failed("Web Push is not configured (RENKEI_VAPID_PRIVATE_KEY)".into());
        };
        // A literal address is not resolved, so the resolver cannot refuse it: checked here too
        // (a subscription stored before the rule was this strict).
        if !super::endpoint_allowed(&subscription.endpoint, self.allow_loopback) {
            return PushDelivery::Rejected("the endpoint is not an allowed target".into());
        }
        let body = match encrypt(subscription, payload) {
            Ok(body) => body,
            Err(e) => return PushDelivery::Rejected(e),
        };
        let authorization = match vapid.authorization(&subscription.endpoint, chrono::Utc::now().timestamp()) {
            Ok(a) => a,
            Err(e) => return PushDelivery::Failed(e),
        };
        let request = self
            .client
            .post(&subscription.endpoint)
            .header("ttl", TTL_SECS.to_string())
            .header("content-encoding", "aes128gcm")
            .header("content-type", "application/octet-stream")
            .header("urgency", if urgent { "high" } else { "normal" })
            .header("authorization", authorization)
            .body(body);
        match request.send().await {
            Ok(response) => classify(response.status().as_u16()),
            Err(e) if e.is_timeout() => PushDelivery::Failed("the push service did not answer in time".into()),
            Err(e) => PushDelivery::Failed(format!("cannot reach the push service: {}", without_url(&e))),
        }
    }
}

/// What a push service's status means (RFC 8030 §5, RFC 8292 §4.2 for 401/403).
pub fn classify(status: u16) -> PushDelivery {
    match status {
        200..=299 => PushDelivery::Sent,
        404 | 410 => PushDelivery::Gone(format!("the push service answered {status}: the subscription is gone")),
        408 | 425 | 429 => PushDelivery::Failed(format!("the push service answered {status}")),
        400..=499 => PushDelivery::Rejected(format!("the push service answered {status}")),
        _ => PushDelivery::Failed(format!("the push service answered {status}")),
    }
}

/// A request error without its URL (the endpoint is the subscription's capability).
fn without_url(e: &reqwest13::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<endpoint>");
    }
    text
}

fn encrypt(subscription: &Subscription, payload: &[u8]) -> Result<Vec<u8>, String> {
    let decode = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v);
    let public = decode(&subscription.p256dh)
        .ok()
        .and_then(|k| web_push_native::p256::PublicKey::from_sec1_bytes(&k).ok())
        .ok_or("the subscription's p256dh key is not a P-256 public key")?;
    let auth: [u8; 16] = decode(&subscription.auth)
        .ok()
        .and_then(|a| a.try_into().ok())
        .ok_or("the subscription's auth secret is not 16 bytes")?;
    let auth = web_push_native::Auth::from(auth);
    web_push_native::encrypt(payload.to_vec(), &public, &auth).map_err(|e| format!("cannot encrypt the message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(201), PushDelivery::Sent);
        assert!(matches!(classify(410), PushDelivery::Gone(_)));
        assert!(matches!(classify(404), PushDelivery::Gone(_)));
        assert!(matches!(classify(429), PushDelivery::Failed(_)));
        assert!(matches!(classify(403), PushDelivery::Rejected(_)));
        assert!(matches!(classify(503), PushDelivery::Failed(_)));
    }
}
