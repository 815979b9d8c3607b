//! Operations: liveness, readiness, metrics and the API contract, for whoever runs the service.

pub mod handlers;

use crate::db::{self, DbConn};
use crate::error::{AppError, AppResult};
use crate::mail::outbox::{self, Depth};

/// The contract, served as written.
pub const OPENAPI_YAML: &str = include_str!("../../api-spec/openapi.yaml");

/// The outbox depth when every migration is applied, `None` while some are pending.
pub fn readiness(conn: &mut DbConn) -> AppResult<Option<Depth>> {
    if !db::migrations_current(conn).map_err(AppError::internal)? {
        return Ok(None);
    }
    Ok(Some(outbox::depth(conn)?))
}

/// Totals every instance shares, read at scrape time: no patient data.
pub fn scrape_counts(conn: &mut DbConn) -> AppResult<(Depth, i64, (i64, i64))> {
    let depth = outbox::depth(conn)?;
    let sent = outbox::count_sent(conn)?;
    let flags = crate::flags::count_open(conn)?;
    Ok((depth, sent, flags))
}
