//! Visit plans (訪問予定): a member's recurring visits — which service, on which weekdays, at what
//! time (Asia/Tokyo) and for how long, from one date until another. A plan is never deleted: it
//! ends (`valid_until`), and each change is a new version.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::{ServiceType, Versioned};
use crate::api::{self, Check};
use crate::audit::Resource;
use crate::db::schema::{users, visit_plan_versions as pv, visit_plans as vp};
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};

/// Longest visit: a day service lasts a working day.
const MAX_DURATION_MINUTES: i32 = 720;

/// A visit plan as sent: for a new plan and for each change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The care-team member who visits (their user id).
    pub user_id: String,
    pub service_type: ServiceType,
    /// ISO weekday numbers, 1 = Monday … 7 = Sunday.
    pub weekdays: Vec<u8>,
    /// `HH:MM` in Asia/Tokyo.
    pub start_time: String,
    pub duration_minutes: i32,
    pub valid_from: NaiveDate,
    pub valid_until: Option<NaiveDate>,
    pub note: Option<String>,
    /// Why it changed (optional on a new plan).
    pub reason: Option<String>,
}

/// Minutes after midnight of `HH:MM`.
fn parse_start(s: &str) -> Option<i32> {
    let t = NaiveTime::parse_from_str(s, "%H:%M").ok().filter(|_| s.len() == 5)?;
    Some((t.hour() * 60 + t.minute()) as i32)
}

fn format_start(minute: i32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

impl Entry {
    pub fn check(&self, check: &mut Check) {
        check.required_line("user_id", &self.user_id, 64);
        let mut days = self.weekdays.clone();
        days.sort_unstable();
        days.dedup();
        if days.is_empty() || days.len() != self.weekdays.len() || days.iter().any(|d| !(1..=7).contains(d)) {
            check.push(
                "weekdays",
                "invalid",
                "weekdays には 1(月曜)から 7(日曜)までの曜日を重複なく1つ以上指定してください。",
                "weekdays must list one or more distinct ISO weekdays, 1 (Monday) to 7 (Sunday).",
            );
        }
        if parse_start(&self.start_time).is_none() {
            check.push(
                "start_time",
                "invalid",
                "start_time は HH:MM 形式(日本時間)で指定してください。",
                "start_time must be HH:MM (Asia/Tokyo).",
            );
        }
        if !(1..=MAX_DURATION_MINUTES).contains(&self.duration_minutes) {
            check.push(
                "duration_minutes",
                "out_of_range",
                format!("duration_minutes は 1 から {MAX_DURATION_MINUTES} の間で指定してください。"),
                format!("duration_minutes must be between 1 and {MAX_DURATION_MINUTES}."),
            );
        }
        for (field, day) in [("valid_from", Some(self.valid_from)), ("valid_until", self.valid_until)] {
            if day.is_some_and(|d| !(1900..=9999).contains(&chrono::Datelike::year(&d))) {
                check.push(
                    field,
                    "out_of_range",
                    format!("{field} には1900年から9999年までの日付を指定してください。"),
                    format!("{field} must be a date from 1900 to 9999."),
                );
            }
        }
        if self.valid_until.is_some_and(|u| u < self.valid_from) {
            check.push(
                "valid_until",
                "before_valid_from",
                "valid_until は valid_from 以降の日付にしてください。",
                "valid_until cannot be before valid_from.",
            );
        }
        check.optional_text("note", self.note.as_deref(), 1000);
        check.optional_text("reason", self.reason.as_deref(), super::REASON_MAX_CHARS);
    }
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = vp)]
pub struct Plan {
    pub id: String,
    pub patient_id: String,
    pub version: i32,
    pub created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = pv)]
pub struct Version {
    pub id: String,
    pub plan_id: String,
    pub version: i32,
    pub patient_id: String,
    pub user_id: String,
    pub service_type: ServiceType,
    pub weekdays: String,
    pub start_minute: i32,
    pub duration_minutes: i32,
    pub valid_from: NaiveDate,
    pub valid_until: Option<NaiveDate>,
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
    pub user_id: String,
    pub user_name: String,
    pub service_type: ServiceType,
    /// The service's Japanese name (訪問看護 …).
    pub service_type_label: &'static str,
    pub weekdays: Vec<u8>,
    pub start_time: String,
    pub start_minute: i32,
    pub duration_minutes: i32,
    pub valid_from: NaiveDate,
    pub valid_until: Option<NaiveDate>,
    pub note: Option<String>,
    pub reason: Option<String>,
    pub recorded_by: String,
    #[serde(serialize_with = "api::utc")]
    pub recorded_at: NaiveDateTime,
}

impl View {
    fn of(v: Version, user_name: String) -> View {
        View {
            id: v.plan_id,
            patient_id: v.patient_id,
            version: v.version,
            user_id: v.user_id,
            user_name,
            service_type: v.service_type,
            service_type_label: v.service_type.label(crate::error::Lang::Ja),
            weekdays: serde_json::from_str(&v.weekdays).unwrap_or_default(),
            start_time: format_start(v.start_minute),
            start_minute: v.start_minute,
            duration_minutes: v.duration_minutes,
            valid_from: v.valid_from,
            valid_until: v.valid_until,
            note: v.note,
            reason: v.reason,
            recorded_by: v.recorded_by,
            recorded_at: v.recorded_at,
        }
    }

    /// Whether the plan visits on `day`.
    pub fn visits_on(&self, day: NaiveDate) -> bool {
        use chrono::Datelike;
        day >= self.valid_from
            && self.valid_until.is_none_or(|u| day <= u)
            && self.weekdays.contains(&(day.weekday().number_from_monday() as u8))
    }
}

fn version_of(plan: &Plan, number: i32, e: Entry, by: &str) -> AppResult<Version> {
    let start_minute = parse_start(&e.start_time)
        .ok_or_else(|| AppError::field("start_time", "invalid", "start_time が不正です。", "start_time is invalid."))?;
    let mut days = e.weekdays;
    days.sort_unstable();
    Ok(Version {
        id: new_id(),
        plan_id: plan.id.clone(),
        version: number,
        patient_id: plan.patient_id.clone(),
        user_id: e.user_id,
        service_type: e.service_type,
        weekdays: serde_json::to_string(&days).map_err(|e| AppError::internal(e.to_string()))?,
        start_minute,
        duration_minutes: e.duration_minutes,
        valid_from: e.valid_from,
        valid_until: e.valid_until,
        note: e.note,
        reason: e.reason,
        recorded_by: by.to_string(),
        recorded_at: now(),
    })
}

fn view_of(conn: &mut DbConn, v: Version) -> AppResult<View> {
    let name: String = users::table.find(&v.user_id).select(users::name).first(conn)?;
    Ok(View::of(v, name))
}

fn changed(conn: &mut DbConn, patient_id: &str) -> AppResult<()> {
    crate::changes::record(conn, crate::changes::Change::VisitPlan { patient_id })
}

impl Versioned for Plan {
    type Entry = Entry;
    type View = View;
    const RESOURCE: Resource = Resource::VisitPlan;
    const NAME: &'static str = "visit plan";
    const PATH: &'static str = "visit-plans";

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

    fn scheduled(entry: &Entry) -> Option<(&'static str, Vec<String>)> {
        Some(("user_id", vec![entry.user_id.clone()]))
    }

    fn scheduled_now(&self, conn: &mut DbConn) -> AppResult<Vec<String>> {
        Ok(vec![current(conn, self)?.user_id])
    }

    fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<Plan>> {
        Ok(vp::table.find(id).select(Plan::as_select()).first(conn).optional()?)
    }

    fn add(conn: &mut DbConn, patient_id: &str, entry: Entry, by: &str) -> AppResult<View> {
        let head = Plan { id: new_id(), patient_id: patient_id.to_string(), version: 1, created_at: now() };
        let v = version_of(&head, 1, entry, by)?;
        diesel::insert_into(vp::table).values(&head).execute(conn)?;
        diesel::insert_into(pv::table).values(&v).execute(conn)?;
        changed(conn, patient_id)?;
        view_of(conn, v)
    }

    /// A change (including ending the plan with `valid_until`) as a new version of the one named
    /// by `expected` (412 when another change got there first).
    fn change(&self, conn: &mut DbConn, expected: i32, entry: Entry, by: &str) -> AppResult<View> {
        let moved = diesel::update(vp::table.filter(vp::id.eq(&self.id)).filter(vp::version.eq(expected)))
            .set(vp::version.eq(expected + 1))
            .execute(conn)?;
        let v = version_of(self, super::moved_to(moved, expected)?, entry, by)?;
        diesel::insert_into(pv::table).values(&v).execute(conn)?;
        changed(conn, &self.patient_id)?;
        view_of(conn, v)
    }

    fn view(&self, conn: &mut DbConn) -> AppResult<View> {
        let v = current(conn, self)?;
        view_of(conn, v)
    }

    /// Every version of a plan, oldest first.
    fn history(conn: &mut DbConn, plan_id: &str) -> AppResult<Vec<View>> {
        let rows: Vec<(Version, String)> = pv::table
            .inner_join(users::table.on(users::id.eq(pv::user_id)))
            .filter(pv::plan_id.eq(plan_id))
            .order(pv::version.asc())
            .select((Version::as_select(), users::name))
            .load(conn)?;
        Ok(rows.into_iter().map(|(v, n)| View::of(v, n)).collect())
    }
}

pub fn current(conn: &mut DbConn, plan: &Plan) -> AppResult<Version> {
    Ok(pv::table
        .filter(pv::plan_id.eq(&plan.id))
        .filter(pv::version.eq(plan.version))
        .select(Version::as_select())
        .first(conn)?)
}

/// The patient's plans, the current version of each, oldest first; ended ones only when asked
/// for (`with_ended`) — a plan ended before `today` no longer visits.
pub fn list(conn: &mut DbConn, patient_id: &str, with_ended: bool, today: NaiveDate) -> AppResult<Vec<View>> {
    let mut q = pv::table
        .inner_join(vp::table.on(vp::id.eq(pv::plan_id).and(vp::version.eq(pv::version))))
        .inner_join(users::table.on(users::id.eq(pv::user_id)))
        .filter(vp::patient_id.eq(patient_id))
        .into_boxed();
    if !with_ended {
        q = q.filter(pv::valid_until.is_null().or(pv::valid_until.ge(today)));
    }
    let rows: Vec<(Version, String)> =
        q.order((vp::created_at.asc(), vp::id.asc())).select((Version::as_select(), users::name)).load(conn)?;
    Ok(rows.into_iter().map(|(v, n)| View::of(v, n)).collect())
}
