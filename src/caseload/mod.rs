//! A ward's caseload (担当区の在宅療養患者一覧) for its coordinating physicians, and per-ward
//! counts for city staff.
//!
//! Every metric is one set-based query over the ward's patients (a grouped subquery keyed by
//! patient id); the rows are joined here by patient id. No query runs per patient.

pub mod handlers;

use std::collections::{HashMap, HashSet};

use chrono::{Duration, NaiveDate, NaiveDateTime};
use diesel::dsl::{count_star, max};
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{
    care_team_members, consents, discharge_cases, discharge_tasks, flags, note_versions, notes, patients,
};
use crate::db::DbConn;
use crate::discharge::TaskStatus;
use crate::error::AppResult;
use crate::patients::{age_on, today_jst};
use crate::vocab::{CareLevel, PatientStatus};

/// The statuses listed when the request names none: patients still in the ward's care.
pub const DEFAULT_STATUSES: [PatientStatus; 2] = [PatientStatus::Home, PatientStatus::Hospitalized];

/// Days without a visit note after which the summary counts a patient as not visited.
pub const SUMMARY_NO_VISIT_DAYS: i64 = 14;

/// The patients of a ward in the given statuses, as a subquery of their ids.
macro_rules! ward_patient_ids {
    ($ward:expr, $statuses:expr) => {
        patients::table
            .filter(patients::ward_code.eq($ward))
            .filter(patients::status.eq_any($statuses))
            .select(patients::id)
    };
}

#[derive(Debug, Clone, Serialize)]
pub struct LatestNews2 {
    pub total: i32,
    pub band: String,
    #[serde(serialize_with = "crate::api::utc")]
    pub at: NaiveDateTime,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpenCase {
    pub id: String,
    pub planned_discharge_on: Option<NaiveDate>,
    pub overdue_tasks: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsentSummary {
    /// `active`, `revoked` or `none`.
    pub state: &'static str,
    pub missing: bool,
}

/// One patient of the caseload.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: String,
    pub family_name: String,
    pub given_name: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub age: i32,
    pub care_level: String,
    pub status: String,
    pub team_size: i64,
    pub has_primary_physician: bool,
    pub active_flags: i64,
    pub highest_flag_severity: Option<String>,
    pub latest_news2: Option<LatestNews2>,
    pub open_discharge_case: Option<OpenCase>,
    pub days_since_last_visit: Option<i64>,
    pub consent: ConsentSummary,
}

impl Row {
    fn name_kana(&self) -> String {
        format!("{} {}", self.family_name_kana, self.given_name_kana)
    }

    fn overdue_tasks(&self) -> i64 {
        self.open_discharge_case.as_ref().map_or(0, |c| c.overdue_tasks)
    }

    /// No visit note in the last `days` days (JST calendar days), or never.
    pub fn not_visited_in(&self, days: i64) -> bool {
        self.days_since_last_visit.is_none_or(|d| d >= days)
    }
}

/// Counts over a whole ward (patients at home or in hospital).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub patients: i64,
    pub with_active_flag: i64,
    pub no_home_physician: i64,
    pub no_visit_14_days: i64,
    pub open_discharge_cases: i64,
    pub with_overdue_tasks: i64,
    pub consent_missing: i64,
}

impl Summary {
    pub fn of(rows: &[Row]) -> Summary {
        let count = |f: &dyn Fn(&Row) -> bool| rows.iter().filter(|r| f(r)).count() as i64;
        Summary {
            patients: rows.len() as i64,
            with_active_flag: count(&|r| r.active_flags > 0),
            no_home_physician: count(&|r| !r.has_primary_physician),
            no_visit_14_days: count(&|r| r.not_visited_in(SUMMARY_NO_VISIT_DAYS)),
            open_discharge_cases: count(&|r| r.open_discharge_case.is_some()),
            with_overdue_tasks: count(&|r| r.overdue_tasks() > 0),
            consent_missing: count(&|r| r.consent.missing),
        }
    }
}

/// Flags still calling for attention: raised and not yet resolved.
const UNRESOLVED_FLAG: [&str; 2] = ["active", "acknowledged"];

/// The caseload rows of a ward's patients in these statuses, in no particular order.
pub fn rows(conn: &mut DbConn, ward: &str, statuses: &[PatientStatus], now: NaiveDateTime) -> AppResult<Vec<Row>> {
    let statuses: Vec<&'static str> = statuses.iter().map(|s| s.as_str()).collect();
    let today = today_jst();

    type PatientCols = (String, String, String, String, String, NaiveDate, String, String);
    let people: Vec<PatientCols> = patients::table
        .filter(patients::ward_code.eq(ward))
        .filter(patients::status.eq_any(&statuses))
        .select((
            patients::id,
            patients::family_name,
            patients::given_name,
            patients::family_name_kana,
            patients::given_name_kana,
            patients::birth_date,
            patients::care_level,
            patients::status,
        ))
        .load(conn)?;
    if people.is_empty() {
        return Ok(Vec::new());
    }

    let team: HashMap<String, i64> = care_team_members::table
        .filter(care_team_members::patient_id.eq_any(ward_patient_ids!(ward, &statuses)))
        .filter(care_team_members::ended_at.is_null())
        .group_by(care_team_members::patient_id)
        .select((care_team_members::patient_id, count_star()))
        .load::<(String, i64)>(conn)?
        .into_iter()
        .collect();
    let with_physician: HashSet<String> = care_team_members::table
        .filter(care_team_members::patient_id.eq_any(ward_patient_ids!(ward, &statuses)))
        .filter(care_team_members::ended_at.is_null())
        .filter(care_team_members::role.eq("primary_physician"))
        .select(care_team_members::patient_id)
        .distinct()
        .load::<String>(conn)?
        .into_iter()
        .collect();

    let mut open_flags: HashMap<String, (i64, Option<String>)> = HashMap::new();
    let flag_counts: Vec<(String, String, i64)> = flags::table
        .filter(flags::patient_id.eq_any(ward_patient_ids!(ward, &statuses)))
        .filter(flags::status.eq_any(UNRESOLVED_FLAG))
        .group_by((flags::patient_id, flags::severity))
        .select((flags::patient_id, flags::severity, count_star()))
        .load(conn)?;
    for (patient_id, severity, n) in flag_counts {
        let entry = open_flags.entry(patient_id).or_default();
        entry.0 += n;
        if entry.1.as_deref() != Some("emergency") {
            entry.1 = Some(severity);
        }
    }

    let last_visit: HashMap<String, NaiveDateTime> = notes::table
        .inner_join(note_versions::table)
        .filter(notes::patient_id.eq_any(ward_patient_ids!(ward, &statuses)))
        .filter(notes::kind.eq("visit"))
        .group_by(notes::patient_id)
        .select((notes::patient_id, max(note_versions::occurred_at)))
        .load::<(String, Option<NaiveDateTime>)>(conn)?
        .into_iter()
        .filter_map(|(p, at)| at.map(|at| (p, at)))
        .collect();

    let news2 = latest_news2(conn, ward, &statuses)?;

    let cases: Vec<(String, String, Option<NaiveDate>)> = discharge_cases::table
        .filter(discharge_cases::patient_id.eq_any(ward_patient_ids!(ward, &statuses)))
        .filter(discharge_cases::status.eq("open"))
        .order((discharge_cases::patient_id, discharge_cases::created_at.desc()))
        .select((discharge_cases::id, discharge_cases::patient_id, discharge_cases::planned_discharge_on))
        .load(conn)?;
    let overdue: HashMap<String, i64> = discharge_tasks::table
        .filter(discharge_tasks::patient_id.eq_any(ward_patient_ids!(ward, &statuses)))
        .filter(discharge_tasks::status.eq_any(TaskStatus::open_codes()))
        .filter(discharge_tasks::due_at.lt(now))
        .group_by(discharge_tasks::case_id)
        .select((discharge_tasks::case_id, count_star()))
        .load::<(String, i64)>(conn)?
        .into_iter()
        .collect();
    let mut open_case: HashMap<String, OpenCase> = HashMap::new();
    for (id, patient_id, planned) in cases {
        // The most recently opened case when there is more than one.
        open_case.entry(patient_id).or_insert_with(|| OpenCase {
            overdue_tasks: overdue.get(&id).copied().unwrap_or(0),
            id,
            planned_discharge_on: planned,
        });
    }

    let consent_rows: Vec<(String, Option<NaiveDateTime>)> = consents::table
        .filter(consents::patient_id.eq_any(ward_patient_ids!(ward, &statuses)))
        .order((consents::patient_id, consents::created_at.desc(), consents::id.desc()))
        .select((consents::patient_id, consents::revoked_at))
        .load(conn)?;
    let mut consent: HashMap<String, ConsentSummary> = HashMap::new();
    for (patient_id, revoked_at) in consent_rows {
        consent.entry(patient_id).or_insert(if revoked_at.is_some() {
            ConsentSummary { state: "revoked", missing: true }
        } else {
            ConsentSummary { state: "active", missing: false }
        });
    }

    let mut news2 = news2;
    Ok(people
        .into_iter()
        .map(|(id, family_name, given_name, family_name_kana, given_name_kana, birth_date, care_level, status)| {
            let (active_flags, highest_flag_severity) = open_flags.remove(&id).unwrap_or_default();
            Row {
                team_size: team.get(&id).copied().unwrap_or(0),
                has_primary_physician: with_physician.contains(&id),
                active_flags,
                highest_flag_severity,
                latest_news2: news2.remove(&id),
                open_discharge_case: open_case.remove(&id),
                days_since_last_visit: last_visit.get(&id).map(|at| (today - jst_day(*at)).num_days().max(0)),
                consent: consent.remove(&id).unwrap_or(ConsentSummary { state: "none", missing: true }),
                age: age_on(birth_date, today),
                id,
                family_name,
                given_name,
                family_name_kana,
                given_name_kana,
                care_level,
                status,
            }
        })
        .collect())
}

fn jst_day(at: NaiveDateTime) -> NaiveDate {
    (at + Duration::hours(9)).date()
}

/// The latest NEWS2 of each patient, from the current version of each note that has one.
fn latest_news2(conn: &mut DbConn, ward: &str, statuses: &[&'static str]) -> AppResult<HashMap<String, LatestNews2>> {
    type VersionCols = (String, i32, String, NaiveDateTime, Option<i32>, Option<String>);
    // The current version of each note of these patients, then the scored versions among them.
    let current: HashMap<String, i32> = note_versions::table
        .filter(note_versions::patient_id.eq_any(ward_patient_ids!(ward, statuses)))
        .group_by(note_versions::note_id)
        .select((note_versions::note_id, max(note_versions::version)))
        .load::<(String, Option<i32>)>(conn)?
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect();
    let scored: Vec<VersionCols> = note_versions::table
        .filter(note_versions::patient_id.eq_any(ward_patient_ids!(ward, statuses)))
        .filter(note_versions::news2_total.is_not_null())
        .select((
            note_versions::note_id,
            note_versions::version,
            note_versions::patient_id,
            note_versions::occurred_at,
            note_versions::news2_total,
            note_versions::news2_band,
        ))
        .load(conn)?;
    let current: Vec<VersionCols> = scored.into_iter().filter(|v| current.get(&v.0) == Some(&v.1)).collect();
    let mut out: HashMap<String, LatestNews2> = HashMap::new();
    for (_, _, patient_id, at, total, band) in current {
        let (Some(total), Some(band)) = (total, band) else { continue };
        if out.get(&patient_id).is_none_or(|l| l.at < at) {
            out.insert(patient_id, LatestNews2 { total, band, at });
        }
    }
    Ok(out)
}

/// What a caseload page is narrowed to.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub has_active_flag: bool,
    pub no_home_physician: bool,
    pub no_visit_days: Option<i64>,
    pub open_discharge_case: bool,
    pub overdue_tasks: bool,
    pub care_level: Option<CareLevel>,
    pub status: Option<PatientStatus>,
}

impl Filter {
    pub fn matches(&self, r: &Row) -> bool {
        (!self.has_active_flag || r.active_flags > 0)
            && (!self.no_home_physician || !r.has_primary_physician)
            && self.no_visit_days.is_none_or(|d| r.not_visited_in(d))
            && (!self.open_discharge_case || r.open_discharge_case.is_some())
            && (!self.overdue_tasks || r.overdue_tasks() > 0)
            && self.care_level.is_none_or(|c| r.care_level == c.as_str())
            && match self.status {
                Some(s) => r.status == s.as_str(),
                None => DEFAULT_STATUSES.iter().any(|s| r.status == s.as_str()),
            }
    }
}

/// The columns a caseload sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    NameKana,
    Age,
    CareLevel,
    ActiveFlags,
    LatestNews2,
    DaysSinceLastVisit,
    PlannedDischargeOn,
}

impl SortKey {
    pub const NAMES: [&'static str; 7] = [
        "name_kana",
        "age",
        "care_level",
        "active_flags",
        "latest_news2",
        "days_since_last_visit",
        "planned_discharge_on",
    ];

    pub fn parse(s: &str) -> Option<SortKey> {
        use SortKey::*;
        Some(match s {
            "name_kana" => NameKana,
            "age" => Age,
            "care_level" => CareLevel,
            "active_flags" => ActiveFlags,
            "latest_news2" => LatestNews2,
            "days_since_last_visit" => DaysSinceLastVisit,
            "planned_discharge_on" => PlannedDischargeOn,
            _ => return None,
        })
    }
}

/// A sortable value; `None` (no value) always sorts last.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Int(i64),
    Text(String),
    Date(NaiveDate),
}

fn key(r: &Row, by: SortKey) -> Option<Key> {
    match by {
        SortKey::NameKana => Some(Key::Text(r.name_kana())),
        SortKey::Age => Some(Key::Int(r.age.into())),
        SortKey::CareLevel => {
            CareLevel::ALL.iter().position(|c| c.as_str() == r.care_level).map(|i| Key::Int(i as i64))
        }
        SortKey::ActiveFlags => Some(Key::Int(r.active_flags)),
        SortKey::LatestNews2 => r.latest_news2.as_ref().map(|n| Key::Int(n.total.into())),
        SortKey::DaysSinceLastVisit => r.days_since_last_visit.map(Key::Int),
        SortKey::PlannedDischargeOn => {
            r.open_discharge_case.as_ref().and_then(|c| c.planned_discharge_on).map(Key::Date)
        }
    }
}

/// Sorts rows by a column, ascending or descending, rows without a value last; ties by kana
/// name, then id, so pages are stable.
pub fn sort(rows: &mut [Row], by: SortKey, descending: bool) {
    rows.sort_by(|a, b| {
        let (ka, kb) = (key(a, by), key(b, by));
        let primary = match (ka, kb) {
            (Some(x), Some(y)) => {
                if descending {
                    y.cmp(&x)
                } else {
                    x.cmp(&y)
                }
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        primary.then_with(|| a.name_kana().cmp(&b.name_kana())).then_with(|| a.id.cmp(&b.id))
    });
}

// ---------------------------------------------------------------------------------------------
// CSV for spreadsheet software (Excel opens UTF-8 with a BOM correctly).

const CSV_HEADERS: [&str; 17] = [
    "患者ID",
    "氏名",
    "フリガナ",
    "年齢",
    "要介護度",
    "状態",
    "チーム人数",
    "主治医",
    "有効フラグ数",
    "最重度",
    "最新NEWS2",
    "NEWS2記録日時",
    "最終訪問からの日数",
    "退院調整",
    "退院予定日",
    "期限超過タスク",
    "同意",
];

fn csv_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\r', '\n']) || value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn csv_line(out: &mut String, fields: &[String]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f);
    }
    out.push_str("\r\n");
}

fn yes_no(b: bool) -> String {
    if b { "あり" } else { "なし" }.to_string()
}

/// A caseload page as CSV: UTF-8 with a BOM, CRLF line ends, a Japanese header row.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from("\u{feff}");
    csv_line(&mut out, &CSV_HEADERS.map(str::to_string));
    for r in rows {
        let case = r.open_discharge_case.as_ref();
        csv_line(
            &mut out,
            &[
                r.id.clone(),
                format!("{} {}", r.family_name, r.given_name),
                r.name_kana(),
                r.age.to_string(),
                r.care_level.clone(),
                r.status.clone(),
                r.team_size.to_string(),
                yes_no(r.has_primary_physician),
                r.active_flags.to_string(),
                r.highest_flag_severity.clone().unwrap_or_default(),
                r.latest_news2.as_ref().map(|n| n.total.to_string()).unwrap_or_default(),
                r.latest_news2.as_ref().map(|n| crate::api::format_utc(&n.at)).unwrap_or_default(),
                r.days_since_last_visit.map(|d| d.to_string()).unwrap_or_default(),
                yes_no(case.is_some()),
                case.and_then(|c| c.planned_discharge_on).map(|d| d.to_string()).unwrap_or_default(),
                r.overdue_tasks().to_string(),
                if r.consent.missing { "未取得".to_string() } else { "取得済".to_string() },
            ],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut out = String::new();
        csv_line(&mut out, &["a,b".into(), "say \"hi\"".into(), "改行\nあり".into(), "川崎".into()]);
        assert_eq!(out, "\"a,b\",\"say \"\"hi\"\"\",\"改行\nあり\",川崎\r\n");
    }
}
