//! The visit week: seven days of one patient's care, or of one member's patients — the visit
//! plans expanded into dated visits, the one-off appointments, and the next visit the latest
//! physician's note announces (`next_visit_on`, 在宅医療情報連携加算), sorted by time.
//! Days are days in Asia/Tokyo.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::{appointments, visits, AppointmentKind, AppointmentStatus, ServiceType};
use crate::api;
use crate::db::schema::{note_versions, notes};
use crate::db::DbConn;
use crate::error::{AppError, AppResult};

crate::text_enum! {
    /// What an item of the week is.
    WeekItemKind {
        Visit => "visit" ("定期訪問", "Planned visit"),
        Appointment => "appointment" ("予定", "Appointment"),
        NextVisit => "next_visit" ("次回訪問予定(医師記録)", "Next visit (physician's note)"),
    }
}

/// Asia/Tokyo is UTC+9 all year (no daylight saving).
const JST_HOURS: i64 = 9;

/// The UTC instant of `minute` minutes after midnight of `day` in Asia/Tokyo.
fn jst_instant(day: NaiveDate, minute: i32) -> NaiveDateTime {
    day.and_hms_opt(0, 0, 0).unwrap_or_default() + Duration::minutes(i64::from(minute)) - Duration::hours(JST_HOURS)
}

/// The day in Asia/Tokyo of a UTC instant.
fn jst_day(t: NaiveDateTime) -> NaiveDate {
    (t + Duration::hours(JST_HOURS)).date()
}

/// `from` of a week query: a date, or this week's Monday in Asia/Tokyo.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WeekQuery {
    pub from: Option<NaiveDate>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl WeekQuery {
    pub fn first_day(&self) -> NaiveDate {
        self.from.unwrap_or_else(|| {
            let today = crate::patients::today_jst();
            today - Duration::days(i64::from(today.weekday().num_days_from_monday()))
        })
    }

    pub fn paging(&self) -> api::PageQuery {
        api::PageQuery { limit: self.limit, cursor: self.cursor.clone() }
    }
}

/// The seven days from `first`.
#[derive(Debug, Clone, Copy)]
pub struct Week {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl Week {
    /// A week of the years the service keeps records for (1900–9998): answers stay within
    /// four-digit years on the wire.
    pub fn from(first: NaiveDate) -> AppResult<Week> {
        if !(1900..=9998).contains(&first.year()) {
            return Err(AppError::field(
                "from",
                "out_of_range",
                "from には1900年から9998年までの日付を指定してください。",
                "from must be a date from 1900 to 9998.",
            ));
        }
        Ok(Week { first, last: first + Duration::days(6) })
    }

    fn days(&self) -> impl Iterator<Item = NaiveDate> {
        self.first.iter_days().take(7)
    }

    /// The UTC window of the week's days in Asia/Tokyo.
    fn window(&self) -> (NaiveDateTime, NaiveDateTime) {
        (jst_instant(self.first, 0), jst_instant(self.last, 24 * 60))
    }
}

/// One dated item of a week.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub kind: WeekItemKind,
    /// The plan, appointment or note it comes from.
    pub source_id: String,
    pub patient_id: String,
    /// The day in Asia/Tokyo.
    pub date: NaiveDate,
    /// Absent for a next visit (a physician's note names the day only).
    #[serde(serialize_with = "api::utc_opt")]
    pub starts_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "api::utc_opt")]
    pub ends_at: Option<NaiveDateTime>,
    /// What a person reads: the service, the kind of appointment, or 次回訪問予定.
    pub label: &'static str,
    pub service_type: Option<ServiceType>,
    pub appointment_kind: Option<AppointmentKind>,
    pub status: Option<AppointmentStatus>,
    /// Who visits or takes part (user ids).
    pub user_ids: Vec<String>,
    pub place: Option<String>,
    pub video_url: Option<String>,
}

impl Item {
    /// The order of a week and the position of a page's cursor: the day, the time (a day's
    /// next visit first), then the source and patient, which make it unique.
    pub fn position(&self) -> String {
        // "0" sorts before any timestamp of the day.
        let at = self.starts_at.map_or_else(|| "0".to_string(), |t| api::format_utc(&t));
        format!("{}|{}|{}|{}", self.date, at, self.source_id, self.patient_id)
    }
}

/// The day the latest physician's note (the current version of the latest note, by when it
/// happened, that names one) sets for the next visit, and that note's id and author.
fn next_visit(conn: &mut DbConn, patient_id: &str) -> AppResult<Option<(NaiveDate, String, String)>> {
    use crate::notes::current::is_current_version;
    let row: Option<(Option<NaiveDate>, String, String)> = note_versions::table
        .inner_join(notes::table)
        .filter(note_versions::patient_id.eq(patient_id))
        .filter(is_current_version!())
        .filter(note_versions::next_visit_on.is_not_null())
        .order((note_versions::occurred_at.desc(), notes::id.desc()))
        .select((note_versions::next_visit_on, notes::id, notes::author_id))
        .first(conn)
        .optional()?;
    Ok(row.and_then(|(day, id, author)| day.map(|d| (d, id, author))))
}

/// One patient's week, sorted.
pub fn patient_week(conn: &mut DbConn, patient_id: &str, week: Week) -> AppResult<Vec<Item>> {
    let mut items = Vec::new();
    for plan in visits::list(conn, patient_id, false, week.first)? {
        for day in week.days().filter(|d| plan.visits_on(*d)) {
            let starts_at = jst_instant(day, plan.start_minute);
            items.push(Item {
                kind: WeekItemKind::Visit,
                source_id: plan.id.clone(),
                patient_id: patient_id.to_string(),
                date: day,
                starts_at: Some(starts_at),
                ends_at: Some(starts_at + Duration::minutes(i64::from(plan.duration_minutes))),
                label: plan.service_type_label,
                service_type: Some(plan.service_type),
                appointment_kind: None,
                status: None,
                user_ids: vec![plan.user_id.clone()],
                place: None,
                video_url: None,
            });
        }
    }
    for a in appointments::list(conn, patient_id, Some(week.window()), false)? {
        items.push(Item {
            kind: WeekItemKind::Appointment,
            source_id: a.id,
            patient_id: patient_id.to_string(),
            date: jst_day(a.starts_at),
            starts_at: Some(a.starts_at),
            ends_at: Some(a.ends_at),
            label: a.kind_label,
            service_type: a.service_type,
            appointment_kind: Some(a.kind),
            status: Some(a.status),
            user_ids: a.attendees,
            place: a.place,
            video_url: a.video_url,
        });
    }
    if let Some((day, note_id, author)) = next_visit(conn, patient_id)? {
        if (week.first..=week.last).contains(&day) {
            items.push(Item {
                kind: WeekItemKind::NextVisit,
                source_id: note_id,
                patient_id: patient_id.to_string(),
                date: day,
                starts_at: None,
                ends_at: None,
                label: WeekItemKind::NextVisit.label(crate::error::Lang::Ja),
                service_type: Some(ServiceType::HomeMedicalCare),
                appointment_kind: None,
                status: None,
                user_ids: vec![author],
                place: None,
                video_url: None,
            });
        }
    }
    items.sort_by_cached_key(Item::position);
    Ok(items)
}

/// A page of `user_id`'s week across `patient_ids`: the items they visit or take part in,
/// after the cursor's position.
pub fn member_week(
    conn: &mut DbConn,
    user_id: &str,
    patient_ids: &[String],
    week: Week,
    paging: &api::PageQuery,
) -> AppResult<api::Page<Item>> {
    let limit = paging.limit()?;
    let after = paging.after()?;
    let mut items = Vec::new();
    for patient_id in patient_ids {
        items.extend(
            patient_week(conn, patient_id, week)?.into_iter().filter(|i| i.user_ids.iter().any(|u| u == user_id)),
        );
    }
    items.sort_by_cached_key(Item::position);
    if let Some(after) = after {
        items.retain(|i| i.position() > after);
    }
    items.truncate(limit as usize + 1);
    Ok(api::page(items, limit, Item::position))
}
