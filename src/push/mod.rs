//! Web Push (RFC 8030): the push subscriptions people register for their browsers and phones,
//! the VAPID identity this service signs its requests with (RFC 8292), and the delivery of one
//! encrypted message (RFC 8291, aes128gcm).
//!
//! Alerts reach a subscription through the outbox, like e-mail: `mail::notify` queues one outbox
//! row per message and subscription in the transaction that causes the alert, and the outbox
//! worker delivers it with [`send::Sender`]. A message carries what the e-mail's subject and link
//! carry and nothing more (no patient label, nothing a person typed): see `mail::templates`.

pub mod handlers;
pub mod send;
pub mod vapid;

use base64::Engine;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::{self, Check};
use crate::db::schema::push_subscriptions;
use crate::db::{new_id, now, DbConn};
use crate::error::AppResult;

/// Most subscriptions one person keeps (one per browser or phone; re-registering replaces).
pub const MAX_PER_USER: i64 = 10;

/// Longest endpoint URL accepted (push services' URLs are a few hundred characters).
const MAX_ENDPOINT_CHARS: usize = 2000;

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = push_subscriptions)]
pub struct Subscription {
    pub id: String,
    pub user_id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub created_at: NaiveDateTime,
}

/// A subscription as its owner sees it. The keys stay with the server: the app has them.
#[derive(Debug, Serialize)]
pub struct SubscriptionView {
    pub id: String,
    pub endpoint: String,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
}

impl From<Subscription> for SubscriptionView {
    fn from(s: Subscription) -> SubscriptionView {
        SubscriptionView { id: s.id, endpoint: s.endpoint, created_at: s.created_at }
    }
}

/// `PushSubscription.toJSON()` as a browser gives it (`expirationTime` is accepted and ignored).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionInput {
    pub endpoint: String,
    pub keys: KeysInput,
    #[serde(default, rename = "expirationTime")]
    pub expiration_time: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysInput {
    pub p256dh: String,
    pub auth: String,
}

fn decode(value: &str) -> Option<Vec<u8>> {
    // Unpadded, as `PushSubscription.toJSON()` gives it.
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value).ok()
}

/// Checks a subscription: an `https://` endpoint on a public host (a loopback one only where the
/// configuration allows it, for tests; see [`crate::outbound`]), a P-256 public key on the curve, a 16-byte auth secret.
pub fn check(input: &SubscriptionInput, allow_loopback: bool) -> AppResult<()> {
    let mut check = Check::new();
    if !endpoint_allowed(&input.endpoint, allow_loopback) {
        check.push(
            "endpoint",
            "invalid_url",
            "endpoint はプッシュサービスの https:// URL で指定してください。",
            "endpoint must be the push service's https:// URL.",
        );
    }
    let key_ok = decode(&input.keys.p256dh)
        .filter(|k| k.len() == 65 && k[0] == 4)
        .is_some_and(|k| p256::PublicKey::from_sec1_bytes(&k).is_ok());
    if !key_ok {
        check.push(
            "keys.p256dh",
            "invalid_key",
            "keys.p256dh は P-256 公開鍵(65バイト, base64url)で指定してください。",
            "keys.p256dh must be a P-256 public key (65 bytes, base64url).",
        );
    }
    if decode(&input.keys.auth).is_none_or(|a| a.len() != 16) {
        check.push(
            "keys.auth",
            "invalid_key",
            "keys.auth は16バイトの認証シークレット(base64url)で指定してください。",
            "keys.auth must be the 16-byte authentication secret (base64url).",
        );
    }
    check.finish()
}

pub(crate) fn endpoint_allowed(endpoint: &str, allow_loopback: bool) -> bool {
    endpoint.len() <= MAX_ENDPOINT_CHARS && crate::outbound::target_allowed(endpoint, allow_loopback).is_ok()
}

/// The origin of an endpoint (`https://push.example.net`): the VAPID audience, and all an
/// operator sees of where a push went (the full URL is the subscription's capability).
pub fn origin(endpoint: &str) -> String {
    match endpoint.parse::<actix_web::http::Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
            _ => "push".into(),
        },
        Err(_) => "push".into(),
    }
}

/// Registers a subscription for `user_id`. An endpoint registered before (the same browser,
/// perhaps signed in as someone else since) is replaced, so one browser never gets a person's
/// alerts after another has signed in on it. `None` when the person already has the most.
pub fn register(conn: &mut DbConn, user_id: &str, input: &SubscriptionInput) -> AppResult<Option<Subscription>> {
    use push_subscriptions::dsl as s;
    diesel::delete(s::push_subscriptions.filter(s::endpoint.eq(&input.endpoint))).execute(conn)?;
    let count: i64 = s::push_subscriptions.filter(s::user_id.eq(user_id)).count().get_result(conn)?;
    if count >= MAX_PER_USER {
        return Ok(None);
    }
    let row = Subscription {
        id: new_id(),
        user_id: user_id.to_string(),
        endpoint: input.endpoint.clone(),
        p256dh: input.keys.p256dh.clone(),
        auth: input.keys.auth.clone(),
        created_at: now(),
    };
    diesel::insert_into(s::push_subscriptions).values(&row).execute(conn)?;
    Ok(Some(row))
}

pub fn for_user(conn: &mut DbConn, user_id: &str) -> AppResult<Vec<Subscription>> {
    use push_subscriptions::dsl as s;
    Ok(s::push_subscriptions
        .filter(s::user_id.eq(user_id))
        .order(s::id.asc())
        .select(Subscription::as_select())
        .load(conn)?)
}

pub fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<Subscription>> {
    use push_subscriptions::dsl as s;
    Ok(s::push_subscriptions.find(id).select(Subscription::as_select()).first(conn).optional()?)
}

/// Removes a subscription; true when there was one.
pub fn remove(conn: &mut DbConn, id: &str) -> AppResult<bool> {
    use push_subscriptions::dsl as s;
    Ok(diesel::delete(s::push_subscriptions.find(id)).execute(conn)? == 1)
}

#[cfg(test)]
mod tests {
    use super::endpoint_allowed;

    #[test]
    fn push_endpoints_must_be_public() {
        assert!(endpoint_allowed("https://fcm.googleapis.com/fcm/send/abc", false));
        assert!(endpoint_allowed("https://web.push.apple.com/QGx", false));
        for inside in
            ["https://10.0.0.5/push", "https://169.254.169.254/latest", "https://[fd00::1]/p", "https://localhost/p"]
        {
            assert!(!endpoint_allowed(inside, false), "{inside}");
        }
        assert!(endpoint_allowed("http://127.0.0.1:9000/push", true));
        assert!(!endpoint_allowed("http://127.0.0.1:9000/push", false));
        assert!(!endpoint_allowed(&format!("https://push.example.net/{}", "a".repeat(2000)), false));
    }
}
