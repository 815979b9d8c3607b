//! The medication list (服薬状況 / 薬剤サマリー; FHIR MedicationStatement): what the patient takes,
//! as the pharmacy, the physician or the family reported it, and the pharmacist's
//! reconciliation that marks the list as checked on a date.
//!
//! Drug codes, format only (no published check-digit rule is applied, so a real code is never
//! refused by a guessed rule):
//! - YJ code (個別医薬品コード): 12 characters — 7 digits (薬効分類 4, 投与経路・成分 3), one
//!   letter A–Z (剤形), then 4 digits (規格 2, 銘柄 1, check 1), e.g. `2171022F2080`.
//! - HOT code (医薬品HOTコードマスター, MEDIS-DC): HOT7, HOT9, HOT11 or HOT13 — 7, 9, 11 or 13 digits.
//!
//! Full-width digits and letters typed by an IME are stored in their ASCII (NFKC) form.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use super::{MedicationSource, MedicationStatus, Retractable, Versioned};
use crate::api::{self, Check};
use crate::audit::Resource;
use crate::db::schema::{medication_reconciliations as mr, medication_versions as mv, medications as m, users};
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};

/// Whether `code` (NFKC) is a well-formed YJ code.
pub fn valid_yj(code: &str) -> bool {
    let c: Vec<char> = code.chars().collect();
    c.len() == 12
        && c[..7].iter().all(char::is_ascii_digit)
        && c[7].is_ascii_uppercase()
        && c[8..].iter().all(char::is_ascii_digit)
}

/// Whether `code` (NFKC) is a well-formed HOT code (HOT7, HOT9, HOT11 or HOT13).
pub fn valid_hot(code: &str) -> bool {
    matches!(code.len(), 7 | 9 | 11 | 13) && code.bytes().all(|b| b.is_ascii_digit())
}

fn code_text(s: &str) -> String {
    s.nfkc().collect::<String>().trim().to_string()
}

/// A medication as sent: for a new entry and for each change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub drug_name: String,
    pub yj_code: Option<String>,
    pub hot_code: Option<String>,
    pub dose: Option<String>,
    pub timing: Option<String>,
    pub route: Option<String>,
    pub prescriber: Option<String>,
    pub pharmacy: Option<String>,
    pub started_on: Option<NaiveDate>,
    pub stopped_on: Option<NaiveDate>,
    #[serde(default)]
    pub status: Option<MedicationStatus>,
    pub source: MedicationSource,
    pub note: Option<String>,
    /// Why it changed (optional on a new entry).
    pub reason: Option<String>,
}

impl Entry {
    pub fn check(&self, check: &mut Check) {
        check.required_line("drug_name", &self.drug_name, 200);
        if let Some(c) = &self.yj_code {
            if !valid_yj(&code_text(c)) {
                check.push(
                    "yj_code",
                    "invalid_yj_code",
                    "yj_code(YJコード)は12文字で、数字7桁・英大文字1文字・数字4桁です(例: 2171022F2080)。",
                    "yj_code (the YJ code) is 12 characters: 7 digits, one capital letter, 4 digits (e.g. 2171022F2080).",
                );
            }
        }
        if let Some(c) = &self.hot_code {
            if !valid_hot(&code_text(c)) {
                check.push(
                    "hot_code",
                    "invalid_hot_code",
                    "hot_code(HOTコード)は7・9・11・13桁の数字です。",
                    "hot_code (the HOT code) is 7, 9, 11 or 13 digits.",
                );
            }
        }
        check.line("dose", self.dose.as_deref(), 100);
        check.line("timing", self.timing.as_deref(), 100);
        check.line("route", self.route.as_deref(), 50);
        check.line("prescriber", self.prescriber.as_deref(), 100);
        check.line("pharmacy", self.pharmacy.as_deref(), 100);
        check.optional_text("note", self.note.as_deref(), 1000);
        check.optional_text("reason", self.reason.as_deref(), super::REASON_MAX_CHARS);
        if let (Some(start), Some(stop)) = (self.started_on, self.stopped_on) {
            if stop < start {
                check.push(
                    "stopped_on",
                    "before_start",
                    "stopped_on(終了日)は started_on(開始日)以降の日付にしてください。",
                    "stopped_on must not be before started_on.",
                );
            }
        }
        if self.status == Some(MedicationStatus::EnteredInError) {
            check.push(
                "status",
                "entered_in_error",
                "入力誤りにするには POST /medications/{id}/entered-in-error で理由を記録してください。",
                "To mark a medication entered in error, POST /medications/{id}/entered-in-error with a reason.",
            );
        }
    }
}

/// The head of one medication: which version is current.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = m)]
pub struct Medication {
    pub id: String,
    pub patient_id: String,
    pub version: i32,
    pub created_at: NaiveDateTime,
}

/// One version of a medication, as stored.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = mv)]
pub struct Version {
    pub id: String,
    pub medication_id: String,
    pub version: i32,
    pub patient_id: String,
    pub drug_name: String,
    pub yj_code: Option<String>,
    pub hot_code: Option<String>,
    pub dose: Option<String>,
    pub timing: Option<String>,
    pub route: Option<String>,
    pub prescriber: Option<String>,
    pub pharmacy: Option<String>,
    pub started_on: Option<NaiveDate>,
    pub stopped_on: Option<NaiveDate>,
    pub status: MedicationStatus,
    pub source: MedicationSource,
    pub note: Option<String>,
    pub reason: Option<String>,
    pub recorded_by: String,
    pub recorded_at: NaiveDateTime,
}

/// A medication as answered: its current (or a past) version.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub id: String,
    pub patient_id: String,
    pub version: i32,
    pub drug_name: String,
    pub yj_code: Option<String>,
    pub hot_code: Option<String>,
    pub dose: Option<String>,
    pub timing: Option<String>,
    pub route: Option<String>,
    pub prescriber: Option<String>,
    pub pharmacy: Option<String>,
    pub started_on: Option<NaiveDate>,
    pub stopped_on: Option<NaiveDate>,
    pub status: MedicationStatus,
    pub source: MedicationSource,
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
            id: v.medication_id,
            patient_id: v.patient_id,
            version: v.version,
            drug_name: v.drug_name,
            yj_code: v.yj_code,
            hot_code: v.hot_code,
            dose: v.dose,
            timing: v.timing,
            route: v.route,
            prescriber: v.prescriber,
            pharmacy: v.pharmacy,
            started_on: v.started_on,
            stopped_on: v.stopped_on,
            status: v.status,
            source: v.source,
            note: v.note,
            reason: v.reason,
            recorded_by: v.recorded_by,
            recorded_by_name,
            recorded_at: v.recorded_at,
        }
    }
}

fn version_of(medication: &Medication, number: i32, e: Entry, status: MedicationStatus, by: &str) -> Version {
    Version {
        id: new_id(),
        medication_id: medication.id.clone(),
        version: number,
        patient_id: medication.patient_id.clone(),
        drug_name: e.drug_name,
        yj_code: e.yj_code.as_deref().map(code_text),
        hot_code: e.hot_code.as_deref().map(code_text),
        dose: e.dose,
        timing: e.timing,
        route: e.route,
        prescriber: e.prescriber,
        pharmacy: e.pharmacy,
        started_on: e.started_on,
        stopped_on: e.stopped_on,
        status,
        source: e.source,
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
    crate::changes::record(conn, crate::changes::Change::Medication { patient_id })
}

impl Versioned for Medication {
    type Entry = Entry;
    type View = View;
    const RESOURCE: Resource = Resource::Medication;
    const NAME: &'static str = "medication";
    const PATH: &'static str = "medications";

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

    fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<Medication>> {
        Ok(m::table.find(id).select(Medication::as_select()).first(conn).optional()?)
    }

    /// Adds a medication to a patient's list (its first version).
    fn add(conn: &mut DbConn, patient_id: &str, entry: Entry, by: &str) -> AppResult<View> {
        let head = Medication { id: new_id(), patient_id: patient_id.to_string(), version: 1, created_at: now() };
        let status = entry.status.unwrap_or(MedicationStatus::Active);
        let v = version_of(&head, 1, entry, status, by);
        diesel::insert_into(m::table).values(&head).execute(conn)?;
        diesel::insert_into(mv::table).values(&v).execute(conn)?;
        changed(conn, patient_id)?;
        view_of(conn, v)
    }

    /// Records a change as a new version of version `expected`.
    fn change(&self, conn: &mut DbConn, expected: i32, entry: Entry, by: &str) -> AppResult<View> {
        let current = current(conn, self)?;
        if current.status == MedicationStatus::EnteredInError {
            return Err(entered_in_error());
        }
        let number = advance(conn, self, expected)?;
        let status = entry.status.unwrap_or(MedicationStatus::Active);
        let v = version_of(self, number, entry, status, by);
        diesel::insert_into(mv::table).values(&v).execute(conn)?;
        changed(conn, &self.patient_id)?;
        view_of(conn, v)
    }

    /// The current version of a medication.
    fn view(&self, conn: &mut DbConn) -> AppResult<View> {
        let v = current(conn, self)?;
        view_of(conn, v)
    }

    /// Every version of a medication, oldest first.
    fn history(conn: &mut DbConn, medication_id: &str) -> AppResult<Vec<View>> {
        let rows: Vec<(Version, String)> = mv::table
            .inner_join(users::table.on(users::id.eq(mv::recorded_by)))
            .filter(mv::medication_id.eq(medication_id))
            .order(mv::version.asc())
            .select((Version::as_select(), users::name))
            .load(conn)?;
        Ok(rows.into_iter().map(|(v, n)| View::of(v, n)).collect())
    }
}

impl Retractable for Medication {
    /// Marks a medication entered in error: a last version, the same content, with the reason.
    fn mark_entered_in_error(
        &self,
        conn: &mut DbConn,
        expected: Option<i32>,
        reason: String,
        by: &str,
    ) -> AppResult<View> {
        let mut v = current(conn, self)?;
        if v.status == MedicationStatus::EnteredInError {
            return Err(entered_in_error());
        }
        v.version = advance(conn, self, expected.unwrap_or(self.version))?;
        v.id = new_id();
        v.status = MedicationStatus::EnteredInError;
        v.reason = Some(reason);
        v.recorded_by = by.to_string();
        v.recorded_at = now();
        diesel::insert_into(mv::table).values(&v).execute(conn)?;
        changed(conn, &self.patient_id)?;
        view_of(conn, v)
    }
}

/// Moves the head from `expected` to the next version in one statement, so two concurrent
/// changes of the same version cannot both succeed: 412 for the one that lost.
fn advance(conn: &mut DbConn, medication: &Medication, expected: i32) -> AppResult<i32> {
    let moved = diesel::update(m::table.filter(m::id.eq(&medication.id)).filter(m::version.eq(expected)))
        .set(m::version.eq(expected + 1))
        .execute(conn)?;
    super::moved_to(moved, expected)
}

fn entered_in_error() -> AppError {
    AppError::conflict(
        "この薬剤は入力誤りとして記録されています。正しい内容は新しい薬剤として登録してください。",
        "This medication was marked entered in error: record the right one as a new medication.",
    )
}

fn current(conn: &mut DbConn, medication: &Medication) -> AppResult<Version> {
    Ok(mv::table
        .filter(mv::medication_id.eq(&medication.id))
        .filter(mv::version.eq(medication.version))
        .select(Version::as_select())
        .first(conn)?)
}

/// The patient's list: the current version of each medication, those entered in error left
/// out unless asked for, oldest entry first.
pub fn list(conn: &mut DbConn, patient_id: &str, with_entered_in_error: bool) -> AppResult<Vec<View>> {
    let mut q = mv::table
        .inner_join(m::table.on(m::id.eq(mv::medication_id).and(m::version.eq(mv::version))))
        .inner_join(users::table.on(users::id.eq(mv::recorded_by)))
        .filter(m::patient_id.eq(patient_id))
        .into_boxed();
    if !with_entered_in_error {
        q = q.filter(mv::status.ne(MedicationStatus::EnteredInError));
    }
    let rows: Vec<(Version, String)> =
        q.order((m::created_at.asc(), m::id.asc())).select((Version::as_select(), users::name)).load(conn)?;
    Ok(rows.into_iter().map(|(v, n)| View::of(v, n)).collect())
}

/// The drugs the patient takes now (active, on hold or about to start), for the emergency card.
pub fn current_list(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<View>> {
    use MedicationStatus::*;
    Ok(list(conn, patient_id, false)?.into_iter().filter(|v| matches!(v.status, Active | OnHold | Intended)).collect())
}

/// A pharmacist's check of the whole list.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = mr)]
pub struct Reconciliation {
    pub id: String,
    pub patient_id: String,
    pub checked_on: NaiveDate,
    pub checked_by: String,
    pub medication_count: i32,
    pub comment: Option<String>,
    pub recorded_at: NaiveDateTime,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReconciliationView {
    pub id: String,
    pub patient_id: String,
    pub checked_on: NaiveDate,
    pub checked_by: String,
    pub checked_by_name: String,
    /// How many medications were on the list (entered-in-error ones excluded) when it was checked.
    pub medication_count: i32,
    pub comment: Option<String>,
    #[serde(serialize_with = "api::utc")]
    pub recorded_at: NaiveDateTime,
}

impl ReconciliationView {
    fn of(r: Reconciliation, checked_by_name: String) -> ReconciliationView {
        ReconciliationView {
            id: r.id,
            patient_id: r.patient_id,
            checked_on: r.checked_on,
            checked_by: r.checked_by,
            checked_by_name,
            medication_count: r.medication_count,
            comment: r.comment,
            recorded_at: r.recorded_at,
        }
    }
}

/// Records that the pharmacist `by` checked the patient's list on `checked_on`.
pub fn reconcile(
    conn: &mut DbConn,
    patient_id: &str,
    checked_on: NaiveDate,
    comment: Option<String>,
    by: &str,
) -> AppResult<ReconciliationView> {
    let count = list(conn, patient_id, false)?.len();
    let r = Reconciliation {
        id: new_id(),
        patient_id: patient_id.to_string(),
        checked_on,
        checked_by: by.to_string(),
        medication_count: i32::try_from(count).unwrap_or(i32::MAX),
        comment,
        recorded_at: now(),
    };
    diesel::insert_into(mr::table).values(&r).execute(conn)?;
    changed(conn, patient_id)?;
    let name: String = users::table.find(by).select(users::name).first(conn)?;
    Ok(ReconciliationView::of(r, name))
}

/// The latest reconciliation of the patient's list (by date checked, then when recorded).
pub fn last_reconciliation(conn: &mut DbConn, patient_id: &str) -> AppResult<Option<ReconciliationView>> {
    let row: Option<(Reconciliation, String)> = mr::table
        .inner_join(users::table.on(users::id.eq(mr::checked_by)))
        .filter(mr::patient_id.eq(patient_id))
        .order((mr::checked_on.desc(), mr::recorded_at.desc()))
        .select((Reconciliation::as_select(), users::name))
        .first(conn)
        .optional()?;
    Ok(row.map(|(r, n)| ReconciliationView::of(r, n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drug_codes_are_checked_by_format() {
        assert!(valid_yj("2171022F2080"));
        assert!(valid_yj(&code_text("２１７１０２２Ｆ２０８０")));
        for bad in ["2171022F208", "2171022f2080", "21710220F208", "217102-F2080"] {
            assert!(!valid_yj(bad), "{bad}");
        }
        for ok in ["1234567", "123456789", "12345678901", "1234567890123"] {
            assert!(valid_hot(ok), "{ok}");
        }
        for bad in ["123456", "12345678", "123456789012", "12345a7"] {
            assert!(!valid_hot(bad), "{bad}");
        }
    }
}
