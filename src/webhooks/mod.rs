//! Webhooks for partner systems: an organisation's administrator registers an endpoint of the
//! organisation's own system, and changes to the patients whose care team has an active member
//! of that organisation are POSTed to it.
//!
//! An event carries ids only (the event, its type, when, the patient, the record that changed);
//! the partner fetches the record through the API with its own credentials, so the access policy
//! decides what it sees, as for anyone. Events are queued in the change's transaction
//! ([`events`], from `changes::record`) as outbox rows on the `webhook` channel and delivered by
//! the outbox worker ([`send`]), signed with the endpoint's secret (HMAC-SHA256 over
//! `"<unix time>.<body>"`, Stripe-style), retried with backoff; an endpoint that keeps failing
//! is disabled and the organisation's administrators are e-mailed.

pub mod events;
pub mod handlers;
pub mod health;
pub mod send;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::{self, Check};
use crate::db::schema::webhook_endpoints;
use crate::db::{new_id, now, DbConn};
use crate::error::AppResult;

/// Most endpoints one organisation keeps.
pub const MAX_PER_ORGANIZATION: i64 = 10;

/// Longest endpoint URL accepted.
const MAX_URL_CHARS: usize = 2000;

crate::text_enum! {
    /// Whether an endpoint receives events.
    EndpointStatus {
        Active => "active",
        Disabled => "disabled",
    }
}

crate::text_enum! {
    /// Why an endpoint was disabled: by an administrator, or after too many failed deliveries.
    DisabledReason {
        Admin => "admin",
        Failures => "failures",
    }
}

#[derive(Queryable, Selectable, Insertable, Clone, PartialEq)]
#[diesel(table_name = webhook_endpoints)]
pub struct Endpoint {
    pub id: String,
    pub organization_id: String,
    pub url: String,
    /// The signing key; shown once, when made (at registration or rotation), never again.
    pub secret: String,
    pub status: EndpointStatus,
    pub disabled_reason: Option<DisabledReason>,
    pub disabled_at: Option<NaiveDateTime>,
    pub consecutive_failures: i32,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub secret_rotated_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl std::fmt::Debug for Endpoint {
    // The secret never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("organization_id", &self.organization_id)
            .field("status", &self.status)
            .finish()
    }
}

/// An endpoint as its organisation's administrators see it: everything but the secret.
#[derive(Debug, Serialize)]
pub struct EndpointView {
    pub id: String,
    pub organization_id: String,
    pub url: String,
    pub status: EndpointStatus,
    pub disabled_reason: Option<DisabledReason>,
    #[serde(serialize_with = "api::utc_opt")]
    pub disabled_at: Option<NaiveDateTime>,
    pub consecutive_failures: i32,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "api::utc")]
    pub secret_rotated_at: NaiveDateTime,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> EndpointView {
        EndpointView {
            id: e.id.clone(),
            organization_id: e.organization_id.clone(),
            url: e.url.clone(),
            status: e.status,
            disabled_reason: e.disabled_reason,
            disabled_at: e.disabled_at,
            consecutive_failures: e.consecutive_failures,
            created_at: e.created_at,
            secret_rotated_at: e.secret_rotated_at,
        }
    }
}

/// The answer that shows a secret: to the registration and to a rotation, once.
#[derive(Debug, Serialize)]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    pub secret: String,
}

impl From<&Endpoint> for EndpointWithSecret {
    fn from(e: &Endpoint) -> EndpointWithSecret {
        EndpointWithSecret { endpoint: EndpointView::from(e), secret: e.secret.clone() }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    pub url: String,
}

/// Checks an endpoint URL (field `url`): see [`target_allowed`].
pub fn check(input: &EndpointInput, allow_loopback: bool) -> AppResult<()> {
    let mut check = Check::new();
    if target_allowed(&input.url, allow_loopback).is_err() {
        check.push(
            "url",
            "invalid_url",
            "url は公開されたホストの https:// URL で指定してください(プライベート・ループバック・リンクローカルのアドレスは指定できません)。",
            "url must be an https:// URL of a public host (private, loopback and link-local addresses are refused).",
        );
    }
    check.finish()
}

/// Whether a URL may be a delivery target: `https://` with a host and no credentials in it; a
/// literal IP address must be a public one, and `localhost` is refused. Where the configuration
/// allows loopback (development and tests), loopback targets are accepted, also over `http://`.
/// A host name is checked again on every delivery, against the addresses it resolves to
/// ([`send`]), so a name that points inside the network later is refused then.
pub fn target_allowed(url: &str, allow_loopback: bool) -> Result<(), &'static str> {
    if url.len() > MAX_URL_CHARS || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("not a URL");
    }
    let uri = url.parse::<actix_web::http::Uri>().map_err(|_| "not a URL")?;
    let host = uri.host().filter(|h| !h.is_empty()).ok_or("no host")?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("credentials in the URL");
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
    let loopback = match literal {
        Some(ip) => ip.is_loopback(),
        None => host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost"),
    };
    if loopback {
        return match uri.scheme_str() {
            Some("https" | "http") if allow_loopback => Ok(()),
            _ => Err("a loopback target"),
        };
    }
    if uri.scheme_str() != Some("https") {
        return Err("not https");
    }
    match literal {
        Some(ip) if !public_ip(ip) => Err("a private address"),
        _ => Ok(()),
    }
}

/// Whether an address is on the public internet: not private, loopback, link-local (cloud
/// metadata services live there), shared, documentation, benchmarking, multicast or reserved.
pub fn public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_v4(v4);
            }
            let s = v6.segments();
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0];
            if nat64 {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::from(0u128))
        }
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// A new signing secret: 32 random bytes, base64url, with a prefix that says what it is. The
/// HMAC key is the whole string as UTF-8.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// What became of a registration.
pub enum Registration {
    Created(Endpoint),
    /// The organisation has this URL registered already.
    Duplicate,
    /// The organisation has [`MAX_PER_ORGANIZATION`] endpoints.
    TooMany,
}

pub fn register(conn: &mut DbConn, organization_id: &str, url: &str, created_by: &str) -> AppResult<Registration> {
    use webhook_endpoints::dsl as w;
    let count: i64 = w::webhook_endpoints.filter(w::organization_id.eq(organization_id)).count().get_result(conn)?;
    if count >= MAX_PER_ORGANIZATION {
        return Ok(Registration::TooMany);
    }
    let t = now();
    let row = Endpoint {
        id: new_id(),
        organization_id: organization_id.to_string(),
        url: url.to_string(),
        secret: new_secret(),
        status: EndpointStatus::Active,
        disabled_reason: None,
        disabled_at: None,
        consecutive_failures: 0,
        created_by: created_by.to_string(),
        created_at: t,
        secret_rotated_at: t,
        updated_at: t,
    };
    // Two registrations of one URL at once: the unique index decides, without aborting the
    // transaction (PostgreSQL would on a plain conflict).
    let inserted = crate::per_backend!(conn, |c| diesel::insert_into(w::webhook_endpoints)
        .values(row.clone())
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(if inserted == 1 { Registration::Created(row) } else { Registration::Duplicate })
}

pub fn for_organization(conn: &mut DbConn, organization_id: &str) -> AppResult<Vec<Endpoint>> {
    use webhook_endpoints::dsl as w;
    Ok(w::webhook_endpoints
        .filter(w::organization_id.eq(organization_id))
        .order(w::id.asc())
        .select(Endpoint::as_select())
        .load(conn)?)
}

pub fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<Endpoint>> {
    use webhook_endpoints::dsl as w;
    Ok(w::webhook_endpoints.find(id).select(Endpoint::as_select()).first(conn).optional()?)
}

pub(crate) fn reload(conn: &mut DbConn, id: &str) -> AppResult<Endpoint> {
    find(conn, id)?.ok_or_else(crate::error::AppError::not_found)
}

/// Turns deliveries to an endpoint back on (with a fresh count of failures) or off.
pub fn set_enabled(conn: &mut DbConn, id: &str, enabled: bool) -> AppResult<Endpoint> {
    use webhook_endpoints::dsl as w;
    let t = now();
    let target = w::webhook_endpoints.find(id);
    if enabled {
        diesel::update(target)
            .set((
                w::status.eq(EndpointStatus::Active),
                w::disabled_reason.eq(None::<DisabledReason>),
                w::disabled_at.eq(None::<NaiveDateTime>),
                w::consecutive_failures.eq(0),
                w::updated_at.eq(t),
            ))
            .execute(conn)?;
    } else {
        // Disabling a disabled endpoint keeps why and when it first stopped.
        diesel::update(target.filter(w::status.eq(EndpointStatus::Active)))
            .set((
                w::status.eq(EndpointStatus::Disabled),
                w::disabled_reason.eq(Some(DisabledReason::Admin)),
                w::disabled_at.eq(Some(t)),
                w::updated_at.eq(t),
            ))
            .execute(conn)?;
    }
    reload(conn, id)
}

/// A new secret for an endpoint; the old one signs nothing from now on.
pub fn rotate_secret(conn: &mut DbConn, id: &str) -> AppResult<Endpoint> {
    use webhook_endpoints::dsl as w;
    let t = now();
    diesel::update(w::webhook_endpoints.find(id))
        .set((w::secret.eq(new_secret()), w::secret_rotated_at.eq(t), w::updated_at.eq(t)))
        .execute(conn)?;
    reload(conn, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_inside_the_network_are_refused() {
        for ok in ["https://partner.example.jp/hooks/renkei", "https://203.0.113.9.nip.io/x", "https://8.8.8.8/x"] {
            assert_eq!(target_allowed(ok, false), Ok(()), "{ok}");
        }
        for bad in [
            "http://partner.example.jp/hooks",
            "ftp://partner.example.jp/",
            "https://user:pw@partner.example.jp/",
            "https://127.0.0.1/x",
            "https://localhost/x",
            "https://app.localhost/x",
            "https://10.0.0.5/x",
            "https://172.16.3.4/x",
            "https://192.168.1.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/x",
            "https://0.0.0.0/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:10.0.0.1]/x",
            "https://[64:ff9b::a00:1]/x",
            "not a url",
        ] {
            assert!(target_allowed(bad, false).is_err(), "{bad}");
        }
        assert_eq!(target_allowed("http://127.0.0.1:9000/hook", true), Ok(()));
        assert!(target_allowed("http://10.0.0.1/hook", true).is_err(), "loopback only, not private");
    }

    #[test]
    fn secrets_are_long_and_new_each_time() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_") && a.len() == 6 + 43, "{a}");
    }
}
