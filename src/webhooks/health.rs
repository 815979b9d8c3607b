//! What deliveries tell about an endpoint: failures in a row, and disabling one that keeps
//! failing. Called by the outbox worker in the transaction that records each outcome. Kept apart
//! from the endpoints' queries, which the change record reaches, so that those never depend on
//! e-mail.

use diesel::prelude::*;

use super::{reload, DisabledReason, EndpointStatus};
use crate::db::schema::{users, webhook_endpoints};
use crate::db::{now, DbConn};
use crate::error::AppResult;
use crate::mail::{Mailer, Notice};
use crate::vocab::AccountRole;

/// A delivery succeeded: the failures in a row start again from zero.
pub fn delivered(conn: &mut DbConn, id: &str) -> AppResult<()> {
    use webhook_endpoints::dsl as w;
    diesel::update(w::webhook_endpoints.find(id).filter(w::consecutive_failures.ne(0)))
        .set(w::consecutive_failures.eq(0))
        .execute(conn)?;
    Ok(())
}

/// A delivery failed. At `max_failures` in a row the endpoint is disabled — by one conditional
/// update, so however many deliveries fail at once it happens, and the administrators of its
/// organisation are e-mailed, exactly once. True when this failure disabled it.
pub fn failed(conn: &mut DbConn, id: &str, max_failures: i32, mailer: &Mailer) -> AppResult<bool> {
    use webhook_endpoints::dsl as w;
    let active = w::webhook_endpoints.find(id).filter(w::status.eq(EndpointStatus::Active));
    diesel::update(active).set(w::consecutive_failures.eq(w::consecutive_failures + 1)).execute(conn)?;
    let t = now();
    let disabled = diesel::update(active.filter(w::consecutive_failures.ge(max_failures)))
        .set((
            w::status.eq(EndpointStatus::Disabled),
            w::disabled_reason.eq(Some(DisabledReason::Failures)),
            w::disabled_at.eq(Some(t)),
            w::updated_at.eq(t),
        ))
        .execute(conn)?
        == 1;
    if disabled {
        let endpoint = reload(conn, id)?;
        let admins = administrators(conn, &endpoint.organization_id)?;
        let notice = Notice::WebhookDisabled {
            failures: i64::from(endpoint.consecutive_failures),
            disabled_at: t,
            endpoint_id: endpoint.id.clone(),
        };
        crate::mail::notify(
            conn,
            mailer,
            &admins,
            &notice,
            None,
            &format!("webhook:{id}:disabled:{}", t.and_utc().timestamp_micros()),
        )?;
    }
    Ok(disabled)
}

/// The active administrators of an organisation.
fn administrators(conn: &mut DbConn, organization_id: &str) -> AppResult<Vec<String>> {
    Ok(users::table
        .filter(users::organization_id.eq(organization_id))
        .filter(users::role.eq(AccountRole::OrgAdmin))
        .filter(users::active.eq(true))
        .order(users::id.asc())
        .select(users::id)
        .load(conn)?)
}
