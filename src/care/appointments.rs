//! One-off appointments: a visit outside the plans, and the conferences of home care —
//! 退院前カンファレンス (before a discharge) and サービス担当者会議 (the care plan's service
//! meeting) — with their attendees (members of the care team), a place or a video link, and the
//! minutes as a note. Never deleted: cancelled or marked entered in error, each change a version.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::{AppointmentKind, AppointmentStatus, ServiceType, Versioned};
use crate::api::{self, Check};
use crate::audit::Resource;
use crate::db::schema::{appointment_versions as av, appointments as ap};
use crate::db::{new_id, now, truncate, DbConn};
use crate::error::{AppError, AppResult};

/// Longest appointment: a conference or a day service, not a stay.
const MAX_HOURS: i64 = 24;
const MAX_ATTENDEES: usize = 30;

/// An appointment as sent: for a new one and for each change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub kind: AppointmentKind,
    /// For a one-off visit: which service.
    pub service_type: Option<ServiceType>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub place: Option<String>,
    /// An `https://` link for a conference held by video.
    pub video_url: Option<String>,
    /// Care-team members taking part (their user ids).
    pub attendees: Vec<String>,
    /// `booked` when left out.
    pub status: Option<AppointmentStatus>,
    /// The note holding the minutes (a note of the same patient).
    pub minutes_note_id: Option<String>,
    pub note: Option<String>,
    /// Why it changed or was cancelled (optional on a new appointment).
    pub reason: Option<String>,
}

impl Entry {
    pub fn check(&self, check: &mut Check) {
        if self.ends_at <= self.starts_at || self.ends_at - self.starts_at > chrono::Duration::hours(MAX_HOURS) {
            check.push(
                "ends_at",
                "out_of_range",
                format!("ends_at は starts_at より後、{MAX_HOURS} 時間以内にしてください。"),
                format!("ends_at must be after starts_at and within {MAX_HOURS} hours of it."),
            );
        }
        if !(1900..=9998).contains(&chrono::Datelike::year(&self.starts_at)) {
            check.push(
                "starts_at",
                "out_of_range",
                "starts_at には1900年から9998年までの日時を指定してください。",
                "starts_at must be within the years 1900 to 9998.",
            );
        }
        check.line("place", self.place.as_deref(), 200);
        if let Some(url) = &self.video_url {
            let ok = url.len() <= 500
                && url.starts_with("https://")
                && url.len() > "https://".len()
                && !url.chars().any(|c| c.is_whitespace() || c.is_control() || api::is_invisible_format(c));
            if !ok {
                check.push(
                    "video_url",
                    "invalid",
                    "video_url は https:// で始まる500文字以内のURLにしてください。",
                    "video_url must be an https:// URL of at most 500 characters.",
                );
            }
        }
        let mut distinct = self.attendees.clone();
        distinct.sort();
        distinct.dedup();
        if self.attendees.is_empty()
            || self.attendees.len() > MAX_ATTENDEES
            || distinct.len() != self.attendees.len()
            || self.attendees.iter().any(|a| a.is_empty() || a.len() > 64)
        {
            check.push(
                "attendees",
                "invalid",
                format!("attendees にはチームの参加者を重複なく1人以上{MAX_ATTENDEES}人以内で指定してください。"),
                format!("attendees must name 1 to {MAX_ATTENDEES} distinct members of the team."),
            );
        }
        if self.kind == AppointmentKind::Visit && self.service_type.is_none() {
            check.push(
                "service_type",
                "required",
                "臨時の訪問には service_type を指定してください。",
                "A one-off visit needs its service_type.",
            );
        }
        check.optional_text("note", self.note.as_deref(), 2000);
        check.optional_text("reason", self.reason.as_deref(), super::REASON_MAX_CHARS);
    }
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = ap)]
pub struct Appointment {
    pub id: String,
    pub patient_id: String,
    pub version: i32,
    pub created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = av)]
pub struct Version {
    pub id: String,
    pub appointment_id: String,
    pub version: i32,
    pub patient_id: String,
    pub kind: AppointmentKind,
    pub service_type: Option<ServiceType>,
    pub starts_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
    pub place: Option<String>,
    pub video_url: Option<String>,
    pub attendees: String,
    pub status: AppointmentStatus,
    pub minutes_note_id: Option<String>,
    pub note: Option<String>,
    pub reason: Option<String>,
    pub recorded_by: String,
    pub recorded_at: NaiveDateTime,
}

impl Version {
    pub fn attendee_ids(&self) -> Vec<String> {
        serde_json::from_str(&self.attendees).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub id: String,
    pub patient_id: String,
    pub version: i32,
    pub kind: AppointmentKind,
    /// The kind's Japanese name (退院前カンファレンス …).
    pub kind_label: &'static str,
    pub service_type: Option<ServiceType>,
    pub service_type_label: Option<&'static str>,
    #[serde(serialize_with = "api::utc")]
    pub starts_at: NaiveDateTime,
    #[serde(serialize_with = "api::utc")]
    pub ends_at: NaiveDateTime,
    pub place: Option<String>,
    pub video_url: Option<String>,
    pub attendees: Vec<String>,
    pub status: AppointmentStatus,
    pub minutes_note_id: Option<String>,
    pub note: Option<String>,
    pub reason: Option<String>,
    pub recorded_by: String,
    #[serde(serialize_with = "api::utc")]
    pub recorded_at: NaiveDateTime,
}

impl View {
    fn of(v: Version) -> View {
        let attendees = v.attendee_ids();
        View {
            id: v.appointment_id,
            patient_id: v.patient_id,
            version: v.version,
            kind: v.kind,
            kind_label: v.kind.label(crate::error::Lang::Ja),
            service_type: v.service_type,
            service_type_label: v.service_type.map(|s| s.label(crate::error::Lang::Ja)),
            starts_at: v.starts_at,
            ends_at: v.ends_at,
            place: v.place,
            video_url: v.video_url,
            attendees,
            status: v.status,
            minutes_note_id: v.minutes_note_id,
            note: v.note,
            reason: v.reason,
            recorded_by: v.recorded_by,
            recorded_at: v.recorded_at,
        }
    }
}

fn version_of(a: &Appointment, number: i32, e: Entry, by: &str) -> AppResult<Version> {
    Ok(Version {
        id: new_id(),
        appointment_id: a.id.clone(),
        version: number,
        patient_id: a.patient_id.clone(),
        kind: e.kind,
        service_type: e.service_type,
        starts_at: truncate(e.starts_at.naive_utc()),
        ends_at: truncate(e.ends_at.naive_utc()),
        place: e.place,
        video_url: e.video_url,
        attendees: serde_json::to_string(&e.attendees).map_err(|e| AppError::internal(e.to_string()))?,
        status: e.status.unwrap_or(AppointmentStatus::Booked),
        minutes_note_id: e.minutes_note_id,
        note: e.note,
        reason: e.reason,
        recorded_by: by.to_string(),
        recorded_at: now(),
    })
}

fn changed(conn: &mut DbConn, patient_id: &str) -> AppResult<()> {
    crate::changes::record(conn, crate::changes::Change::Appointment { patient_id })
}

/// The minutes must be a note of the same patient (422 naming `minutes_note_id`).
fn check_minutes(conn: &mut DbConn, patient_id: &str, e: &Entry) -> AppResult<()> {
    let Some(note_id) = &e.minutes_note_id else { return Ok(()) };
    match crate::notes::find(conn, note_id)? {
        Some(n) if n.patient_id == patient_id => Ok(()),
        _ => Err(AppError::field(
            "minutes_note_id",
            "unknown_note",
            "議事録には、この患者のノートを指定してください。",
            "minutes_note_id must name a note of this patient.",
        )),
    }
}

impl Versioned for Appointment {
    type Entry = Entry;
    type View = View;
    const RESOURCE: Resource = Resource::Appointment;
    const NAME: &'static str = "appointment";
    const PATH: &'static str = "appointments";

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
        Some(("attendees", entry.attendees.clone()))
    }

    fn scheduled_now(&self, conn: &mut DbConn) -> AppResult<Vec<String>> {
        Ok(current(conn, self)?.attendee_ids())
    }

    fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<Appointment>> {
        Ok(ap::table.find(id).select(Appointment::as_select()).first(conn).optional()?)
    }

    fn add(conn: &mut DbConn, patient_id: &str, entry: Entry, by: &str) -> AppResult<View> {
        check_minutes(conn, patient_id, &entry)?;
        if matches!(entry.status, Some(AppointmentStatus::Cancelled | AppointmentStatus::EnteredInError)) {
            return Err(AppError::field(
                "status",
                "invalid",
                "新しい予定は booked か fulfilled で登録してください。",
                "A new appointment is booked or fulfilled.",
            ));
        }
        let head = Appointment { id: new_id(), patient_id: patient_id.to_string(), version: 1, created_at: now() };
        let v = version_of(&head, 1, entry, by)?;
        diesel::insert_into(ap::table).values(&head).execute(conn)?;
        diesel::insert_into(av::table).values(&v).execute(conn)?;
        changed(conn, patient_id)?;
        Ok(View::of(v))
    }

    /// A change — a new time, the minutes, a cancellation — as a new version of the one named by
    /// `expected` (412 when stale). A cancelled appointment, or one entered in error, stays as it is
    /// (409): book a new one.
    fn change(&self, conn: &mut DbConn, expected: i32, entry: Entry, by: &str) -> AppResult<View> {
        if matches!(current(conn, self)?.status, AppointmentStatus::Cancelled | AppointmentStatus::EnteredInError) {
            return Err(AppError::conflict(
                "この予定は中止または入力誤りとして記録されています。新しい予定を登録してください。",
                "This appointment was cancelled or marked entered in error: book a new one.",
            ));
        }
        check_minutes(conn, &self.patient_id, &entry)?;
        let moved = diesel::update(ap::table.filter(ap::id.eq(&self.id)).filter(ap::version.eq(expected)))
            .set(ap::version.eq(expected + 1))
            .execute(conn)?;
        let v = version_of(self, super::moved_to(moved, expected)?, entry, by)?;
        diesel::insert_into(av::table).values(&v).execute(conn)?;
        changed(conn, &self.patient_id)?;
        Ok(View::of(v))
    }

    fn view(&self, conn: &mut DbConn) -> AppResult<View> {
        Ok(View::of(current(conn, self)?))
    }

    /// Every version of an appointment, oldest first.
    fn history(conn: &mut DbConn, appointment_id: &str) -> AppResult<Vec<View>> {
        let rows: Vec<Version> = av::table
            .filter(av::appointment_id.eq(appointment_id))
            .order(av::version.asc())
            .select(Version::as_select())
            .load(conn)?;
        Ok(rows.into_iter().map(View::of).collect())
    }
}

pub fn current(conn: &mut DbConn, a: &Appointment) -> AppResult<Version> {
    Ok(av::table
        .filter(av::appointment_id.eq(&a.id))
        .filter(av::version.eq(a.version))
        .select(Version::as_select())
        .first(conn)?)
}

/// The patient's appointments (current versions), by start; those starting in `[from, until)`
/// when a window is given. Entered-in-error ones only when asked for.
pub fn list(
    conn: &mut DbConn,
    patient_id: &str,
    window: Option<(NaiveDateTime, NaiveDateTime)>,
    with_entered_in_error: bool,
) -> AppResult<Vec<View>> {
    let mut q = av::table
        .inner_join(ap::table.on(ap::id.eq(av::appointment_id).and(ap::version.eq(av::version))))
        .filter(ap::patient_id.eq(patient_id))
        .into_boxed();
    if let Some((from, until)) = window {
        q = q.filter(av::starts_at.ge(from)).filter(av::starts_at.lt(until));
    }
    if !with_entered_in_error {
        q = q.filter(av::status.ne(AppointmentStatus::EnteredInError));
    }
    let rows: Vec<Version> = q.order((av::starts_at.asc(), ap::id.asc())).select(Version::as_select()).load(conn)?;
    Ok(rows.into_iter().map(View::of).collect())
}
