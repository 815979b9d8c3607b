//! Allergies and contraindications (アレルギー・薬剤禁忌; FHIR AllergyIntolerance): the substance,
//! its category, the reaction and its severity, and how sure the team is (verification status,
//! FHIR R4 vocabulary). The shape follows the allergy part of the national 6情報 (電子カルテ情報共有
//! サービス): substance, category, reaction, severity and certainty.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::{AllergyCategory, AllergyClinicalStatus, AllergySeverity, AllergyVerification, Retractable, Versioned};
use crate::api::{self, Check};
use crate::audit::Resource;
use crate::db::schema::{allergies as a, allergy_versions as av, users};
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};

/// An allergy as sent: for a new entry and for each change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub substance: String,
    pub category: AllergyCategory,
    pub reaction: Option<String>,
    pub severity: Option<AllergySeverity>,
    pub clinical_status: Option<AllergyClinicalStatus>,
    pub verification_status: Option<AllergyVerification>,
    pub note: Option<String>,
    /// Why it changed (optional on a new entry).
    pub reason: Option<String>,
}

impl Entry {
    pub fn check(&self, check: &mut Check) {
        check.required_line("substance", &self.substance, 200);
        check.optional_text("reaction", self.reaction.as_deref(), 500);
        check.optional_text("note", self.note.as_deref(), 1000);
        check.optional_text("reason", self.reason.as_deref(), super::REASON_MAX_CHARS);
        if self.verification_status == Some(AllergyVerification::EnteredInError) {
            check.push(
                "verification_status",
                "entered_in_error",
                "入力誤りにするには POST /allergies/{id}/entered-in-error で理由を記録してください。",
                "To mark an allergy entered in error, POST /allergies/{id}/entered-in-error with a reason.",
            );
        }
    }
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = a)]
pub struct Allergy {
    pub id: String,
    pub patient_id: String,
    pub version: i32,
    pub created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = av)]
pub struct Version {
    pub id: String,
    pub allergy_id: String,
    pub version: i32,
    pub patient_id: String,
    pub substance: String,
    pub category: AllergyCategory,
    pub reaction: Option<String>,
    pub severity: Option<AllergySeverity>,
    pub clinical_status: AllergyClinicalStatus,
    pub verification_status: AllergyVerification,
    pub note: Option<String>,
    pub reason: Option<String>,
    pub recorded_by: String,
    pub recorded_at: NaiveDateTime,
}

#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub id: String,
    pub patient_id: String,
    pub version: i32,
    pub substance: String,
    pub category: AllergyCategory,
    pub reaction: Option<String>,
    pub severity: Option<AllergySeverity>,
    pub clinical_status: AllergyClinicalStatus,
    pub verification_status: AllergyVerification,
    pub note: Option<String>,
    pub reason: Option<String>,
    pub recorded_by: String,
    pub recorded_by_name: String,
    #[serde(serialize_with = "api::utc")]
    pub recorded_at: NaiveDateTime,
}

impl View {
    fn of(v: Version, recorded_by_name: String) -> View {
        View {
            id: v.allergy_id,
            patient_id: v.patient_id,
            version: v.version,
            substance: v.substance,
            category: v.category,
            reaction: v.reaction,
            severity: v.severity,
            clinical_status: v.clinical_status,
            verification_status: v.verification_status,
            note: v.note,
            reason: v.reason,
            recorded_by: v.recorded_by,
            recorded_by_name,
            recorded_at: v.recorded_at,
        }
    }
}

fn version_of(allergy: &Allergy, number: i32, e: Entry, by: &str) -> Version {
    Version {
        id: new_id(),
        allergy_id: allergy.id.clone(),
        version: number,
        patient_id: allergy.patient_id.clone(),
        substance: e.substance,
        category: e.category,
        reaction: e.reaction,
        severity: e.severity,
        clinical_status: e.clinical_status.unwrap_or(AllergyClinicalStatus::Active),
        verification_status: e.verification_status.unwrap_or(AllergyVerification::Unconfirmed),
        note: e.note,
        reason: e.reason,
        recorded_by: by.to_string(),
        recorded_at: now(),
    }
}

fn view_of(conn: &mut DbConn, v: Version) -> AppResult<View> {
    let name: String = users::table.find(&v.recorded_by).select(users::name).first(conn)?;
    Ok(View::of(v, name))
}

fn changed(conn: &mut DbConn, patient_id: &str) -> AppResult<()> {
    crate::changes::record(conn, crate::changes::Change::Allergy { patient_id })
}

impl Versioned for Allergy {
    type Entry = Entry;
    type View = View;
    const RESOURCE: Resource = Resource::Allergy;
    const NAME: &'static str = "allergy";
    const PATH: &'static str = "allergies";

    fn view_id(view: &View) -> &str {
        &view.id
    }

    fn view_version(view: &View) -> i32 {
        view.version
    }

    fn patient_id(&self) -> &str {
        &self.patient_id
    }

    fn check(entry: &Entry, check: &mut Check) {
        entry.check(check)
    }

    fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<Allergy>> {
        Ok(a::table.find(id).select(Allergy::as_select()).first(conn).optional()?)
    }

    fn add(conn: &mut DbConn, patient_id: &str, entry: Entry, by: &str) -> AppResult<View> {
        let head = Allergy { id: new_id(), patient_id: patient_id.to_string(), version: 1, created_at: now() };
        let v = version_of(&head, 1, entry, by);
        diesel::insert_into(a::table).values(&head).execute(conn)?;
        diesel::insert_into(av::table).values(&v).execute(conn)?;
        changed(conn, patient_id)?;
        view_of(conn, v)
    }

    fn change(&self, conn: &mut DbConn, expected: i32, entry: Entry, by: &str) -> AppResult<View> {
        if current(conn, self)?.verification_status == AllergyVerification::EnteredInError {
            return Err(entered_in_error());
        }
        let number = advance(conn, self, expected)?;
        let v = version_of(self, number, entry, by);
        diesel::insert_into(av::table).values(&v).execute(conn)?;
        changed(conn, &self.patient_id)?;
        view_of(conn, v)
    }

    fn view(&self, conn: &mut DbConn) -> AppResult<View> {
        let v = current(conn, self)?;
        view_of(conn, v)
    }

    /// Every version of an allergy, oldest first.
    fn history(conn: &mut DbConn, allergy_id: &str) -> AppResult<Vec<View>> {
        let rows: Vec<(Version, String)> = av::table
            .inner_join(users::table.on(users::id.eq(av::recorded_by)))
            .filter(av::allergy_id.eq(allergy_id))
            .order(av::version.asc())
            .select((Version::as_select(), users::name))
            .load(conn)?;
        Ok(rows.into_iter().map(|(v, n)| View::of(v, n)).collect())
    }
}

impl Retractable for Allergy {
    fn mark_entered_in_error(
        &self,
        conn: &mut DbConn,
        expected: Option<i32>,
        reason: String,
        by: &str,
    ) -> AppResult<View> {
        let mut v = current(conn, self)?;
        if v.verification_status == AllergyVerification::EnteredInError {
            return Err(entered_in_error());
        }
        v.version = advance(conn, self, expected.unwrap_or(self.version))?;
        v.id = new_id();
        v.verification_status = AllergyVerification::EnteredInError;
        v.reason = Some(reason);
        v.recorded_by = by.to_string();
        v.recorded_at = now();
        diesel::insert_into(av::table).values(&v).execute(conn)?;
        changed(conn, &self.patient_id)?;
        view_of(conn, v)
    }
}

/// Moves the head from `expected` to the next version in one statement (412 when another
/// change got there first).
fn advance(conn: &mut DbConn, allergy: &Allergy, expected: i32) -> AppResult<i32> {
    let moved = diesel::update(a::table.filter(a::id.eq(&allergy.id)).filter(a::version.eq(expected)))
        .set(a::version.eq(expected + 1))
        .execute(conn)?;
    super::moved_to(moved, expected)
}

fn entered_in_error() -> AppError {
    AppError::conflict(
        "このアレルギーは入力誤りとして記録されています。正しい内容は新しく登録してください。",
        "This allergy was marked entered in error: record the right one as a new allergy.",
    )
}

fn current(conn: &mut DbConn, allergy: &Allergy) -> AppResult<Version> {
    Ok(av::table
        .filter(av::allergy_id.eq(&allergy.id))
        .filter(av::version.eq(allergy.version))
        .select(Version::as_select())
        .first(conn)?)
}

/// The patient's allergies: the current version of each, those entered in error left out
/// unless asked for, oldest entry first.
pub fn list(conn: &mut DbConn, patient_id: &str, with_entered_in_error: bool) -> AppResult<Vec<View>> {
    let mut q = av::table
        .inner_join(a::table.on(a::id.eq(av::allergy_id).and(a::version.eq(av::version))))
        .inner_join(users::table.on(users::id.eq(av::recorded_by)))
        .filter(a::patient_id.eq(patient_id))
        .into_boxed();
    if !with_entered_in_error {
        q = q.filter(av::verification_status.ne(AllergyVerification::EnteredInError));
    }
    let rows: Vec<(Version, String)> =
        q.order((a::created_at.asc(), a::id.asc())).select((Version::as_select(), users::name)).load(conn)?;
    Ok(rows.into_iter().map(|(v, n)| View::of(v, n)).collect())
}

/// What an emergency crew must know: allergies not refuted and not resolved.
pub fn current_list(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<View>> {
    Ok(list(conn, patient_id, false)?
        .into_iter()
        .filter(|v| {
            v.verification_status != AllergyVerification::Refuted && v.clinical_status == AllergyClinicalStatus::Active
        })
        .collect())
}
