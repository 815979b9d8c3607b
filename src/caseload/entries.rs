//! The maintained caseload entry of each patient (`caseload_entries`): what a ward's caseload
//! shows of them, recomputed in the same transaction as every change that moves it.
//!
//! A caseload page then reads one indexed table instead of the ward's notes, which at city scale
//! (15,000 patients and over a million notes in a ward) is the difference between milliseconds
//! and seconds. `compute` is the one definition of an entry; `refresh` stores it; a new note
//! takes the cheaper `note_added` path, which moves the entry exactly as `compute` would.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::dsl::{exists, min, not};
use diesel::prelude::*;

use crate::db::schema::{
    care_team_members, caseload_entries, consents, discharge_cases, discharge_tasks, flags, note_versions, notes,
    organizations, patients,
};
use crate::db::{now, DbConn};
use crate::discharge::{CaseStatus, TaskStatus};
use crate::error::AppResult;
use crate::notes::current::is_current_version;
use crate::notes::news2::Band;
use crate::vocab::{CareLevel, ConsentStatus, FlagSeverity, FlagStatus, NoteKind, PatientStatus, TeamRole};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = caseload_entries)]
pub struct Entry {
    pub patient_id: String,
    pub ward_code: String,
    pub status: PatientStatus,
    pub name_kana: String,
    pub birth_date: NaiveDate,
    pub care_level: CareLevel,
    pub care_level_rank: i32,
    pub team_size: i32,
    pub has_primary_physician: bool,
    pub active_flags: i32,
    pub highest_flag_severity: Option<FlagSeverity>,
    pub latest_news2_total: Option<i32>,
    pub latest_news2_band: Option<Band>,
    pub latest_news2_at: Option<NaiveDateTime>,
    pub last_visit_at: Option<NaiveDateTime>,
    pub open_case_id: Option<String>,
    pub planned_discharge_on: Option<NaiveDate>,
    pub next_task_due_at: Option<NaiveDateTime>,
    pub consent_state: ConsentStatus,
    pub updated_at: NaiveDateTime,
}

/// Position on the care-need scale (none < applying < support_1 … care_5), for sorting.
pub fn care_level_rank(care_level: CareLevel) -> i32 {
    CareLevel::ALL.iter().position(|c| *c == care_level).map_or(-1, |i| i as i32)
}

/// The entry of one patient, from the source tables; `None` for an unknown patient.
pub fn compute(conn: &mut DbConn, patient_id: &str) -> AppResult<Option<Entry>> {
    type PatientCols = (String, String, String, NaiveDate, CareLevel, PatientStatus);
    let Some((ward_code, family_kana, given_kana, birth_date, care_level, status)) = patients::table
        .find(patient_id)
        // A merged duplicate has no entry: the patient it was merged into stands for it.
        .filter(patients::superseded_by.is_null())
        .select((
            patients::ward_code,
            patients::family_name_kana,
            patients::given_name_kana,
            patients::birth_date,
            patients::care_level,
            patients::status,
        ))
        .first::<PatientCols>(conn)
        .optional()?
    else {
        return Ok(None);
    };

    // Members of a deactivated organisation count for nothing: a coordinator must see that the
    // patient has lost their physician.
    let roles: Vec<TeamRole> = care_team_members::table
        .inner_join(organizations::table.on(organizations::id.eq(care_team_members::organization_id)))
        .filter(care_team_members::patient_id.eq(patient_id))
        .filter(care_team_members::ended_at.is_null())
        .filter(organizations::active.eq(true))
        .select(care_team_members::role)
        .load(conn)?;

    let severities: Vec<FlagSeverity> = flags::table
        .filter(flags::patient_id.eq(patient_id))
        .filter(flags::status.eq_any(FlagStatus::OPEN))
        .select(flags::severity)
        .load(conn)?;
    let highest_flag_severity = if severities.contains(&FlagSeverity::Emergency) {
        Some(FlagSeverity::Emergency)
    } else {
        severities.first().copied()
    };

    // The latest scored note, counting only each note's current version; on a tie, the note
    // recorded first.
    let news2: Option<(Option<i32>, Option<Band>, NaiveDateTime)> = note_versions::table
        .filter(note_versions::patient_id.eq(patient_id))
        .filter(note_versions::news2_total.is_not_null())
        .filter(is_current_version!())
        .order((note_versions::occurred_at.desc(), note_versions::note_id.asc()))
        .select((note_versions::news2_total, note_versions::news2_band, note_versions::occurred_at))
        .first(conn)
        .optional()?;

    let last_visit_at: Option<NaiveDateTime> = note_versions::table
        .inner_join(notes::table)
        .filter(note_versions::patient_id.eq(patient_id))
        .filter(notes::kind.eq(NoteKind::Visit))
        .filter(is_current_version!())
        .order(note_versions::occurred_at.desc())
        .select(note_versions::occurred_at)
        .first(conn)
        .optional()?;

    // The patient's running case — open, or discharged with its post-discharge tasks (退院後初回訪問,
    // 退院・退所情報収集) still to do — until it is closed or cancelled; the most recently opened
    // when there is more than one.
    let open_case: Option<(String, Option<NaiveDate>)> = discharge_cases::table
        .filter(discharge_cases::patient_id.eq(patient_id))
        .filter(discharge_cases::status.eq_any(CaseStatus::active_codes()))
        .order((discharge_cases::created_at.desc(), discharge_cases::id.desc()))
        .select((discharge_cases::id, discharge_cases::planned_discharge_on))
        .first(conn)
        .optional()?;
    let next_task_due_at = match &open_case {
        Some((case_id, _)) => discharge_tasks::table
            .filter(discharge_tasks::case_id.eq(case_id))
            .filter(discharge_tasks::status.eq_any(TaskStatus::open_codes()))
            .select(min(discharge_tasks::due_at))
            .first::<Option<NaiveDateTime>>(conn)?,
        None => None,
    };

    let latest_consent: Option<Option<NaiveDateTime>> = consents::table
        .filter(consents::patient_id.eq(patient_id))
        .order((consents::created_at.desc(), consents::id.desc()))
        .select(consents::revoked_at)
        .first(conn)
        .optional()?;
    let consent_state = match latest_consent {
        None => ConsentStatus::None,
        Some(None) => ConsentStatus::Active,
        Some(Some(_)) => ConsentStatus::Revoked,
    };

    let (latest_news2_total, latest_news2_band, latest_news2_at) = match news2 {
        Some((total, band, at)) => (total, band, Some(at)),
        None => (None, None, None),
    };
    let (open_case_id, planned_discharge_on) = match open_case {
        Some((id, planned)) => (Some(id), planned),
        None => (None, None),
    };
    Ok(Some(Entry {
        patient_id: patient_id.to_string(),
        ward_code,
        status,
        name_kana: crate::vocab::normalize_kana(&format!("{family_kana} {given_kana}")),
        birth_date,
        care_level_rank: care_level_rank(care_level),
        care_level,
        team_size: roles.len() as i32,
        has_primary_physician: roles.contains(&TeamRole::PrimaryPhysician),
        active_flags: severities.len() as i32,
        highest_flag_severity,
        latest_news2_total,
        latest_news2_band,
        latest_news2_at,
        last_visit_at,
        open_case_id,
        planned_discharge_on,
        next_task_due_at,
        consent_state,
        updated_at: now(),
    }))
}

/// Recomputes and stores one patient's entry; `changes::record` calls it for every change that
/// moves it, in the change's own transaction.
pub fn refresh(conn: &mut DbConn, patient_id: &str) -> AppResult<()> {
    crate::db::projection_lock(conn, "caseload", patient_id)?;
    diesel::delete(caseload_entries::table.find(patient_id)).execute(conn)?;
    if let Some(entry) = compute(conn, patient_id)? {
        diesel::insert_into(caseload_entries::table).values(&entry).execute(conn)?;
    }
    Ok(())
}

/// A new note (version 1): it can only move the last visit and the latest NEWS2 forward, so
/// two conditional updates do what `refresh` would, without rereading the patient's notes.
pub fn note_added(
    conn: &mut DbConn,
    patient_id: &str,
    kind: NoteKind,
    occurred_at: NaiveDateTime,
    news2: Option<(i32, Band)>,
) -> AppResult<()> {
    if kind != NoteKind::Visit && news2.is_none() {
        return Ok(());
    }
    // A concurrent `refresh` deletes and reinserts the row: without the lock this update could
    // meet the deleted row, do nothing, and the new note be missing from the entry.
    crate::db::projection_lock(conn, "caseload", patient_id)?;
    if kind == NoteKind::Visit {
        diesel::update(
            caseload_entries::table
                .filter(caseload_entries::patient_id.eq(patient_id))
                .filter(caseload_entries::last_visit_at.is_null().or(caseload_entries::last_visit_at.lt(occurred_at))),
        )
        .set((caseload_entries::last_visit_at.eq(occurred_at), caseload_entries::updated_at.eq(now())))
        .execute(conn)?;
    }
    if let Some((total, band)) = news2 {
        // Only a strictly later visit wins: on a tie `compute` keeps the earlier-recorded note
        // (ids are time-ordered), so the two agree.
        let later = caseload_entries::latest_news2_at.is_null().or(caseload_entries::latest_news2_at.lt(occurred_at));
        diesel::update(caseload_entries::table.filter(caseload_entries::patient_id.eq(patient_id)).filter(later))
            .set((
                caseload_entries::latest_news2_total.eq(Some(total)),
                caseload_entries::latest_news2_band.eq(Some(band)),
                caseload_entries::latest_news2_at.eq(Some(occurred_at)),
                caseload_entries::updated_at.eq(now()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Recomputes every patient's entry (after a bulk load). Returns how many were written.
pub fn rebuild_all(conn: &mut DbConn) -> AppResult<usize> {
    let ids: Vec<String> = patients::table.select(patients::id).order(patients::id).load(conn)?;
    rebuild(conn, &ids)
}

/// Writes the entries of patients that have none (a database from before the table existed).
pub fn rebuild_missing(conn: &mut DbConn) -> AppResult<usize> {
    let ids: Vec<String> = patients::table
        .filter(not(exists(caseload_entries::table.filter(caseload_entries::patient_id.eq(patients::id)))))
        .select(patients::id)
        .order(patients::id)
        .load(conn)?;
    rebuild(conn, &ids)
}

fn rebuild(conn: &mut DbConn, ids: &[String]) -> AppResult<usize> {
    // Batches keep each transaction short and bind lists well under SQLite's variable limit.
    for chunk in ids.chunks(500) {
        conn.transaction(|conn| {
            let mut entries = Vec::with_capacity(chunk.len());
            for id in chunk {
                if let Some(e) = compute(conn, id)? {
                    entries.push(e);
                }
            }
            diesel::delete(caseload_entries::table.filter(caseload_entries::patient_id.eq_any(chunk))).execute(conn)?;
            crate::per_backend!(conn, |c| diesel::insert_into(caseload_entries::table).values(&entries).execute(c))?;
            Ok::<_, crate::error::AppError>(())
        })?;
    }
    Ok(ids.len())
}
