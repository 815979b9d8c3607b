//! The notebook's routes: `/patients/{id}/notes`, `/notes/{id}` with its amendments, versions
//! and read receipts, `/me/unread`, `/patients/{id}/timeline` and `/patients/{id}/vitals`.
//! Each handler parses, asks `access`, calls the notebook's query functions in one transaction
//! and answers; the SQL stays in `notes`, `reads`, `timeline` and `trends`.

pub mod notes;
pub mod reads;
pub mod timeline;
pub mod vitals;

use crate::api::{self, PageQuery};
use crate::error::AppResult;

/// A list request's `limit`, and the position its cursor holds as `decode` reads it (422 naming
/// `cursor` for one that no page of this list handed out).
fn paging<P>(query: &PageQuery, decode: impl FnOnce(&str) -> Option<P>) -> AppResult<(i64, Option<P>)> {
    let limit = query.limit()?;
    let after = query.after()?.map(|c| decode(&c).ok_or_else(api::invalid_cursor)).transpose()?;
    Ok((limit, after))
}
