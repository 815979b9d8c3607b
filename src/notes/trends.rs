//! The vital-sign trends behind `GET /patients/{id}/vitals`: each vital sign's series over a
//! period, and the NEWS2 series, from the current versions of the patient's notes — what a
//! client needs to draw a chart.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::news2::Band;
use super::vitals::Consciousness;
use super::{current_notes, Version};
use crate::api;
use crate::db::schema::note_versions;
use crate::db::DbConn;
use crate::error::AppResult;

/// The period when `since` is not given: this many days before `until` (or now).
pub const DEFAULT_DAYS: i64 = 30;
/// The longest period one request may ask for.
pub const MAX_DAYS: i64 = 366;
/// The most notes one answer covers; beyond it the earliest are left out (`truncated`).
pub const MAX_NOTES: i64 = 5_000;

/// One measurement: when, the value, and the note it was recorded on.
#[derive(Debug, Serialize)]
pub struct Point<T: Serialize> {
    #[serde(serialize_with = "api::utc")]
    pub at: NaiveDateTime,
    pub value: T,
    pub note_id: String,
}

/// One NEWS2 score (decision support, never a diagnosis).
#[derive(Debug, Serialize)]
pub struct News2Point {
    #[serde(serialize_with = "api::utc")]
    pub at: NaiveDateTime,
    pub total: i32,
    pub band: Band,
    pub partial: bool,
    pub note_id: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Series {
    pub temperature: Vec<Point<f64>>,
    pub systolic_bp: Vec<Point<i32>>,
    pub diastolic_bp: Vec<Point<i32>>,
    pub pulse: Vec<Point<i32>>,
    pub respiratory_rate: Vec<Point<i32>>,
    pub spo2: Vec<Point<i32>>,
    pub on_oxygen: Vec<Point<bool>>,
    pub consciousness: Vec<Point<Consciousness>>,
    pub news2: Vec<News2Point>,
}

#[derive(Debug, Serialize)]
pub struct Trend {
    pub patient_id: String,
    #[serde(serialize_with = "api::utc")]
    pub since: NaiveDateTime,
    #[serde(serialize_with = "api::utc_opt")]
    pub until: Option<NaiveDateTime>,
    /// True when the period holds more than `MAX_NOTES` notes with vital signs and the earliest
    /// were left out.
    pub truncated: bool,
    pub series: Series,
}

/// Current versions with vital signs in `[since, until)`, oldest first; at most `MAX_NOTES`
/// (the latest), and whether more were left out.
pub fn versions_with_vitals(
    conn: &mut DbConn,
    patient_id: &str,
    since: NaiveDateTime,
    until: Option<NaiveDateTime>,
) -> AppResult<(Vec<Version>, bool)> {
    let mut q = current_notes!()
        .filter(note_versions::patient_id.eq(patient_id.to_string()))
        .filter(note_versions::news2_total.is_not_null())
        .filter(note_versions::occurred_at.ge(since))
        .into_boxed();
    if let Some(u) = until {
        q = q.filter(note_versions::occurred_at.lt(u));
    }
    let mut rows: Vec<Version> = q
        .order((note_versions::occurred_at.desc(), note_versions::note_id.desc()))
        .limit(MAX_NOTES + 1)
        .select(Version::as_select())
        .load(conn)?;
    let truncated = rows.len() as i64 > MAX_NOTES;
    rows.truncate(MAX_NOTES as usize);
    rows.reverse();
    Ok((rows, truncated))
}

/// The series of each parameter from versions in time order.
pub fn series(rows: &[Version]) -> Series {
    fn push<T: Serialize>(to: &mut Vec<Point<T>>, v: &Version, value: Option<T>) {
        if let Some(value) = value {
            to.push(Point { at: v.occurred_at, value, note_id: v.note_id.clone() });
        }
    }
    let mut s = Series::default();
    for v in rows {
        push(&mut s.temperature, v, v.temperature);
        push(&mut s.systolic_bp, v, v.systolic_bp);
        push(&mut s.diastolic_bp, v, v.diastolic_bp);
        push(&mut s.pulse, v, v.pulse);
        push(&mut s.respiratory_rate, v, v.respiratory_rate);
        push(&mut s.spo2, v, v.spo2);
        push(&mut s.on_oxygen, v, v.on_oxygen);
        push(&mut s.consciousness, v, v.consciousness);
        if let (Some(total), Some(band), Some(partial)) = (v.news2_total, v.news2_band, v.news2_partial) {
            s.news2.push(News2Point { at: v.occurred_at, total, band, partial, note_id: v.note_id.clone() });
        }
    }
    s
}

/// The patient's vital-sign series over `[since, until)`.
pub fn trend(
    conn: &mut DbConn,
    patient_id: String,
    since: NaiveDateTime,
    until: Option<NaiveDateTime>,
) -> AppResult<Trend> {
    let (rows, truncated) = versions_with_vitals(conn, &patient_id, since, until)?;
    Ok(Trend { patient_id, since, until, truncated, series: series(&rows) })
}
