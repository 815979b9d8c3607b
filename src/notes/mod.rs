//! The shared notebook (DESIGN.md §4): notes with free text, SOAP parts and vital signs, the
//! NEWS2 score derived from them, the physician's information-sharing note, amendments, read
//! receipts (既読), the patient's timeline and vital-sign trends.
//!
//! A note is never edited or deleted (真正性, the authenticity of the electronic record). A
//! `notes` row holds what never changes — patient, kind, author, when it was first recorded — and
//! `note_versions` rows hold each version of its content. An amendment adds a version with a
//! reason; the current version is the highest one (no row is ever updated to point at it), and
//! the database refuses UPDATE and DELETE on both tables.

pub mod current;
pub mod handlers;
pub mod news2;
pub mod reads;
pub mod timeline;
pub mod trends;
pub mod unread;
pub mod vitals;
pub mod writing;

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use self::news2::{Band, News2, Parameter, Subscores};
use self::vitals::{Consciousness, Vitals};
use crate::api;
use crate::db::schema::{note_versions, notes, users};
use crate::db::DbConn;
use crate::error::{AppError, AppResult};
use crate::vocab::{NoteKind, Profession, Spo2ScaleBasis};

/// The unchanging part of a note.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = notes)]
pub struct Note {
    pub id: String,
    pub patient_id: String,
    pub kind: NoteKind,
    pub author_id: String,
    pub organization_id: String,
    pub author_profession: Profession,
    pub created_at: NaiveDateTime,
}

/// One version of a note's content.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = note_versions)]
pub struct Version {
    pub note_id: String,
    pub version: i32,
    pub patient_id: String,
    pub occurred_at: NaiveDateTime,
    pub text: String,
    pub soap_subjective: Option<String>,
    pub soap_objective: Option<String>,
    pub soap_assessment: Option<String>,
    pub soap_plan: Option<String>,
    pub temperature: Option<f64>,
    pub systolic_bp: Option<i32>,
    pub diastolic_bp: Option<i32>,
    pub pulse: Option<i32>,
    pub respiratory_rate: Option<i32>,
    pub spo2: Option<i32>,
    pub spo2_scale: Option<i32>,
    pub on_oxygen: Option<bool>,
    pub consciousness: Option<Consciousness>,
    pub news2_total: Option<i32>,
    pub news2_band: Option<Band>,
    pub news2_partial: Option<bool>,
    pub news2_subscores: Option<String>,
    pub next_visit_on: Option<NaiveDate>,
    pub treatment_policy_changed: Option<bool>,
    pub treatment_policy_summary: Option<String>,
    pub cautions_for_team: Option<String>,
    pub author_id: String,
    pub reason: Option<String>,
    pub recorded_at: NaiveDateTime,
    /// Why SpO2 was scored on `spo2_scale` (`Spo2ScaleBasis`); NULL without SpO2 and for
    /// versions recorded before the basis was.
    pub spo2_scale_basis: Option<Spo2ScaleBasis>,
    /// The reason a note gave for overriding the patient's scale 2.
    pub spo2_scale_reason: Option<String>,
}

/// The SOAP parts of a note (subjective, objective, assessment, plan).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Soap {
    pub subjective: Option<String>,
    pub objective: Option<String>,
    pub assessment: Option<String>,
    pub plan: Option<String>,
}

impl Soap {
    pub fn is_empty(&self) -> bool {
        self == &Soap::default()
    }
}

/// The items of a physician's information-sharing note (在宅医療情報連携加算).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhysicianInfo {
    pub next_visit_on: NaiveDate,
    pub treatment_policy_changed: bool,
    /// Required when the policy changed.
    pub treatment_policy_summary: Option<String>,
    pub cautions_for_team: String,
}

/// The validated content of one version.
#[derive(Debug, Clone)]
pub struct Content {
    pub occurred_at: NaiveDateTime,
    pub text: String,
    pub soap: Option<Soap>,
    pub vitals: Option<Vitals>,
    pub physician: Option<PhysicianInfo>,
}

impl Version {
    /// A version of `note` with this content, its NEWS2 scored now and stored with it, with the
    /// SpO2 scale it was scored on and why (the content's vitals resolved by
    /// `Vitals::following_patient`).
    pub fn new(
        note: &Note,
        version: i32,
        content: Content,
        author_id: &str,
        reason: Option<String>,
        recorded_at: NaiveDateTime,
    ) -> Version {
        let score = content.vitals.as_ref().map(news2::score);
        let soap = content.soap.unwrap_or_default();
        let v = content.vitals.unwrap_or_default();
        let p = content.physician;
        Version {
            note_id: note.id.clone(),
            version,
            patient_id: note.patient_id.clone(),
            occurred_at: content.occurred_at,
            text: content.text,
            soap_subjective: soap.subjective,
            soap_objective: soap.objective,
            soap_assessment: soap.assessment,
            soap_plan: soap.plan,
            temperature: v.temperature,
            systolic_bp: v.systolic_bp,
            diastolic_bp: v.diastolic_bp,
            pulse: v.pulse,
            respiratory_rate: v.respiratory_rate,
            spo2: v.spo2,
            spo2_scale: v.effective_spo2_scale().map(i32::from),
            spo2_scale_basis: v.spo2_scale_basis(),
            spo2_scale_reason: v.spo2_scale_reason.clone(),
            on_oxygen: v.on_oxygen,
            consciousness: v.consciousness,
            news2_total: score.as_ref().map(|s| i32::from(s.total)),
            news2_band: score.as_ref().map(|s| s.band),
            news2_partial: score.as_ref().map(|s| s.partial),
            news2_subscores: score.as_ref().and_then(|s| serde_json::to_string(&s.subscores).ok()),
            next_visit_on: p.as_ref().map(|p| p.next_visit_on),
            treatment_policy_changed: p.as_ref().map(|p| p.treatment_policy_changed),
            treatment_policy_summary: p.as_ref().and_then(|p| p.treatment_policy_summary.clone()),
            cautions_for_team: p.map(|p| p.cautions_for_team),
            author_id: author_id.to_string(),
            reason,
            recorded_at,
        }
    }

    pub fn soap(&self) -> Option<Soap> {
        let soap = Soap {
            subjective: self.soap_subjective.clone(),
            objective: self.soap_objective.clone(),
            assessment: self.soap_assessment.clone(),
            plan: self.soap_plan.clone(),
        };
        (!soap.is_empty()).then_some(soap)
    }

    /// The vital signs as given; `None` when the version has none.
    pub fn vitals(&self) -> AppResult<Option<Vitals>> {
        let v = Vitals {
            temperature: self.temperature,
            systolic_bp: self.systolic_bp,
            diastolic_bp: self.diastolic_bp,
            pulse: self.pulse,
            respiratory_rate: self.respiratory_rate,
            spo2: self.spo2,
            spo2_scale: self.spo2_scale.and_then(|s| u8::try_from(s).ok()),
            spo2_scale_reason: self.spo2_scale_reason.clone(),
            on_oxygen: self.on_oxygen,
            consciousness: self.consciousness,
        };
        Ok((!v.is_empty()).then_some(v))
    }

    /// The NEWS2 score stored with the version (not recomputed); `None` without vital signs.
    pub fn news2(&self) -> AppResult<Option<News2>> {
        let (Some(total), Some(band), Some(partial), Some(subscores)) =
            (self.news2_total, self.news2_band, self.news2_partial, &self.news2_subscores)
        else {
            return Ok(None);
        };
        let corrupt = |what: &str| {
            AppError::internal(format!("note {} version {}: stored NEWS2 {what}", self.note_id, self.version))
        };
        let subscores: Subscores = serde_json::from_str(subscores).map_err(|_| corrupt("subscores"))?;
        let total = u8::try_from(total).map_err(|_| corrupt("total"))?;
        let missing: Vec<Parameter> = Parameter::ALL.into_iter().filter(|&p| subscores.get(p).is_none()).collect();
        let max_single = Parameter::ALL.into_iter().filter_map(|p| subscores.get(p)).max().unwrap_or(0);
        let spo2_scale_basis = self.spo2_scale_basis;
        let spo2_scale = self.spo2.and(self.spo2_scale.and_then(|s| u8::try_from(s).ok()));
        Ok(Some(News2 { total, band, subscores, missing, partial, max_single, spo2_scale, spo2_scale_basis }))
    }
}

/// A note at its current version (or at any one version), with its author's name.
#[derive(Debug, Clone)]
pub struct Listed {
    pub note: Note,
    pub version: Version,
    pub author_name: String,
}

/// A note as responses show it: its current version, whether it was amended, and who read it.
#[derive(Debug, Serialize)]
pub struct NoteView {
    pub id: String,
    pub patient_id: String,
    pub kind: NoteKind,
    pub author_id: String,
    pub author_name: String,
    pub author_profession: Profession,
    pub organization_id: String,
    #[serde(serialize_with = "api::utc")]
    pub occurred_at: NaiveDateTime,
    pub text: String,
    pub soap: Option<Soap>,
    pub vitals: Option<Vitals>,
    /// Decision support for a clinician's review, never a diagnosis.
    pub news2: Option<News2>,
    pub next_visit_on: Option<NaiveDate>,
    pub treatment_policy_changed: Option<bool>,
    pub treatment_policy_summary: Option<String>,
    pub cautions_for_team: Option<String>,
    pub version: i32,
    pub amended: bool,
    /// Why the current version superseded the one before (null for version 1).
    pub amendment_reason: Option<String>,
    /// When the note was first recorded.
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
    /// When the current version was recorded.
    #[serde(serialize_with = "api::utc")]
    pub recorded_at: NaiveDateTime,
    /// How many people of the team have read the note, its author included.
    pub read_count: i64,
    pub read_by_me: bool,
}

impl Listed {
    pub fn view(self, read_count: i64, read_by_me: bool) -> AppResult<NoteView> {
        let Listed { note, version: v, author_name } = self;
        Ok(NoteView {
            soap: v.soap(),
            vitals: v.vitals()?,
            news2: v.news2()?,
            id: note.id,
            patient_id: note.patient_id,
            kind: note.kind,
            author_id: note.author_id,
            author_name,
            author_profession: note.author_profession,
            organization_id: note.organization_id,
            occurred_at: v.occurred_at,
            text: v.text,
            next_visit_on: v.next_visit_on,
            treatment_policy_changed: v.treatment_policy_changed,
            treatment_policy_summary: v.treatment_policy_summary,
            cautions_for_team: v.cautions_for_team,
            version: v.version,
            amended: v.version > 1,
            amendment_reason: v.reason,
            created_at: note.created_at,
            recorded_at: v.recorded_at,
            read_count,
            read_by_me,
        })
    }
}

/// One version as the history shows it.
#[derive(Debug, Serialize)]
pub struct VersionView {
    pub note_id: String,
    pub version: i32,
    pub current: bool,
    #[serde(serialize_with = "api::utc")]
    pub occurred_at: NaiveDateTime,
    pub text: String,
    pub soap: Option<Soap>,
    pub vitals: Option<Vitals>,
    pub news2: Option<News2>,
    pub next_visit_on: Option<NaiveDate>,
    pub treatment_policy_changed: Option<bool>,
    pub treatment_policy_summary: Option<String>,
    pub cautions_for_team: Option<String>,
    pub author_id: String,
    pub author_name: String,
    pub reason: Option<String>,
    #[serde(serialize_with = "api::utc")]
    pub recorded_at: NaiveDateTime,
}

impl VersionView {
    fn of(v: Version, author_name: String, current: bool) -> AppResult<VersionView> {
        Ok(VersionView {
            soap: v.soap(),
            vitals: v.vitals()?,
            news2: v.news2()?,
            note_id: v.note_id,
            version: v.version,
            current,
            occurred_at: v.occurred_at,
            text: v.text,
            next_visit_on: v.next_visit_on,
            treatment_policy_changed: v.treatment_policy_changed,
            treatment_policy_summary: v.treatment_policy_summary,
            cautions_for_team: v.cautions_for_team,
            author_id: v.author_id,
            author_name,
            reason: v.reason,
            recorded_at: v.recorded_at,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Queries.

pub(crate) use current::current_notes;

/// The position of a note in its patient's notebook, newest first: `occurred_at`, then id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub at: NaiveDateTime,
    pub id: String,
}

impl Position {
    pub fn of(v: &Version) -> Position {
        Position { at: v.occurred_at, id: v.note_id.clone() }
    }

    pub fn encode(&self) -> String {
        format!("{}|{}", api::format_utc(&self.at), self.id)
    }

    /// Reads a decoded cursor; `None` when it is not one of ours.
    pub fn decode(cursor: &str) -> Option<Position> {
        let (at, id) = cursor.split_once('|')?;
        let at = chrono::DateTime::parse_from_rfc3339(at).ok()?.naive_utc();
        (!id.is_empty()).then(|| Position { at, id: id.to_string() })
    }
}

#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub kind: Option<NoteKind>,
    pub author_id: Option<String>,
    pub profession: Option<Profession>,
    /// `occurred_at` at or after.
    pub since: Option<NaiveDateTime>,
    /// `occurred_at` before.
    pub until: Option<NaiveDateTime>,
}

fn listed(rows: Vec<(Note, Version, String)>) -> Vec<Listed> {
    rows.into_iter().map(|(note, version, author_name)| Listed { note, version, author_name }).collect()
}

/// A page of a patient's notes at their current versions, newest `occurred_at` first (then id),
/// after `after`; `limit + 1` rows so the caller can tell whether another page follows.
pub fn list(
    conn: &mut DbConn,
    patient_id: &str,
    filter: &ListFilter,
    after: Option<&Position>,
    limit: i64,
) -> AppResult<Vec<Listed>> {
    let mut q = current_notes!().filter(note_versions::patient_id.eq(patient_id.to_string())).into_boxed();
    if let Some(k) = filter.kind {
        q = q.filter(notes::kind.eq(k));
    }
    if let Some(a) = &filter.author_id {
        q = q.filter(notes::author_id.eq(a.clone()));
    }
    if let Some(p) = filter.profession {
        q = q.filter(notes::author_profession.eq(p));
    }
    if let Some(s) = filter.since {
        q = q.filter(note_versions::occurred_at.ge(s));
    }
    if let Some(u) = filter.until {
        q = q.filter(note_versions::occurred_at.lt(u));
    }
    if let Some(p) = after {
        q = q.filter(
            note_versions::occurred_at
                .lt(p.at)
                .or(note_versions::occurred_at.eq(p.at).and(note_versions::note_id.lt(p.id.clone()))),
        );
    }
    let rows = q
        .order((note_versions::occurred_at.desc(), note_versions::note_id.desc()))
        .limit(limit + 1)
        .select((Note::as_select(), Version::as_select(), users::name))
        .load(conn)?;
    Ok(listed(rows))
}

pub fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<Note>> {
    Ok(notes::table.find(id).select(Note::as_select()).first(conn).optional()?)
}

/// A note at its current version.
pub fn current(conn: &mut DbConn, note_id: &str) -> AppResult<Listed> {
    let row = current_notes!()
        .filter(note_versions::note_id.eq(note_id))
        .select((Note::as_select(), Version::as_select(), users::name))
        .first(conn)?;
    Ok(listed(vec![row]).remove(0))
}

/// The number of the current version.
pub fn current_version(conn: &mut DbConn, note_id: &str) -> AppResult<i32> {
    let v: Option<i32> = note_versions::table
        .filter(note_versions::note_id.eq(note_id))
        .select(diesel::dsl::max(note_versions::version))
        .first(conn)?;
    v.ok_or_else(|| AppError::internal(format!("note {note_id} has no version")))
}

/// Every version of a note, oldest first, each with its author's name.
pub fn history(conn: &mut DbConn, note_id: &str) -> AppResult<Vec<VersionView>> {
    let rows: Vec<(Version, String)> = note_versions::table
        .inner_join(users::table.on(users::id.eq(note_versions::author_id)))
        .filter(note_versions::note_id.eq(note_id))
        .order(note_versions::version.asc())
        .select((Version::as_select(), users::name))
        .load(conn)?;
    let last = rows.last().map(|(v, _)| v.version);
    rows.into_iter()
        .map(|(v, name)| {
            let current = Some(v.version) == last;
            VersionView::of(v, name, current)
        })
        .collect()
}

/// Records a new note with its first version; its author has read it.
pub fn insert(conn: &mut DbConn, note: &Note, first: &Version) -> AppResult<()> {
    diesel::insert_into(notes::table).values(note).execute(conn)?;
    diesel::insert_into(note_versions::table).values(first).execute(conn)?;
    reads::record_receipt(conn, note, &note.author_id, first.recorded_at)?;
    let news2 = first.news2_total.zip(first.news2_band);
    crate::changes::record(
        conn,
        crate::changes::Change::NoteAdded {
            patient_id: &note.patient_id,
            note_id: &note.id,
            created_at: note.created_at,
            kind: note.kind,
            occurred_at: first.occurred_at,
            news2,
        },
    )
}

/// Adds a version (an amendment). Two amendments racing for the same number are told apart by
/// the primary key: the second fails and changes nothing.
pub fn add_version(conn: &mut DbConn, version: &Version) -> AppResult<()> {
    diesel::insert_into(note_versions::table).values(version).execute(conn)?;
    crate::changes::record(conn, crate::changes::Change::NoteVersion { patient_id: &version.patient_id })
}

/// Views of listed notes with their read counts and whether `viewer_id` has read each.
pub fn views(conn: &mut DbConn, viewer_id: &str, rows: Vec<Listed>) -> AppResult<Vec<NoteView>> {
    let ids: Vec<String> = rows.iter().map(|r| r.note.id.clone()).collect();
    let counts: HashMap<String, i64> = reads::counts(conn, &ids)?;
    let mine: HashSet<String> = reads::read_by(conn, viewer_id, &ids)?;
    rows.into_iter()
        .map(|r| {
            let count = counts.get(&r.note.id).copied().unwrap_or(0);
            let read = mine.contains(&r.note.id);
            r.view(count, read)
        })
        .collect()
}

pub fn view(conn: &mut DbConn, viewer_id: &str, row: Listed) -> AppResult<NoteView> {
    views(conn, viewer_id, vec![row])?.pop().ok_or_else(|| AppError::internal("note view missing"))
}

/// A short excerpt of a text for lists and the timeline, cut at `max_chars` characters.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        flat
    } else {
        let mut cut: String = flat.chars().take(max_chars).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        let p = Position { at: crate::db::now(), id: "0193a3f2-7c4e-7d2a-9b1f-3c5d7e9f1a2b".into() };
        assert_eq!(Position::decode(&p.encode()), Some(p));
        assert_eq!(Position::decode("nonsense"), None);
        assert_eq!(Position::decode("2026-11-25T09:30:00.123456Z|"), None);
    }

    #[test]
    fn excerpts_cut_by_characters() {
        assert_eq!(excerpt("本日  訪問\n異常なし", 20), "本日 訪問 異常なし");
        assert_eq!(excerpt("あいうえおかきくけこ", 5), "あいうえお…");
    }

    #[test]
    fn stored_news2_reads_back_as_scored() {
        let note = Note {
            id: "n".into(),
            patient_id: "p".into(),
            kind: NoteKind::Visit,
            author_id: "a".into(),
            organization_id: "o".into(),
            author_profession: Profession::Nurse,
            created_at: crate::db::now(),
        };
        let vitals = Vitals { respiratory_rate: Some(26), pulse: Some(120), spo2: Some(93), ..Vitals::default() };
        let content = Content {
            occurred_at: crate::db::now(),
            text: "t".into(),
            soap: None,
            vitals: Some(vitals.clone()),
            physician: None,
        };
        let v = Version::new(&note, 1, content, "a", None, crate::db::now());
        assert_eq!(v.news2().unwrap(), Some(news2::score(&vitals)));
        // Sent without a scale, SpO2 is scored and shown on scale 1 for a patient without a target.
        assert_eq!(v.vitals().unwrap(), Some(Vitals { spo2_scale: Some(1), ..vitals }));
        assert_eq!(v.spo2_scale_basis, Some(Spo2ScaleBasis::Standard));
    }
}
