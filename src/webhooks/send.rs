//! Delivering one webhook event: sign it, POST it to the endpoint under a timeout, and say what
//! became of it. Runs in the outbox worker, outside any transaction.
//!
//! The signature header is `Renkei-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"<t>.<body>"` with the endpoint's secret: the receiver recomputes it, compares in constant
//! time and refuses a `t` too far from its clock (a replayed request carries an old one). Every
//! attempt is signed anew; `Renkei-Event-Id` stays the same across attempts, for de-duplication.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Endpoint;
use crate::mail::transport::Delivery;

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

/// Resolves endpoint host names to public addresses only, at the moment of connecting, so a
/// name that resolves inside the network (now, or after it was registered) is never reached.
struct PublicOnly {
    allow_loopback: bool,
}

impl reqwest13::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest13::dns::Name) -> reqwest13::dns::Resolving {
        let (host, allow_loopback) = (name.as_str().to_string(), self.allow_loopback);
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| super::public_ip(a.ip()) || (allow_loopback && a.ip().is_loopback()))
                .collect();
            if allowed.is_empty() {
                return Err("the endpoint's host resolves to no public address".into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest13::dns::Addrs)
        })
    }
}

/// Sends webhook events; one per instance, shared by the outbox worker's deliveries.
#[derive(Clone)]
pub struct Sender {
    client: reqwest13::Client,
    allow_loopback: bool,
}

impl Sender {
    pub fn new(timeout: Duration, allow_loopback: bool) -> Result<Sender, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest13::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect could lead anywhere, inside the network too: a partner answers itself.
            .redirect(reqwest13::redirect::Policy::none())
            .dns_resolver(Arc::new(PublicOnly { allow_loopback }))
            .user_agent(concat!("Renkei-Note-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(Sender { client, allow_loopback })
    }

    /// POSTs one event (`body`, as queued) to the endpoint. Any answer but 2xx is a failure to
    /// retry: the partner may be fixing its side, and the count of failures in a row disables
    /// the endpoint in the end.
    pub async fn send(&self, endpoint: &Endpoint, event_id: &str, event_type: &str, body: &str) -> Delivery {
        if let Err(why) = super::target_allowed(&endpoint.url, self.allow_loopback) {
            return Delivery::Failed(format!("the endpoint is not an allowed target: {why}"));
        }
        let t = chrono::Utc::now().timestamp();
        let request = self
            .client
            .post(&endpoint.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature_header(&endpoint.secret, t, body))
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

    #[tokio::test]
    async fn names_are_resolved_to_public_addresses_only() {
        use reqwest13::dns::Resolve;
        let name = |n: &str| n.parse::<reqwest13::dns::Name>().unwrap();
        assert!(PublicOnly { allow_loopback: false }.resolve(name("localhost")).await.is_err());
        let loopback: Vec<SocketAddr> =
            PublicOnly { allow_loopback: true }.resolve(name("localhost")).await.unwrap().collect();
        assert!(!loopback.is_empty() && loopback.iter().all(|a| a.ip().is_loopback()));
    }

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
