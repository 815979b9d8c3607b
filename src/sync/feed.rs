//! A page of the change feed for one person: the first sync's snapshot of their patients, then
//! the changes after a cursor, in commit order (`sync`), within their scope (`access`).

use base64::Engine;
use chrono::NaiveDateTime;
use serde::Serialize;

use super::{ChangeKind, Position};
use crate::access;
use crate::audit::{self, Action, Event, Resource};
use crate::auth::CurrentUser;
use crate::db::DbConn;
use crate::error::{AppError, AppResult};

/// The most log rows one page looks through: a person whose patients changed little since
/// their cursor still gets an answer in bounded time, and a cursor further on.
pub const SCAN: i64 = 5000;

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// A first sync: the snapshot's first page.
    Start,
    /// A later page of a snapshot taken at `at`, after patient `after`.
    Snapshot { at: Position, after: String },
    /// The changes after a position.
    Changes(Position),
}

fn engine() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

pub fn change_cursor(p: Position) -> String {
    engine().encode(format!("c.{}.{}", p.tx, p.seq))
}

fn snapshot_cursor(at: Position, after: &str) -> String {
    engine().encode(format!("s.{}.{}.{after}", at.tx, at.seq))
}

/// Reads a cursor this server handed out; anything else is 422 naming `field`.
pub fn parse(raw: Option<&str>, field: &str) -> AppResult<Since> {
    let Some(raw) = raw else { return Ok(Since::Start) };
    let invalid = || {
        AppError::field(
            field,
            "invalid",
            format!("{field} が不正です。前回の応答の next_cursor(またはイベントの id)をそのまま指定してください。"),
            format!("{field} is not valid. Pass next_cursor (or the event id) from the previous answer unchanged."),
        )
    };
    let text = (raw.len() <= 200).then(|| engine().decode(raw.as_bytes()).ok()).flatten().ok_or_else(invalid)?;
    let text = String::from_utf8(text).map_err(|_| invalid())?;
    let mut parts = text.splitn(4, '.');
    let (kind, tx, seq) = (parts.next(), parts.next(), parts.next());
    let number = |s: Option<&str>| s.and_then(|s| s.parse::<i64>().ok()).filter(|n| *n >= 0);
    let (Some(tx), Some(seq)) = (number(tx), number(seq)) else { return Err(invalid()) };
    let at = Position { tx, seq };
    match (kind, parts.next()) {
        (Some("c"), None) => Ok(Since::Changes(at)),
        (Some("s"), Some(after)) if uuid::Uuid::parse_str(after).is_ok() => {
            Ok(Since::Snapshot { at, after: after.to_string() })
        }
        _ => Err(invalid()),
    }
}

/// One item: what happened to which patient, and the cursor just after it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub cursor: String,
    pub kind: ChangeKind,
    pub patient_id: String,
    /// When the change was recorded; none on a snapshot's items.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "crate::api::utc_opt")]
    pub at: Option<NaiveDateTime>,
}

/// A page: `next_cursor` is where the next page starts (always given: keep it), `more` whether
/// that page can be asked for at once, `snapshot` whether these are the first sync's patients.
#[derive(Debug, Clone, Serialize)]
pub struct Feed {
    pub items: Vec<Item>,
    pub next_cursor: String,
    /// Where a stream goes on from (`next_cursor` of a page of changes).
    #[serde(skip)]
    pub next: Position,
    pub more: bool,
    pub snapshot: bool,
}

/// The page starting at `since`, audited (one read per patient it names).
pub fn read(conn: &mut DbConn, me: &CurrentUser, since: Since, limit: i64) -> AppResult<Feed> {
    let patients = access::feed_patients(conn, me)?;
    let feed = match since {
        Since::Start => {
            let at = super::latest(conn)?;
            snapshot(&patients, at, None, limit)
        }
        Since::Snapshot { at, after } => snapshot(&patients, at, Some(&after), limit),
        Since::Changes(after) => changes(conn, me, &patients, after, limit)?,
    };
    let mut named: Vec<&str> = feed.items.iter().map(|i| i.patient_id.as_str()).collect();
    named.sort_unstable();
    named.dedup();
    let reads = named
        .into_iter()
        .map(|id| Event::new(Action::Read, Resource::Patient, Some(id), Some(id)).detail("changes"))
        .collect();
    audit::record_all(conn, me, reads)?;
    Ok(feed)
}

/// A page of the caller's patients as they are now. The position was taken before the first
/// page, so every change after it comes in the feed that follows.
fn snapshot(patients: &[String], at: Position, after: Option<&str>, limit: i64) -> Feed {
    let rest: Vec<&String> = patients.iter().filter(|p| after.is_none_or(|a| p.as_str() > a)).collect();
    let page: Vec<&String> = rest.iter().take(limit as usize).copied().collect();
    let more = rest.len() > page.len();
    let items: Vec<Item> = page
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let last = i + 1 == page.len();
            let cursor = if last && !more { change_cursor(at) } else { snapshot_cursor(at, id) };
            Item { cursor, kind: ChangeKind::Patient, patient_id: id.to_string(), at: None }
        })
        .collect();
    let next_cursor = items.last().map(|i| i.cursor.clone()).unwrap_or_else(|| change_cursor(at));
    Feed { items, next_cursor, next: at, more, snapshot: true }
}

fn changes(conn: &mut DbConn, me: &CurrentUser, patients: &[String], after: Position, limit: i64) -> AppResult<Feed> {
    let window = super::window(conn, after, SCAN)?;
    let Some(&upto) = window.last() else {
        return Ok(Feed {
            items: Vec::new(),
            next_cursor: change_cursor(after),
            next: after,
            more: false,
            snapshot: false,
        });
    };
    let mut rows = super::entries(conn, after, upto, &me.id, patients, limit + 1)?;
    let full = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let (next, more) = match rows.last() {
        Some(last) if full => (last.position(), true),
        _ => (upto, window.len() as i64 == SCAN),
    };
    let items = rows
        .into_iter()
        .map(|e| Item {
            cursor: change_cursor(e.position()),
            kind: e.kind,
            patient_id: e.patient_id,
            at: Some(e.recorded_at),
        })
        .collect();
    Ok(Feed { items, next_cursor: change_cursor(next), next, more, snapshot: false })
}
