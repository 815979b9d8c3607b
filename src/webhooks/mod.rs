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

use base64::Engine;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::{self, Check};
use crate::db::schema::webhook_endpoints;
use crate::db::{new_id, now, DbConn};
use crate::error::AppResult;
use crate::outbound;
use crate::sealing::Sealer;

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
    /// The signing key, sealed (`sealing`; [`Endpoint::secret`] opens it); shown once, when
    /// made (at registration or rotation), never again.
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

impl Endpoint {
    /// What a sealed secret is bound to: this endpoint's row.
    fn sealed_for(id: &str) -> String {
        format!("webhook_endpoints:{id}")
    }

    /// The signing secret, opened.
    pub fn secret(&self, sealer: &Sealer) -> Result<String, crate::sealing::OpenError> {
        sealer.open(&self.secret, &Self::sealed_for(&self.id))
    }
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

impl EndpointWithSecret {
    /// The endpoint and the secret just made for it (never read back for this).
    pub fn new(e: &Endpoint, secret: String) -> EndpointWithSecret {
        EndpointWithSecret { endpoint: EndpointView::from(e), secret }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    pub url: String,
}

/// Checks an endpoint URL (field `url`): see [`outbound::target_allowed`].
pub fn check(input: &EndpointInput, allow_loopback: bool) -> AppResult<()> {
    let mut check = Check::new();
    if input.url.len() > MAX_URL_CHARS || outbound::target_allowed(&input.url, allow_loopback).is_err() {
        check.push(
            "url",
            "invalid_url",
            "url は公開されたホストの https:// URL で指定してください(プライベート・ループバック・リンクローカルのアドレスは指定できません)。",
            "url must be an https:// URL of a public host (private, loopback and link-local addresses are refused).",
        );
    }
    check.finish()
}

/// A new signing secret: 32 random bytes, base64url, with a prefix that says what it is. The
/// HMAC key is the whole string as UTF-8.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// What became of a registration.
pub enum Registration {
    /// The endpoint and its new secret, in the clear for the one answer that shows it.
    Created(Endpoint, String),
    /// The organisation has this URL registered already.
    Duplicate,
    /// The organisation has [`MAX_PER_ORGANIZATION`] endpoints.
    TooMany,
}

pub fn register(
    conn: &mut DbConn,
    sealer: &Sealer,
    organization_id: &str,
    url: &str,
    created_by: &str,
) -> AppResult<Registration> {
    use webhook_endpoints::dsl as w;
    let count: i64 = w::webhook_endpoints.filter(w::organization_id.eq(organization_id)).count().get_result(conn)?;
    if count >= MAX_PER_ORGANIZATION {
        return Ok(Registration::TooMany);
    }
    let t = now();
    let (id, secret) = (new_id(), new_secret());
    let row = Endpoint {
        secret: sealer.seal(&secret, &Endpoint::sealed_for(&id)),
        id,
        organization_id: organization_id.to_string(),
        url: url.to_string(),
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
    Ok(if inserted == 1 { Registration::Created(row, secret) } else { Registration::Duplicate })
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

/// A new secret for an endpoint (answered in the clear, once); the old one signs nothing from
/// now on.
pub fn rotate_secret(conn: &mut DbConn, sealer: &Sealer, id: &str) -> AppResult<(Endpoint, String)> {
    use webhook_endpoints::dsl as w;
    let t = now();
    let secret = new_secret();
    diesel::update(w::webhook_endpoints.find(id))
        .set((
            w::secret.eq(sealer.seal(&secret, &Endpoint::sealed_for(id))),
            w::secret_rotated_at.eq(t),
            w::updated_at.eq(t),
        ))
        .execute(conn)?;
    Ok((reload(conn, id)?, secret))
}

/// Seals every stored secret that is in the clear (written by a release before sealing) or
/// sealed under a previous key; run at start and by `renkei migrate`. A secret that does not
/// open is left as it is and named in the log: its endpoint's deliveries fail until an
/// administrator rotates it. Returns how many were sealed.
pub fn seal_stored_secrets(conn: &mut DbConn, sealer: &Sealer) -> AppResult<usize> {
    use webhook_endpoints::dsl as w;
    let rows: Vec<(String, String)> = w::webhook_endpoints.select((w::id, w::secret)).order(w::id.asc()).load(conn)?;
    let mut sealed = 0;
    for (id, stored) in rows {
        if !sealer.needs_sealing(&stored) {
            continue;
        }
        let bound = Endpoint::sealed_for(&id);
        match sealer.open(&stored, &bound) {
            Ok(secret) => {
                // Only if nobody rotated it meanwhile (another instance starting at once).
                sealed += diesel::update(w::webhook_endpoints.find(&id).filter(w::secret.eq(&stored)))
                    .set(w::secret.eq(sealer.seal(&secret, &bound)))
                    .execute(conn)?;
            }
            Err(why) => tracing::error!(endpoint = %id, error = %why, "webhook secret cannot be opened"),
        }
    }
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_and_new_each_time() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_") && a.len() == 6 + 43, "{a}");
    }
}
