//! What each person has not read, per patient of their current care teams (`unread_by_patient`):
//! a projection kept by the writes that move it, in their transaction — a new note
//! (`Change::NoteAdded`), a first read (`Change::NoteRead`) and a team change (`Change::Team`) — so
//! that `GET /me/unread` reads a page of rows instead of counting every note of the caseload.
//! Its counts are those [`live_counts`] computes from the notes and receipts themselves; the
//! tests hold the two to each other.
//!
//! On PostgreSQL two transactions on the same patient (a note posted while a member reads
//! another) could each count without seeing the other's uncommitted row and the later write
//! would lose the earlier one's; every maintenance step therefore first takes the patient's
//! transaction-scoped advisory lock, so whoever counts last sees everything committed. SQLite
//! has one writer.

use chrono::NaiveDateTime;
use diesel::dsl::{exists, not};
use diesel::prelude::*;

use crate::db::schema::{care_team_members, note_reads, notes, unread_by_patient as ub};
use crate::db::DbConn;
use crate::error::AppResult;
use crate::per_backend;

/// One person's unread notes of one patient.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = ub)]
pub struct Unread {
    pub user_id: String,
    pub patient_id: String,
    pub unread_count: i32,
    pub newest_unread_at: NaiveDateTime,
}

/// A new note of the patient: one more unread for every current member who has not read it
/// (its author has), with it as their newest.
pub fn note_added(conn: &mut DbConn, patient_id: &str, note_id: &str, created_at: NaiveDateTime) -> AppResult<()> {
    lock(conn, patient_id)?;
    let members: Vec<String> = care_team_members::table
        .filter(care_team_members::patient_id.eq(patient_id))
        .filter(care_team_members::ended_at.is_null())
        .filter(not(exists(
            note_reads::table
                .filter(note_reads::note_id.eq(note_id))
                .filter(note_reads::user_id.eq(care_team_members::user_id)),
        )))
        .select(care_team_members::user_id)
        .distinct()
        .load(conn)?;
    // A team has a handful of members: one upsert each (SQLite takes no multi-row upsert here).
    for user_id in members {
        let row = Unread { user_id, patient_id: patient_id.to_string(), unread_count: 1, newest_unread_at: created_at };
        per_backend!(conn, |c| diesel::insert_into(ub::table)
            .values(&row)
            .on_conflict((ub::user_id, ub::patient_id))
            .do_update()
            .set((ub::unread_count.eq(ub::unread_count + 1), ub::newest_unread_at.eq(created_at)))
            .execute(c))?;
    }
    Ok(())
}

/// `user_id` read one of the patient's notes for the first time: their row is counted again.
pub fn read(conn: &mut DbConn, user_id: &str, patient_id: &str) -> AppResult<()> {
    lock(conn, patient_id)?;
    let member = diesel::select(exists(
        care_team_members::table
            .filter(care_team_members::patient_id.eq(patient_id))
            .filter(care_team_members::user_id.eq(user_id))
            .filter(care_team_members::ended_at.is_null()),
    ))
    .get_result::<bool>(conn)?;
    let row = if member { count(conn, user_id, patient_id)? } else { None };
    put(conn, user_id, patient_id, row)
}

/// The patient's team changed: every row of the patient is counted again, for its current
/// members only (someone who left has nothing unread here any more).
pub fn team_changed(conn: &mut DbConn, patient_id: &str) -> AppResult<()> {
    lock(conn, patient_id)?;
    let members: Vec<String> = care_team_members::table
        .filter(care_team_members::patient_id.eq(patient_id))
        .filter(care_team_members::ended_at.is_null())
        .select(care_team_members::user_id)
        .distinct()
        .load(conn)?;
    diesel::delete(ub::table.filter(ub::patient_id.eq(patient_id)).filter(ub::user_id.ne_all(&members)))
        .execute(conn)?;
    for user_id in &members {
        let row = count(conn, user_id, patient_id)?;
        put(conn, user_id, patient_id, row)?;
    }
    Ok(())
}

/// The patient's lock for this projection, held until the transaction ends.
fn lock(conn: &mut DbConn, patient_id: &str) -> AppResult<()> {
    crate::db::projection_lock(conn, "unread", patient_id)
}

/// How many of the patient's notes `user_id` has not read, and when the newest of them was
/// recorded; `None` when none.
fn count(conn: &mut DbConn, user_id: &str, patient_id: &str) -> AppResult<Option<Unread>> {
    let (n, newest): (i64, Option<NaiveDateTime>) = notes::table
        .filter(notes::patient_id.eq(patient_id))
        .filter(not(exists(
            note_reads::table.filter(note_reads::note_id.eq(notes::id)).filter(note_reads::user_id.eq(user_id)),
        )))
        .select((diesel::dsl::count_star(), diesel::dsl::max(notes::created_at)))
        .first(conn)?;
    Ok(newest.filter(|_| n > 0).map(|newest_unread_at| Unread {
        user_id: user_id.to_string(),
        patient_id: patient_id.to_string(),
        unread_count: i32::try_from(n).unwrap_or(i32::MAX),
        newest_unread_at,
    }))
}

fn put(conn: &mut DbConn, user_id: &str, patient_id: &str, row: Option<Unread>) -> AppResult<()> {
    let this = ub::table.filter(ub::user_id.eq(user_id)).filter(ub::patient_id.eq(patient_id));
    match row {
        None => {
            diesel::delete(this).execute(conn)?;
        }
        Some(row) => {
            per_backend!(conn, |c| diesel::insert_into(ub::table)
                .values(&row)
                .on_conflict((ub::user_id, ub::patient_id))
                .do_update()
                .set((ub::unread_count.eq(row.unread_count), ub::newest_unread_at.eq(row.newest_unread_at)))
                .execute(c))?;
        }
    }
    Ok(())
}

/// How many notes `user_id` has not read in all, across their current patients.
pub fn total(conn: &mut DbConn, user_id: &str) -> AppResult<i64> {
    let total: Option<i64> =
        ub::table.filter(ub::user_id.eq(user_id)).select(diesel::dsl::sum(ub::unread_count)).first(conn)?;
    Ok(total.unwrap_or(0))
}

/// A page of `user_id`'s rows, the most recent unread note first, after `after` (the last row's
/// `(newest_unread_at, patient_id)` of the page before); `limit + 1` rows so the caller can tell
/// whether there is more.
pub fn page(
    conn: &mut DbConn,
    user_id: &str,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> AppResult<Vec<Unread>> {
    let mut q = ub::table.filter(ub::user_id.eq(user_id)).select(Unread::as_select()).into_boxed();
    if let Some((at, patient_id)) = after {
        q = q.filter(ub::newest_unread_at.lt(at).or(ub::newest_unread_at.eq(at).and(ub::patient_id.gt(patient_id))));
    }
    Ok(q.order((ub::newest_unread_at.desc(), ub::patient_id.asc())).limit(limit + 1).load(conn)?)
}

/// `user_id`'s unread counts computed from the notes and receipts themselves, per current
/// patient with any (what the projection must always equal), sorted by patient.
pub fn live_counts(conn: &mut DbConn, user_id: &str) -> AppResult<Vec<(String, i64)>> {
    let my_patients = care_team_members::table
        .filter(care_team_members::user_id.eq(user_id.to_string()))
        .filter(care_team_members::ended_at.is_null())
        .select(care_team_members::patient_id);
    Ok(notes::table
        .filter(notes::patient_id.eq_any(my_patients))
        .filter(not(exists(
            note_reads::table
                .filter(note_reads::note_id.eq(notes::id))
                .filter(note_reads::user_id.eq(user_id.to_string())),
        )))
        .group_by(notes::patient_id)
        .select((notes::patient_id, diesel::dsl::count_star()))
        .order(notes::patient_id)
        .load(conn)?)
}

/// `user_id`'s rows of the projection as `(patient, count)`, sorted by patient.
pub fn stored_counts(conn: &mut DbConn, user_id: &str) -> AppResult<Vec<(String, i64)>> {
    let rows: Vec<(String, i32)> = ub::table
        .filter(ub::user_id.eq(user_id))
        .select((ub::patient_id, ub::unread_count))
        .order(ub::patient_id)
        .load(conn)?;
    Ok(rows.into_iter().map(|(p, n)| (p, i64::from(n))).collect())
}

/// Counts every row again from the notes and receipts, in one set-based statement (after a
/// bulk load that wrote notes and receipts directly). Returns how many rows were written.
pub fn rebuild_all(conn: &mut DbConn) -> AppResult<usize> {
    diesel::delete(ub::table).execute(conn)?;
    // The same statement as the migration's backfill; no bound values, so one text serves both.
    let written = diesel::sql_query(
        "INSERT INTO unread_by_patient (user_id, patient_id, unread_count, newest_unread_at) \
         SELECT m.user_id, n.patient_id, COUNT(*), MAX(n.created_at) \
         FROM (SELECT DISTINCT user_id, patient_id FROM care_team_members WHERE ended_at IS NULL) m \
         JOIN notes n ON n.patient_id = m.patient_id \
         WHERE NOT EXISTS (SELECT 1 FROM note_reads r WHERE r.note_id = n.id AND r.user_id = m.user_id) \
         GROUP BY m.user_id, n.patient_id",
    );
    Ok(per_backend!(conn, |c| written.clone().execute(c))?)
}
