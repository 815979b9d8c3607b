//! A ward's caseload (担当区の在宅療養患者一覧) for its coordinating physicians, and per-ward
//! counts for city staff.
//!
//! Pages and counts read the maintained per-patient entries (`entries`), one indexed table, so a
//! page of a 15,000-patient ward costs a few queries however many notes the ward holds. What
//! depends on the clock (age, days since the last visit, overdue tasks) is derived at read time.

pub mod entries;
pub mod handlers;

use std::collections::HashMap;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime};
use diesel::dsl::{case_when, count_star, sql, sum};
use diesel::prelude::*;
use diesel::sql_types::Integer;
use serde::{Deserialize, Serialize};

use crate::access;
use crate::api::{self, Check, PageQuery};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::CurrentUser;
use crate::db::schema::{caseload_entries, discharge_cases, discharge_tasks, patients};
use crate::db::DbConn;
use crate::discharge::{CaseStatus, TaskStatus};
use crate::error::{AppResult, Lang};
use crate::notes::news2::Band;
use crate::patients::age_on;
use crate::vocab::{CareLevel, ConsentStatus, FlagSeverity, PatientStatus};

pub use entries::Entry;

/// The statuses listed when the request names none: patients still in the ward's care.
pub const DEFAULT_STATUSES: [PatientStatus; 2] = [PatientStatus::Home, PatientStatus::Hospitalized];

/// Days without a visit note after which the summary counts a patient as not visited.
pub const SUMMARY_NO_VISIT_DAYS: i64 = 14;

#[derive(Debug, Clone, Serialize)]
pub struct LatestNews2 {
    pub total: i32,
    pub band: Band,
    #[serde(serialize_with = "crate::api::utc")]
    pub at: NaiveDateTime,
}

/// The patient's running discharge case: open while they are in hospital, then discharged
/// until it is closed or cancelled, since the post-discharge deadlines (退院後初回訪問, 退院・退所加算)
/// are the ones that matter then.
#[derive(Debug, Clone, Serialize)]
pub struct OpenCase {
    pub id: String,
    /// `open` or `discharged`.
    pub status: CaseStatus,
    pub planned_discharge_on: Option<NaiveDate>,
    pub discharged_on: Option<NaiveDate>,
    /// The earliest deadline of its open tasks.
    #[serde(serialize_with = "crate::api::utc_opt")]
    pub next_task_due_at: Option<NaiveDateTime>,
    pub overdue_tasks: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsentSummary {
    pub state: ConsentStatus,
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
    pub care_level: CareLevel,
    pub status: PatientStatus,
    pub team_size: i64,
    pub has_primary_physician: bool,
    pub active_flags: i64,
    pub highest_flag_severity: Option<FlagSeverity>,
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

/// The query of a caseload page (`GET /wards/{code}/caseload`, and the console's ward page):
/// the filters, the sort and the page.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseloadQuery {
    pub has_active_flag: Option<bool>,
    pub no_home_physician: Option<bool>,
    pub no_visit_days: Option<i64>,
    pub open_discharge_case: Option<bool>,
    pub overdue_tasks: Option<bool>,
    pub care_level: Option<CareLevel>,
    pub status: Option<PatientStatus>,
    pub sort: Option<String>,
    pub order: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A checked caseload query.
#[derive(Debug, Clone)]
pub struct Request {
    pub filter: Filter,
    pub order: (SortKey, bool),
    pub offset: i64,
    pub limit: i64,
}

impl CaseloadQuery {
    /// Checks the query, naming every parameter at fault.
    pub fn request(self) -> AppResult<Request> {
        let q = self;
        let paging = PageQuery { limit: q.limit, cursor: q.cursor.clone() };
        let limit = paging.limit()?;
        let mut check = Check::new();
        let offset = match paging.after()? {
            None => 0,
            Some(p) => match p.strip_prefix("o:").and_then(|n| n.parse::<u32>().ok()) {
                Some(n) => i64::from(n),
                None => {
                    check.push(
                        "cursor",
                        "invalid",
                        "cursor が不正です。前のページの next_cursor をそのまま指定してください。",
                        "The cursor is not valid. Pass next_cursor from the previous page unchanged.",
                    );
                    0
                }
            },
        };
        if q.no_visit_days.is_some_and(|d| !(0..=3650).contains(&d)) {
            check.push(
                "no_visit_days",
                "out_of_range",
                "no_visit_days は 0 から 3650 の間で指定してください。",
                "no_visit_days must be between 0 and 3650.",
            );
        }
        let sort = match q.sort.as_deref() {
            None => SortKey::default(),
            Some(s) => SortKey::parse(s).unwrap_or_else(|| {
                check.push(
                    "sort",
                    "invalid",
                    format!("sort は {} のいずれかです。", SortKey::NAMES.join(", ")),
                    format!("sort is one of {}.", SortKey::NAMES.join(", ")),
                );
                SortKey::default()
            }),
        };
        let descending = match q.order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => {
                check.push("order", "invalid", "order は asc か desc です。", "order is asc or desc.");
                false
            }
        };
        check.finish()?;
        let filter = Filter {
            has_active_flag: q.has_active_flag.unwrap_or(false),
            no_home_physician: q.no_home_physician.unwrap_or(false),
            no_visit_days: q.no_visit_days,
            open_discharge_case: q.open_discharge_case.unwrap_or(false),
            overdue_tasks: q.overdue_tasks.unwrap_or(false),
            care_level: q.care_level,
            status: q.status,
            withheld: Vec::new(),
        };
        Ok(Request { filter, order: (sort, descending), offset, limit })
    }
}

/// A page of a ward's caseload, with the ward's counts.
#[derive(Debug, Serialize)]
pub struct CaseloadPage {
    pub summary: Summary,
    pub items: Vec<Row>,
    pub next_cursor: Option<String>,
}

/// One page of a ward's caseload for a coordinating physician of the ward (anyone else: 404,
/// as for an unknown ward), each listed patient's read audited in the same transaction.
pub fn read_page(conn: &mut DbConn, me: &CurrentUser, ward: &str, request: Request) -> AppResult<CaseloadPage> {
    let mut filter = request.filter;
    filter.withheld = access::ward_caseload(conn, me, ward)?;
    let now = crate::db::now();
    let summary = summary(conn, ward, now)?;
    let (items, more) = page(conn, ward, &filter, request.order, request.offset, request.limit, now)?;
    let end = request.offset + items.len() as i64;
    let next_cursor = more.then(|| api::encode_cursor(&format!("o:{end}")));
    let reads = items
        .iter()
        .map(|r| Event::new(Action::Read, Resource::Caseload, Some(&r.id), Some(&r.id)).detail(ward.to_string()))
        .collect();
    audit::record_all(conn, me, reads)?;
    Ok(CaseloadPage { summary, items, next_cursor })
}

/// The first moment (UTC) of the Japanese calendar day `day`.
fn jst_day_start(day: NaiveDate) -> NaiveDateTime {
    day.and_time(NaiveTime::MIN) - Duration::hours(9)
}

fn jst_day(at: NaiveDateTime) -> NaiveDate {
    (at + Duration::hours(9)).date()
}

/// A visit before this moment is at least `days` Japanese calendar days ago.
fn no_visit_cutoff(days: i64, today: NaiveDate) -> NaiveDateTime {
    jst_day_start(today - Duration::days(days) + Duration::days(1))
}

/// The entries of a ward in the given statuses, as a query to narrow further.
macro_rules! ward_entries {
    ($ward:expr, $statuses:expr) => {
        caseload_entries::table
            .filter(caseload_entries::ward_code.eq($ward))
            .filter(caseload_entries::status.eq_any($statuses))
    };
}

/// Counts over the ward's patients at home or in hospital, in one pass over the ward's entries.
pub fn summary(conn: &mut DbConn, ward: &str, now: NaiveDateTime) -> AppResult<Summary> {
    use caseload_entries as c;
    let statuses: Vec<&str> = DEFAULT_STATUSES.iter().map(|s| s.as_str()).collect();
    let cutoff = no_visit_cutoff(SUMMARY_NO_VISIT_DAYS, jst_day(now));
    // How many entries meet a condition.
    macro_rules! how_many {
        ($cond:expr) => {
            sum(case_when($cond, 1.into_sql::<Integer>()).otherwise(0.into_sql::<Integer>()))
        };
    }
    type Counts = (i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>);
    let counts: Counts = ward_entries!(ward, &statuses)
        .select((
            count_star(),
            how_many!(c::active_flags.gt(0)),
            how_many!(c::has_primary_physician.eq(false)),
            how_many!(c::last_visit_at.is_null().or(c::last_visit_at.lt(cutoff))),
            how_many!(c::open_case_id.is_not_null()),
            how_many!(c::next_task_due_at.lt(now)),
            how_many!(c::consent_state.ne(ConsentStatus::Active)),
        ))
        .first(conn)?;
    Ok(Summary {
        patients: counts.0,
        with_active_flag: counts.1.unwrap_or(0),
        no_home_physician: counts.2.unwrap_or(0),
        no_visit_14_days: counts.3.unwrap_or(0),
        open_discharge_cases: counts.4.unwrap_or(0),
        with_overdue_tasks: counts.5.unwrap_or(0),
        consent_missing: counts.6.unwrap_or(0),
    })
}

/// One page of a ward's caseload, sorted by a column (descending or not): the rows, and
/// whether more follow.
pub fn page(
    conn: &mut DbConn,
    ward: &str,
    filter: &Filter,
    (sort, descending): (SortKey, bool),
    offset: i64,
    limit: i64,
    now: NaiveDateTime,
) -> AppResult<(Vec<Row>, bool)> {
    let today = jst_day(now);
    let q = ordered(conn, ward, filter, (sort, descending), now);
    let mut found: Vec<Entry> = q.offset(offset).limit(limit + 1).select(Entry::as_select()).load(conn)?;
    let more = found.len() as i64 > limit;
    found.truncate(limit as usize);
    Ok((rows_of(conn, found, today, now)?, more))
}

/// Where the next part of a whole-ward export starts: the sort values of the last row written.
/// Keyset order, not an offset, so that a patient added or moved between two parts neither
/// repeats a row nor pushes one out of the file.
#[derive(Debug, Clone)]
pub struct After {
    key: SortValue,
    name_kana: String,
    patient_id: String,
}

/// The value of the sorted column as the query orders it.
#[derive(Debug, Clone)]
enum SortValue {
    Int(Option<i32>),
    Text(Option<String>),
    Date(Option<NaiveDate>),
}

/// The next `limit` rows of a ward's caseload after `after` (from the start when `None`), in
/// the caseload's order, and where the part after them starts (`None` at the end).
pub fn part(
    conn: &mut DbConn,
    ward: &str,
    filter: &Filter,
    (sort, descending): (SortKey, bool),
    after: Option<&After>,
    limit: i64,
    now: NaiveDateTime,
) -> AppResult<(Vec<Row>, Option<After>)> {
    let today = jst_day(now);
    let mut q = ordered(conn, ward, filter, (sort, descending), now);
    if let Some(a) = after {
        let (age_years, visit_day) = shown_value_keys(conn, today);
        let key = match sort {
            SortKey::NameKana => "caseload_entries.name_kana".to_string(),
            SortKey::Age => format!("({age_years})"),
            SortKey::CareLevel => "caseload_entries.care_level_rank".to_string(),
            SortKey::ActiveFlags => "caseload_entries.active_flags".to_string(),
            SortKey::LatestNews2 => "caseload_entries.latest_news2_total".to_string(),
            SortKey::DaysSinceLastVisit => format!("({visit_day})"),
            SortKey::PlannedDischargeOn => "caseload_entries.planned_discharge_on".to_string(),
        };
        // Fewer days since the last visit is a later visit day: that column runs the other way.
        let later = descending != (sort == SortKey::DaysSinceLastVisit);
        q = after_clause(q, &key, if later { "<" } else { ">" }, a);
    }
    let found: Vec<Entry> = q.limit(limit).select(Entry::as_select()).load(conn)?;
    let next = if (found.len() as i64) < limit {
        None
    } else {
        found.last().map(|e| After {
            key: sort_value(sort, e, today),
            name_kana: e.name_kana.clone(),
            patient_id: e.patient_id.clone(),
        })
    };
    Ok((rows_of(conn, found, today, now)?, next))
}

/// The sorted column's value of an entry, computed as the query computes it.
fn sort_value(sort: SortKey, e: &Entry, today: NaiveDate) -> SortValue {
    match sort {
        SortKey::NameKana => SortValue::Text(Some(e.name_kana.clone())),
        SortKey::Age => {
            let later_birthday = e.birth_date.format("%m-%d").to_string() > today.format("%m-%d").to_string();
            SortValue::Int(Some(-(e.birth_date.year() + i32::from(later_birthday))))
        }
        SortKey::CareLevel => SortValue::Int(Some(e.care_level_rank)),
        SortKey::ActiveFlags => SortValue::Int(Some(e.active_flags)),
        SortKey::LatestNews2 => SortValue::Int(e.latest_news2_total),
        SortKey::DaysSinceLastVisit => SortValue::Text(e.last_visit_at.map(|at| jst_day(at).to_string())),
        SortKey::PlannedDischargeOn => SortValue::Date(e.planned_discharge_on),
    }
}

type Entries<'a> = caseload_entries::BoxedQuery<'a, <DbConn as diesel::Connection>::Backend>;

/// Narrows an ordered query to the rows after `a`. The order is (key is null, key, kana, id):
/// rows without a value come last in both directions, ties by kana and then id ascending. `key`
/// is server-made SQL (a column or a computed value), never client input; values are bound.
fn after_clause<'a>(q: Entries<'a>, key: &str, op: &str, a: &After) -> Entries<'a> {
    use diesel::sql_types::{Bool, Date, Text};
    let tie = "(caseload_entries.name_kana > ";
    macro_rules! after_value {
        ($ty:ty, $v:expr) => {
            q.filter(
                sql::<Bool>(&format!("({key} IS NULL OR {key} {op} "))
                    .bind::<$ty, _>($v.clone())
                    .sql(&format!(" OR ({key} = "))
                    .bind::<$ty, _>($v.clone())
                    .sql(&format!(" AND {tie}"))
                    .bind::<Text, _>(a.name_kana.clone())
                    .sql(" OR (caseload_entries.name_kana = ")
                    .bind::<Text, _>(a.name_kana.clone())
                    .sql(" AND caseload_entries.patient_id > ")
                    .bind::<Text, _>(a.patient_id.clone())
                    .sql("))))"),
            )
        };
    }
    match &a.key {
        SortValue::Int(Some(v)) => after_value!(Integer, v),
        SortValue::Text(Some(v)) => after_value!(Text, v),
        SortValue::Date(Some(v)) => after_value!(Date, v),
        SortValue::Int(None) | SortValue::Text(None) | SortValue::Date(None) => q.filter(
            sql::<Bool>(&format!("({key} IS NULL AND {tie}"))
                .bind::<Text, _>(a.name_kana.clone())
                .sql(" OR (caseload_entries.name_kana = ")
                .bind::<Text, _>(a.name_kana.clone())
                .sql(" AND caseload_entries.patient_id > ")
                .bind::<Text, _>(a.patient_id.clone())
                .sql(")))"),
        ),
    }
}

/// A ward's entries narrowed by the filter, in the caseload's order.
fn ordered<'a>(
    conn: &DbConn,
    ward: &str,
    filter: &Filter,
    (sort, descending): (SortKey, bool),
    now: NaiveDateTime,
) -> Entries<'a> {
    let today = jst_day(now);
    let statuses: Vec<String> = match filter.status {
        Some(s) => vec![s.as_str().to_string()],
        None => DEFAULT_STATUSES.iter().map(|s| s.as_str().to_string()).collect(),
    };
    let mut q = ward_entries!(ward.to_string(), statuses).into_boxed();
    if !filter.withheld.is_empty() {
        q = q.filter(caseload_entries::patient_id.ne_all(filter.withheld.clone()));
    }
    if filter.has_active_flag {
        q = q.filter(caseload_entries::active_flags.gt(0));
    }
    if filter.no_home_physician {
        q = q.filter(caseload_entries::has_primary_physician.eq(false));
    }
    if let Some(days) = filter.no_visit_days {
        let cutoff = no_visit_cutoff(days, today);
        q = q.filter(caseload_entries::last_visit_at.is_null().or(caseload_entries::last_visit_at.lt(cutoff)));
    }
    if filter.open_discharge_case {
        q = q.filter(caseload_entries::open_case_id.is_not_null());
    }
    if filter.overdue_tasks {
        q = q.filter(caseload_entries::next_task_due_at.lt(now));
    }
    if let Some(level) = filter.care_level {
        q = q.filter(caseload_entries::care_level.eq(level));
    }
    // Rows without a value sort last in both directions; ties — the same value as the column
    // shows it — by kana name, then id. Age and days since the last visit are shown in whole
    // years and JST days, so they sort by those, not by the birth date or visit time behind them.
    use caseload_entries as c;
    let (age_years, visit_day) = shown_value_keys(conn, today);
    q = match (sort, descending) {
        (SortKey::NameKana, false) => q.order(c::name_kana.asc()),
        (SortKey::NameKana, true) => q.order(c::name_kana.desc()),
        (SortKey::Age, false) => q.order(sql::<Integer>(&age_years).asc()),
        (SortKey::Age, true) => q.order(sql::<Integer>(&age_years).desc()),
        (SortKey::CareLevel, false) => q.order(c::care_level_rank.asc()),
        (SortKey::CareLevel, true) => q.order(c::care_level_rank.desc()),
        (SortKey::ActiveFlags, false) => q.order(c::active_flags.asc()),
        (SortKey::ActiveFlags, true) => q.order(c::active_flags.desc()),
        (SortKey::LatestNews2, false) => q.order((c::latest_news2_total.is_null(), c::latest_news2_total.asc())),
        (SortKey::LatestNews2, true) => q.order((c::latest_news2_total.is_null(), c::latest_news2_total.desc())),
        // Fewer days since the last visit means a later visit day.
        (SortKey::DaysSinceLastVisit, false) => {
            q.order((c::last_visit_at.is_null(), sql::<diesel::sql_types::Text>(&visit_day).desc()))
        }
        (SortKey::DaysSinceLastVisit, true) => {
            q.order((c::last_visit_at.is_null(), sql::<diesel::sql_types::Text>(&visit_day).asc()))
        }
        (SortKey::PlannedDischargeOn, false) => {
            q.order((c::planned_discharge_on.is_null(), c::planned_discharge_on.asc()))
        }
        (SortKey::PlannedDischargeOn, true) => {
            q.order((c::planned_discharge_on.is_null(), c::planned_discharge_on.desc()))
        }
    };
    q.then_order_by(c::name_kana.asc()).then_order_by(c::patient_id.asc())
}

/// The SQL of the values the age and days-since-visit columns show, per backend: age in whole
/// years on `today` (the birth year, one more when this year's birthday is still to come, ordered
/// the opposite way round: a larger key is a younger patient) and the JST day of the last visit
/// (`YYYY-MM-DD`). `today` is the server's own date, never client input.
fn shown_value_keys(conn: &DbConn, today: NaiveDate) -> (String, String) {
    let month_day = today.format("%m-%d");
    match conn {
        DbConn::Sqlite(_) => (
            format!(
                "-(CAST(strftime('%Y', birth_date) AS INTEGER) + (strftime('%m-%d', birth_date) > '{month_day}'))"
            ),
            "date(last_visit_at, '+9 hours')".to_string(),
        ),
        DbConn::Postgres(_) => (
            format!(
                "-(CAST(EXTRACT(YEAR FROM birth_date) AS INTEGER) + CASE WHEN to_char(birth_date, 'MM-DD') > '{month_day}' THEN 1 ELSE 0 END)"
            ),
            "to_char(last_visit_at + INTERVAL '9 hours', 'YYYY-MM-DD')".to_string(),
        ),
    }
}

/// Caseload rows for entries: the names, and what depends on the clock.
fn rows_of(conn: &mut DbConn, found: Vec<Entry>, today: NaiveDate, now: NaiveDateTime) -> AppResult<Vec<Row>> {
    let ids: Vec<&str> = found.iter().map(|e| e.patient_id.as_str()).collect();
    let names: HashMap<String, (String, String, String, String)> = patients::table
        .filter(patients::id.eq_any(&ids))
        .select((
            patients::id,
            (patients::family_name, patients::given_name, patients::family_name_kana, patients::given_name_kana),
        ))
        .load::<(String, (String, String, String, String))>(conn)?
        .into_iter()
        .collect();
    let case_ids: Vec<&str> = found.iter().filter_map(|e| e.open_case_id.as_deref()).collect();
    let cases: HashMap<String, (CaseStatus, Option<NaiveDate>)> = if case_ids.is_empty() {
        HashMap::new()
    } else {
        discharge_cases::table
            .filter(discharge_cases::id.eq_any(&case_ids))
            .select((discharge_cases::id, (discharge_cases::status, discharge_cases::discharged_on)))
            .load::<(String, (CaseStatus, Option<NaiveDate>))>(conn)?
            .into_iter()
            .collect()
    };
    let overdue: HashMap<String, i64> = if case_ids.is_empty() {
        HashMap::new()
    } else {
        discharge_tasks::table
            .filter(discharge_tasks::case_id.eq_any(&case_ids))
            .filter(discharge_tasks::status.eq_any(TaskStatus::open_codes()))
            .filter(discharge_tasks::due_at.lt(now))
            .group_by(discharge_tasks::case_id)
            .select((discharge_tasks::case_id, count_star()))
            .load::<(String, i64)>(conn)?
            .into_iter()
            .collect()
    };
    found
        .into_iter()
        .filter_map(|e| {
            let (family_name, given_name, family_name_kana, given_name_kana) = names.get(&e.patient_id)?.clone();
            let latest_news2 = match (e.latest_news2_total, e.latest_news2_band, e.latest_news2_at) {
                (Some(total), Some(band), Some(at)) => Some(LatestNews2 { total, band, at }),
                _ => None,
            };
            let open_discharge_case = match e.open_case_id {
                None => None,
                Some(id) => {
                    let Some(&(status, discharged_on)) = cases.get(&id) else {
                        return Some(Err(crate::error::AppError::internal("caseload entry without its case")));
                    };
                    Some(OpenCase {
                        overdue_tasks: overdue.get(&id).copied().unwrap_or(0),
                        id,
                        status,
                        planned_discharge_on: e.planned_discharge_on,
                        discharged_on,
                        next_task_due_at: e.next_task_due_at,
                    })
                }
            };
            Some(Ok(Row {
                id: e.patient_id,
                family_name,
                given_name,
                family_name_kana,
                given_name_kana,
                age: age_on(e.birth_date, today),
                care_level: e.care_level,
                status: e.status,
                team_size: e.team_size.into(),
                has_primary_physician: e.has_primary_physician,
                active_flags: e.active_flags.into(),
                highest_flag_severity: e.highest_flag_severity,
                latest_news2,
                open_discharge_case,
                days_since_last_visit: e.last_visit_at.map(|at| (today - jst_day(at)).num_days().max(0)),
                consent: ConsentSummary { missing: e.consent_state != ConsentStatus::Active, state: e.consent_state },
            }))
        })
        .collect()
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
    /// Patients left out for this reader (`access::withheld_from_coordinator`).
    pub withheld: Vec<String>,
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

// ---------------------------------------------------------------------------------------------
// CSV for spreadsheet software (Excel opens UTF-8 with a BOM correctly).

/// The header row in Japanese and in English; times are in Japan time, and the header says so.
const CSV_HEADERS: [(&str, &str); 17] = [
    ("患者ID", "Patient ID"),
    ("氏名", "Name"),
    ("フリガナ", "Name (kana)"),
    ("年齢", "Age"),
    ("要介護度", "Care level"),
    ("状態", "Status"),
    ("チーム人数", "Team size"),
    ("主治医", "Home physician"),
    ("有効フラグ数", "Active flags"),
    ("最重度", "Highest severity"),
    ("最新NEWS2", "Latest NEWS2"),
    ("NEWS2記録日時(JST)", "Latest NEWS2 at (JST)"),
    ("最終訪問からの日数", "Days since last visit"),
    ("退院調整", "Discharge coordination"),
    ("退院予定日", "Planned discharge"),
    ("期限超過タスク", "Overdue tasks"),
    ("同意", "Consent"),
];

fn yes_no(b: bool, lang: Lang) -> String {
    match (b, lang) {
        (true, Lang::En) => "Yes",
        (false, Lang::En) => "No",
        (true, Lang::Ja) => "あり",
        (false, Lang::Ja) => "なし",
    }
    .to_string()
}

/// A UTC time as Japan time, `2026-12-01 09:30` (Asia/Tokyo is a fixed +09:00).
fn jst_minute(at: &NaiveDateTime) -> String {
    (*at + Duration::hours(9)).format("%Y-%m-%d %H:%M").to_string()
}

/// A caseload page as CSV: UTF-8 with a BOM, CRLF line ends, a header row and values in the
/// reader's language (Japanese unless they prefer English), times in Japan time, every cell
/// quoted and a typed formula shown as text (see `spreadsheet`).
pub fn csv(rows: &[Row], lang: Lang) -> String {
    let mut out = csv_header(lang);
    out.push_str(&csv_rows(rows, lang));
    out
}

/// The start of the caseload CSV: the BOM and the header row in the reader's language.
pub fn csv_header(lang: Lang) -> String {
    let headers: Vec<&str> = CSV_HEADERS.iter().map(|(ja, en)| if lang == Lang::En { *en } else { *ja }).collect();
    crate::spreadsheet::header(&headers)
}

/// Caseload rows as CSV lines, to follow [`csv_header`].
pub fn csv_rows(rows: &[Row], lang: Lang) -> String {
    crate::spreadsheet::records(rows.iter().map(|r| {
        let case = r.open_discharge_case.as_ref();
        [
            r.id.clone(),
            format!("{} {}", r.family_name, r.given_name),
            r.name_kana(),
            r.age.to_string(),
            r.care_level.label(lang).to_string(),
            r.status.label(lang).to_string(),
            r.team_size.to_string(),
            yes_no(r.has_primary_physician, lang),
            r.active_flags.to_string(),
            r.highest_flag_severity.map(|s| s.label(lang).to_string()).unwrap_or_default(),
            r.latest_news2.as_ref().map(|n| n.total.to_string()).unwrap_or_default(),
            r.latest_news2.as_ref().map(|n| jst_minute(&n.at)).unwrap_or_default(),
            r.days_since_last_visit.map(|d| d.to_string()).unwrap_or_default(),
            yes_no(case.is_some(), lang),
            case.and_then(|c| c.planned_discharge_on).map(|d| d.to_string()).unwrap_or_default(),
            r.overdue_tasks().to_string(),
            // A revoked consent reads differently from one never obtained.
            r.consent.state.label(lang).to_string(),
        ]
    }))
}

#[cfg(test)]
mod tests {
    use crate::caseload::*;

    #[test]
    fn csv_words_times_and_consent() {
        let at = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap().and_hms_opt(0, 30, 0).unwrap();
        assert_eq!(jst_minute(&at), "2026-12-01 09:30");
        assert_eq!(ConsentStatus::Revoked.label(Lang::Ja), "撤回済");
        assert_eq!(ConsentStatus::None.label(Lang::Ja), "未取得");
        assert_eq!(ConsentStatus::Active.label(Lang::Ja), "取得済");
        assert_eq!(ConsentStatus::Revoked.label(Lang::En), "Revoked");
        assert_eq!(CareLevel::Care3.label(Lang::Ja), "要介護3");
        assert_eq!(CareLevel::Care3.label(Lang::En), "Care level 3");
        assert_eq!(FlagSeverity::Emergency.label(Lang::Ja), "緊急");
    }
}
