//! Read receipts (既読): who of the team read which note and when, and what each person has not
//! read yet. The first read is kept; reading again changes nothing. A note's author has read it
//! from the moment it is recorded. Receipts are for care-team members: a coordinating physician
//! or a clinician with emergency access reads the note too (and the audit trail records it), but
//! leaves no receipt, since 既読 tells the team who of them has seen a post.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::news2::Band;
use super::{current_notes, Listed, Note, NoteView, Version};
use crate::api;
use crate::db::schema::{note_reads, notes, patients, users};
use crate::db::DbConn;
use crate::error::AppResult;
use crate::per_backend;
use crate::vocab::{NoteKind, Profession};

/// How many of the newest unread notes `GET /me/unread` shows per patient.
pub const NEWEST_UNREAD: i64 = 3;

/// Records that `user_id` read the note, a change (`Change::NoteRead`) when it is their first
/// read; `false` when they had read it before (the first read time is kept).
pub fn mark(conn: &mut DbConn, note: &Note, user_id: &str, at: NaiveDateTime) -> AppResult<bool> {
    let first = record_receipt(conn, note, user_id, at)?;
    if first {
        crate::changes::record(conn, crate::changes::Change::NoteRead { patient_id: &note.patient_id, user_id })?;
    }
    Ok(first)
}

/// The receipt alone: for a note's author at posting, whose unread notes the new note is not.
pub fn record_receipt(conn: &mut DbConn, note: &Note, user_id: &str, at: NaiveDateTime) -> AppResult<bool> {
    let row = (
        note_reads::note_id.eq(&note.id),
        note_reads::user_id.eq(user_id),
        note_reads::patient_id.eq(&note.patient_id),
        note_reads::read_at.eq(at),
    );
    let inserted =
        per_backend!(conn, |c| diesel::insert_into(note_reads::table).values(row).on_conflict_do_nothing().execute(c))?;
    Ok(inserted == 1)
}

/// The receipt a member's read of a note leaves: when `view` says the reader has not read the
/// note yet, the receipt is recorded — by the writer, when the read runs on a read-only
/// connection (`db::write`) — and counted in the view the reader gets.
pub fn mark_viewed(conn: &mut DbConn, note: &Note, user_id: &str, view: &mut NoteView) -> AppResult<()> {
    if view.read_by_me {
        return Ok(());
    }
    let (note, user_id, at) = (note.clone(), user_id.to_string(), crate::db::now());
    crate::db::write(conn, move |conn| mark(conn, &note, &user_id, at).map(|_| ()))?;
    view.read_by_me = true;
    view.read_count += 1;
    Ok(())
}

/// How many people read each of these notes (notes nobody read are absent).
pub fn counts(conn: &mut DbConn, note_ids: &[String]) -> AppResult<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = note_reads::table
        .filter(note_reads::note_id.eq_any(note_ids))
        .group_by(note_reads::note_id)
        .select((note_reads::note_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// Which of these notes `user_id` has read.
pub fn read_by(conn: &mut DbConn, user_id: &str, note_ids: &[String]) -> AppResult<HashSet<String>> {
    let rows: Vec<String> = note_reads::table
        .filter(note_reads::user_id.eq(user_id))
        .filter(note_reads::note_id.eq_any(note_ids))
        .select(note_reads::note_id)
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// One reader of a note.
#[derive(Debug, Serialize)]
pub struct Receipt {
    pub user_id: String,
    pub name: String,
    pub profession: String,
    pub organization_id: String,
    #[serde(serialize_with = "api::utc")]
    pub read_at: NaiveDateTime,
}

/// Everyone who read the note, first reader first.
pub fn receipts(conn: &mut DbConn, note_id: &str) -> AppResult<Vec<Receipt>> {
    let rows: Vec<(String, String, String, Option<String>, NaiveDateTime)> = note_reads::table
        .inner_join(users::table.on(users::id.eq(note_reads::user_id)))
        .filter(note_reads::note_id.eq(note_id))
        .order((note_reads::read_at.asc(), note_reads::user_id.asc()))
        .select((note_reads::user_id, users::name, users::profession, users::organization_id, note_reads::read_at))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(user_id, name, profession, organization_id, read_at)| Receipt {
            user_id,
            name,
            profession,
            // Readers of notes are members, who are all of an organisation.
            organization_id: organization_id.unwrap_or_default(),
            read_at,
        })
        .collect())
}

/// The newest notes of a patient that `user_id` has not read, most recently recorded first.
pub fn newest_unread(conn: &mut DbConn, user_id: &str, patient_id: &str, limit: i64) -> AppResult<Vec<Listed>> {
    let rows: Vec<(Note, Version, String)> = current_notes!()
        .filter(notes::patient_id.eq(patient_id.to_string()))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            note_reads::table
                .filter(note_reads::note_id.eq(notes::id))
                .filter(note_reads::user_id.eq(user_id.to_string())),
        )))
        .order((notes::created_at.desc(), notes::id.desc()))
        .limit(limit)
        .select((Note::as_select(), Version::as_select(), users::name))
        .load(conn)?;
    Ok(rows.into_iter().map(|(note, version, author_name)| Listed { note, version, author_name }).collect())
}

/// A note in the unread summary.
#[derive(Debug, Serialize)]
pub struct UnreadNote {
    pub id: String,
    pub kind: NoteKind,
    #[serde(serialize_with = "api::utc")]
    pub occurred_at: NaiveDateTime,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
    pub author_id: String,
    pub author_name: String,
    pub author_profession: Profession,
    pub excerpt: String,
    pub amended: bool,
    pub news2_total: Option<i32>,
    pub news2_band: Option<Band>,
}

/// What is new for one of my patients.
#[derive(Debug, Serialize)]
pub struct UnreadPatient {
    pub patient_id: String,
    pub family_name: String,
    pub given_name: String,
    pub unread_count: i64,
    pub newest: Vec<UnreadNote>,
}

#[derive(Debug, Serialize)]
pub struct UnreadSummary {
    /// Across all my patients, not only this page's.
    pub total_unread: i64,
    pub items: Vec<UnreadPatient>,
    pub next_cursor: Option<String>,
}

/// Characters of a note's text shown in the unread summary.
const EXCERPT_CHARS: usize = 80;

fn unread_note(row: Listed) -> UnreadNote {
    let text = if row.version.text.trim().is_empty() {
        row.version.cautions_for_team.clone().unwrap_or_default()
    } else {
        row.version.text.clone()
    };
    UnreadNote {
        excerpt: super::excerpt(&text, EXCERPT_CHARS),
        amended: row.version.version > 1,
        id: row.note.id,
        kind: row.note.kind,
        occurred_at: row.version.occurred_at,
        created_at: row.note.created_at,
        author_id: row.note.author_id,
        author_name: row.author_name,
        author_profession: row.note.author_profession,
        news2_total: row.version.news2_total,
        news2_band: row.version.news2_band,
    }
}

/// What `user_id` has not read, per patient of their current teams, the patient with the most
/// recently recorded unread note first: a page of the maintained counts (`unread`), and the
/// newest few notes of the page's patients only.
pub fn summary(conn: &mut DbConn, user_id: &str, paging: &api::PageQuery) -> AppResult<UnreadSummary> {
    let limit = paging.limit()?;
    let after = paging.after()?.map(|c| position(&c).ok_or_else(api::invalid_cursor)).transpose()?;
    let rows = super::unread::page(conn, user_id, after, limit)?;
    let total_unread = super::unread::total(conn, user_id)?;
    let page =
        api::page(rows, limit, |r| format!("{}|{}", r.newest_unread_at.and_utc().timestamp_micros(), r.patient_id));
    let ids: Vec<&str> = page.items.iter().map(|r| r.patient_id.as_str()).collect();
    let names: HashMap<String, (String, String)> = patients::table
        .filter(patients::id.eq_any(&ids))
        .select((patients::id, patients::family_name, patients::given_name))
        .load::<(String, String, String)>(conn)?
        .into_iter()
        .map(|(id, family, given)| (id, (family, given)))
        .collect();
    let mut items = Vec::with_capacity(page.items.len());
    for row in page.items {
        let newest: Vec<UnreadNote> =
            newest_unread(conn, user_id, &row.patient_id, NEWEST_UNREAD)?.into_iter().map(unread_note).collect();
        let (family_name, given_name) = names.get(&row.patient_id).cloned().unwrap_or_default();
        items.push(UnreadPatient {
            unread_count: i64::from(row.unread_count),
            patient_id: row.patient_id,
            family_name,
            given_name,
            newest,
        });
    }
    Ok(UnreadSummary { total_unread, items, next_cursor: page.next_cursor })
}

/// The `(newest_unread_at, patient_id)` a cursor of the summary holds.
fn position(cursor: &str) -> Option<(NaiveDateTime, String)> {
    let (micros, patient_id) = cursor.split_once('|')?;
    let at = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?.naive_utc();
    Some((at, patient_id.to_string()))
}
