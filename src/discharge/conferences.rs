//! The discharge conference (退院前カンファレンス / 退院時共同指導): when and where it was held
//! (or that it was held by video), who attended from which profession and organisation, and
//! what was discussed — what 退院時共同指導料 and 退院・退所加算 require on record.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api;
use crate::db::schema::{discharge_conference_attendees, discharge_conferences};
use crate::db::DbConn;
use crate::error::{AppError, AppResult};
use crate::vocab::Profession;

/// The template whose task recording a conference completes.
pub const CONFERENCE_TEMPLATE_KEY: &str = "joint_discharge_conference";

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = discharge_conferences)]
pub struct Conference {
    pub id: String,
    pub case_id: String,
    pub patient_id: String,
    pub held_at: NaiveDateTime,
    pub place: Option<String>,
    pub video: bool,
    pub content: String,
    pub recorded_by: String,
    pub created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = discharge_conference_attendees)]
pub struct AttendeeRow {
    pub id: String,
    pub conference_id: String,
    pub patient_id: String,
    pub position: i32,
    pub name: String,
    pub profession: Profession,
    pub organization: Option<String>,
}

/// One person at the conference, as sent and as shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attendee {
    pub name: String,
    pub profession: Profession,
    pub organization: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ConferenceView {
    pub id: String,
    pub case_id: String,
    pub patient_id: String,
    #[serde(serialize_with = "api::utc")]
    pub held_at: NaiveDateTime,
    pub place: Option<String>,
    pub video: bool,
    pub attendees: Vec<Attendee>,
    pub content: String,
    pub recorded_by: String,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, conference: &Conference, attendees: Vec<AttendeeRow>) -> AppResult<()> {
    diesel::insert_into(discharge_conferences::table).values(conference).execute(conn)?;
    // A batch insert is spelled per backend: the multi-backend connection has no batch form.
    crate::per_backend!(conn, |c| diesel::insert_into(discharge_conference_attendees::table)
        .values(attendees)
        .execute(c))?;
    Ok(())
}

/// A case's conferences, earliest first, with their attendees in the order recorded.
pub fn for_case(conn: &mut DbConn, case_id: &str) -> AppResult<Vec<ConferenceView>> {
    let rows: Vec<Conference> = discharge_conferences::table
        .filter(discharge_conferences::case_id.eq(case_id))
        .order((discharge_conferences::held_at.asc(), discharge_conferences::id.asc()))
        .select(Conference::as_select())
        .load(conn)?;
    views(conn, rows)
}

fn views(conn: &mut DbConn, rows: Vec<Conference>) -> AppResult<Vec<ConferenceView>> {
    let ids: Vec<String> = rows.iter().map(|c| c.id.clone()).collect();
    let attendees: Vec<AttendeeRow> = discharge_conference_attendees::table
        .filter(discharge_conference_attendees::conference_id.eq_any(&ids))
        .order((discharge_conference_attendees::conference_id.asc(), discharge_conference_attendees::position.asc()))
        .select(AttendeeRow::as_select())
        .load(conn)?;
    let mut by_conference: HashMap<String, Vec<Attendee>> = HashMap::new();
    for a in attendees {
        by_conference.entry(a.conference_id).or_default().push(Attendee {
            name: a.name,
            profession: a.profession,
            organization: a.organization,
        });
    }
    Ok(rows
        .into_iter()
        .map(|c| ConferenceView {
            attendees: by_conference.remove(&c.id).unwrap_or_default(),
            id: c.id,
            case_id: c.case_id,
            patient_id: c.patient_id,
            held_at: c.held_at,
            place: c.place,
            video: c.video,
            content: c.content,
            recorded_by: c.recorded_by,
            created_at: c.created_at,
        })
        .collect())
}

pub fn view(conn: &mut DbConn, conference: Conference) -> AppResult<ConferenceView> {
    views(conn, vec![conference])?.pop().ok_or_else(|| AppError::internal("conference view missing"))
}
