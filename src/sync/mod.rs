//! The change feed's log: every recorded change (`changes::record`) appended to `change_log` in
//! the writing transaction, and read back in commit order by `GET /changes` and its stream.
//!
//! # Commit order on two backends
//!
//! A cursor is a position `(tx, seq)`. A reader must never serve a position and later find a
//! smaller one committed, or it skips it (the next read starts after the cursor) — and must never
//! serve one twice.
//!
//! - SQLite has one writer (`db::writer`): it numbers the rows itself (`MAX(seq) + 1` under the
//!   write lock), so `seq` order is commit order and `tx` is always 0. A reader's transaction sees
//!   a committed prefix of the log.
//! - PostgreSQL numbers rows at insert, and transactions commit in any order, across any number
//!   of instances. Each row records its transaction's id (`pg_current_xact_id()`, the column's
//!   default), and a reader serves only rows of transactions older than the oldest one still
//!   running, `pg_snapshot_xmin(pg_current_snapshot())`: those have all ended, so no row below
//!   that bound can still appear, and every transaction that commits later has a larger id, so it
//!   sorts after everything served. We chose this over numbering rows at commit through one
//!   counter row locked until commit, which would serialise every write of the city on one lock:
//!   the price here is only latency (a long transaction holds the bound back while it runs).
//!   The bound is read once per page ([`window`]); the page itself is then cut at a position
//!   below it, so later statements, with later snapshots, read the same rows.

pub mod feed;
pub mod handlers;
pub mod stream;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};

use crate::db::schema::{care_team_members, change_followers, change_log, organizations};
use crate::db::{now, DbConn};
use crate::error::AppResult;

crate::text_enum! {
    /// What a feed item says happened to the patient. All but the last two follow `changes::Change`;
    /// the last two are addressed to one person: they began or stopped following the patient
    /// (a tombstone: drop what the app keeps of them).
    ChangeKind {
        Patient => "patient",
        Spo2Target => "spo2_target",
        Team => "team",
        Consent => "consent",
        NoteAdded => "note_added",
        NoteRead => "note_read",
        NoteVersion => "note_version",
        Flag => "flag",
        DischargeCase => "discharge_case",
        Attachment => "attachment",
        Task => "task",
        Medication => "medication",
        Allergy => "allergy",
        EmergencyCard => "emergency_card",
        VisitPlan => "visit_plan",
        Appointment => "appointment",
        FamilyMessage => "family_message",
        AccessGranted => "access_granted",
        AccessRevoked => "access_revoked",
    }
}

/// A place in the log: after every row at or before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub tx: i64,
    pub seq: i64,
}

/// One row of the log.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = change_log)]
pub struct Entry {
    pub seq: i64,
    pub tx: i64,
    pub patient_id: String,
    pub kind: ChangeKind,
    pub user_id: Option<String>,
    pub recorded_at: NaiveDateTime,
}

impl Entry {
    pub fn position(&self) -> Position {
        Position { tx: self.tx, seq: self.seq }
    }
}

/// Appends a change of the patient, in the caller's transaction. A team change also moves who
/// follows the patient ([`refollow`]).
pub fn append(conn: &mut DbConn, patient_id: &str, kind: ChangeKind) -> AppResult<()> {
    insert(conn, patient_id, kind, None)?;
    if kind == ChangeKind::Team {
        refollow(conn, patient_id)?;
    }
    crate::db::wake_streams_after_commit();
    Ok(())
}

fn insert(conn: &mut DbConn, patient_id: &str, kind: ChangeKind, user_id: Option<&str>) -> AppResult<()> {
    let at = now();
    match conn {
        DbConn::Sqlite(c) => diesel::sql_query(
            "INSERT INTO change_log (seq, tx, patient_id, kind, user_id, recorded_at) \
             SELECT COALESCE(MAX(seq), 0) + 1, 0, ?, ?, ?, ? FROM change_log",
        )
        .bind::<Text, _>(patient_id)
        .bind::<Text, _>(kind.as_str())
        .bind::<Nullable<Text>, _>(user_id)
        .bind::<Timestamp, _>(at)
        .execute(c)?,
        DbConn::Postgres(c) => {
            diesel::sql_query("INSERT INTO change_log (patient_id, kind, user_id, recorded_at) VALUES ($1, $2, $3, $4)")
                .bind::<Text, _>(patient_id)
                .bind::<Text, _>(kind.as_str())
                .bind::<Nullable<Text>, _>(user_id)
                .bind::<Timestamp, _>(at)
                .execute(c)?
        }
    };
    Ok(())
}

/// The people who follow a patient's changes: the members of the care team whose organisation
/// is in service (`access::Relation::Member`). Sorted.
pub fn members_in_service(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<String>> {
    Ok(care_team_members::table
        .inner_join(organizations::table.on(organizations::id.eq(care_team_members::organization_id)))
        .filter(care_team_members::patient_id.eq(patient_id))
        .filter(care_team_members::ended_at.is_null())
        .filter(organizations::active.eq(true))
        .select(care_team_members::user_id)
        .distinct()
        .order(care_team_members::user_id)
        .load(conn)?)
}

/// The patients a person is an in-service member of the care team of, sorted.
pub fn memberships_in_service(conn: &mut DbConn, user_id: &str) -> AppResult<Vec<String>> {
    Ok(care_team_members::table
        .inner_join(organizations::table.on(organizations::id.eq(care_team_members::organization_id)))
        .filter(care_team_members::user_id.eq(user_id))
        .filter(care_team_members::ended_at.is_null())
        .filter(organizations::active.eq(true))
        .select(care_team_members::patient_id)
        .distinct()
        .order(care_team_members::patient_id)
        .load(conn)?)
}

/// Brings `change_followers` of the patient in line with the team, and tells each person who
/// began or stopped following it. Race-safe on PostgreSQL: only the transaction whose insert or
/// delete took effect tells the person.
fn refollow(conn: &mut DbConn, patient_id: &str) -> AppResult<()> {
    let now_following = members_in_service(conn, patient_id)?;
    let before: Vec<String> = change_followers::table
        .filter(change_followers::patient_id.eq(patient_id))
        .select(change_followers::user_id)
        .load(conn)?;
    for gone in before.iter().filter(|u| !now_following.contains(u)) {
        let deleted = diesel::delete(
            change_followers::table
                .filter(change_followers::patient_id.eq(patient_id))
                .filter(change_followers::user_id.eq(gone)),
        )
        .execute(conn)?;
        if deleted > 0 {
            insert(conn, patient_id, ChangeKind::AccessRevoked, Some(gone))?;
        }
    }
    for new in now_following.iter().filter(|u| !before.contains(u)) {
        let row = (change_followers::patient_id.eq(patient_id), change_followers::user_id.eq(new));
        let added = crate::per_backend!(conn, |c| diesel::insert_into(change_followers::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c))?;
        if added > 0 {
            insert(conn, patient_id, ChangeKind::AccessGranted, Some(new))?;
        }
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Pos {
    #[diesel(sql_type = BigInt)]
    tx: i64,
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

/// The positions after `after` that may be served now (see the module's note), at most `scan`
/// of them, in commit order. Its last one bounds the page read with [`entries`].
pub fn window(conn: &mut DbConn, after: Position, scan: i64) -> AppResult<Vec<Position>> {
    let rows: Vec<Pos> = match conn {
        DbConn::Sqlite(c) => diesel::sql_query(
            "SELECT tx, seq FROM change_log WHERE (tx > ? OR (tx = ? AND seq > ?)) ORDER BY tx, seq LIMIT ?",
        )
        .bind::<BigInt, _>(after.tx)
        .bind::<BigInt, _>(after.tx)
        .bind::<BigInt, _>(after.seq)
        .bind::<BigInt, _>(scan)
        .load(c)?,
        DbConn::Postgres(c) => diesel::sql_query(
            "SELECT tx, seq FROM change_log WHERE (tx > $1 OR (tx = $1 AND seq > $2)) \
             AND tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint ORDER BY tx, seq LIMIT $3",
        )
        .bind::<BigInt, _>(after.tx)
        .bind::<BigInt, _>(after.seq)
        .bind::<BigInt, _>(scan)
        .load(c)?,
    };
    Ok(rows.into_iter().map(|p| Position { tx: p.tx, seq: p.seq }).collect())
}

/// The last position that may be served now (the origin when the log is empty).
pub fn latest(conn: &mut DbConn) -> AppResult<Position> {
    let row: Option<Pos> = match conn {
        DbConn::Sqlite(c) => diesel::sql_query("SELECT tx, seq FROM change_log ORDER BY tx DESC, seq DESC LIMIT 1")
            .get_result(c)
            .optional()?,
        DbConn::Postgres(c) => diesel::sql_query(
            "SELECT tx, seq FROM change_log WHERE tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint \
             ORDER BY tx DESC, seq DESC LIMIT 1",
        )
        .get_result(c)
        .optional()?,
    };
    Ok(row.map(|p| Position { tx: p.tx, seq: p.seq }).unwrap_or_default())
}

/// The rows in `(after, upto]` of the given patients, and those addressed to `user_id`, in
/// commit order, at most `limit`.
pub fn entries(
    conn: &mut DbConn,
    after: Position,
    upto: Position,
    user_id: &str,
    patients: &[String],
    limit: i64,
) -> AppResult<Vec<Entry>> {
    use change_log::dsl as l;
    let scope = l::user_id.eq(user_id).or(l::user_id.is_null().and(l::patient_id.eq_any(patients)));
    Ok(l::change_log
        .filter(l::tx.gt(after.tx).or(l::tx.eq(after.tx).and(l::seq.gt(after.seq))))
        .filter(l::tx.lt(upto.tx).or(l::tx.eq(upto.tx).and(l::seq.le(upto.seq))))
        .filter(scope)
        .order((l::tx.asc(), l::seq.asc()))
        .limit(limit)
        .select(Entry::as_select())
        .load(conn)?)
}
