//! Delivering one webhook event: sign it, POST it to the endpoint under a timeout, and say what
//! became of it. Runs in the outbox worker, outside any transaction.
//!
//! The signature header is `Renkei-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"<t>.<body>"` with the endpoint's secret: the receiver recomputes it, compares in constant
//! time and refuses a `t` too far from its clock (a replayed request carries an old one). Every
//! attempt is signed anew; `Renkei-Event-Id` stays the same across attempts, for de-duplication.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Endpoint;
use crate::mail::transport::Delivery;
use crate::outbound;
use crate::sealing::Sealer;

pub const SIGNATURE_HEADER: &str = "renkei-signature";
pub const EVENT_ID_HEADER: &str = "renkei-event-id";
pub const EVENT_TYPE_HEADER: &str = "renkei-event-type";

/// The hex HMAC-SHA256 of `"<t>.<body>"` under `secret`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The `Renkei-Signature` header value.
pub fn signature_header(secret: &str, t: i64, body: &str) -> String {
    format!("t={t},v1={}", signature(secret, t, body))
}

/// Sends webhook events; one per instance, shared by the outbox worker's deliveries.
#[derive(Clone)]
pub struct Sender {
    client: reqwest13::Client,
    allow_loopback: bool,
    sealer: Arc<Sealer>,
}

impl Sender {
    pub fn new(timeout: Duration, allow_loopback: bool, sealer: Arc<Sealer>) -> Result<Sender, String> {
        let client =
            outbound::client(concat!("Renkei-Note-Webhooks/", env!("CARGO_PKG_VERSION")), timeout, allow_loopback)
                .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(Sender { client, allow_loopback, sealer })
    }

    /// POSTs one event (`body`, as queued) to the endpoint. Any answer but 2xx is a failure to
    /// retry: the partner may be fixing its side, and the count of failures in a row disables
    /// the endpoint in the end.
    pub async fn send(&self, endpoint: &Endpoint, event_id: &str, event_type: &str, body: &str) -> Delivery {
        if let Err(why) = outbound::target_allowed(&endpoint.url, self.allow_loopback) {
            return Delivery::Failed(format!("the endpoint is not an allowed target: {why}"));
        }
        let secret = match endpoint.secret(&self.sealer) {
            Ok(secret) => secret,
            Err(why) => return Delivery::Failed(format!("the endpoint's secret cannot be opened: {why}")),
        };
        let t = chrono::Utc::now().timestamp();
        let request = self
            .client
            .post(&endpoint.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature_header(&secret, t, body))
            .header(EVENT_ID_HEADER, event_id)
            .header(EVENT_TYPE_HEADER, event_type)
            .body(body.to_string());
        match request.send().await {
            Ok(response) if response.status().is_success() => Delivery::Sent,
            Ok(response) => Delivery::Failed(format!("the endpoint answered {}", response.status().as_u16())),
            Err(e) if e.is_timeout() => Delivery::Failed("the endpoint did not answer in time".into()),
            Err(e) => Delivery::Failed(format!("cannot reach the endpoint: {}", without_url(&e))),
        }
    }
}

/// A request error without its URL (its path may be a capability of the partner's).
fn without_url(e: &reqwest13::Error) -> String {
    use std::error::Error;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<endpoint>");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        // Computed by another implementation:
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"whsec_test", b"1800000000.{}", hashlib.sha256).hexdigest())'
        assert_eq!(
            signature("whsec_test", 1_800_000_000, "{}"),
            "482e6337ac5272392d375c6fdc4d52a7e615dc2facedab0ffe155ddfd6a56e66"
        );
        assert_ne!(signature("whsec_test", 1_800_000_000, "{}"), signature("whsec_test", 1_800_000_001, "{}"));
        assert_eq!(signature_header("k", 5, "b"), format!("t=5,v1={}", signature("k", 5, "b")));
    }
}
