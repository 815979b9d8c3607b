//! `/discharge-cases/{id}/conferences`: the discharge conference, recorded and listed.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use super::{check_not_future, created, utc, Items};
use crate::access::{self, Need};
use crate::api::{Check, Id, Json};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::db::{new_id, now};
use crate::discharge::conferences::{self, Attendee, AttendeeRow, Conference};
use crate::discharge::tasks;
use crate::discharge::workflow::require_active;
use crate::error::AppResult;
use crate::idempotency::{self, Answer};
use crate::state::AppState;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewConference {
    pub held_at: DateTime<FixedOffset>,
    pub place: Option<String>,
    #[serde(default)]
    pub video: bool,
    pub attendees: Vec<Attendee>,
    pub content: String,
}

/// `POST /discharge-cases/{id}/conferences`: records the discharge conference and completes the
/// case's `joint_discharge_conference` task if it is open. Offline-safe with `Idempotency-Key`.
pub async fn record_conference(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<NewConference>,
) -> AppResult<HttpResponse> {
    let case_id = path.into_inner().into_string();
    let key = idempotency::key_from(&req)?;
    let body = body.into_inner();
    let fingerprint = idempotency::fingerprint("POST", req.path(), &body);
    let held_at = utc(body.held_at);
    let mut check = Check::new();
    check_not_future(&mut check, "held_at", held_at);
    check.line("place", body.place.as_deref(), 200);
    if !body.video && body.place.as_deref().is_none_or(|p| p.trim().is_empty()) {
        check.push(
            "place",
            "place_or_video",
            "開催場所 place を入力するか、ビデオ通話なら video を true にしてください。",
            "Give the place, or set video to true for a video conference.",
        );
    }
    if body.attendees.is_empty() || body.attendees.len() > 50 {
        check.push("attendees", "count", "参加者を1〜50人記録してください。", "Record 1 to 50 attendees.");
    }
    for (i, a) in body.attendees.iter().enumerate() {
        check.required_line(&format!("attendees[{i}].name"), &a.name, 100);
        check.line(&format!("attendees[{i}].organization"), a.organization.as_deref(), 200);
    }
    check.text("content", &body.content, 10_000);
    check.finish()?;
    let location = format!("/api/v1/discharge-cases/{case_id}/conferences");
    let answer = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (case, _) = access::case(conn, &me, &case_id, Need::Write)?;
            let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
                require_active(&case)?;
                let conference = Conference {
                    id: new_id(),
                    case_id: case.id.clone(),
                    patient_id: case.patient_id.clone(),
                    held_at,
                    place: body.place.filter(|p| !p.trim().is_empty()),
                    video: body.video,
                    content: body.content,
                    recorded_by: me.id.clone(),
                    created_at: now(),
                };
                let attendees: Vec<AttendeeRow> = body
                    .attendees
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| AttendeeRow {
                        id: new_id(),
                        conference_id: conference.id.clone(),
                        patient_id: case.patient_id.clone(),
                        position: i as i32,
                        name: a.name,
                        profession: a.profession,
                        organization: a.organization,
                    })
                    .collect();
                conferences::insert(conn, &conference, attendees)?;
                audit::record(
                    conn,
                    &me,
                    Event::new(
                        Action::Create,
                        Resource::DischargeConference,
                        Some(&conference.id),
                        Some(&case.patient_id),
                    ),
                )?;
                if let Some(task_id) =
                    tasks::complete_open_from_template(conn, &case.id, conferences::CONFERENCE_TEMPLATE_KEY, &me.id)?
                {
                    audit::record(
                        conn,
                        &me,
                        Event::new(Action::Update, Resource::DischargeTask, Some(&task_id), Some(&case.patient_id))
                            .detail("completed by conference"),
                    )?;
                }
                Answer::json(StatusCode::CREATED, &conferences::view(conn, conference)?)
            })?;
            answer.audit_replay(conn, &me, Resource::DischargeConference, &case.patient_id)?;
            Ok(answer)
        })
        .await?;
    Ok(created(answer, location))
}

/// `GET /discharge-cases/{id}/conferences`.
pub async fn list_conferences(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
) -> AppResult<HttpResponse> {
    let case_id = path.into_inner().into_string();
    let items = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (case, _) = access::case(conn, &me, &case_id, Need::Read)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::DischargeConference, None, Some(&case.patient_id)).detail("list"),
            )?;
            conferences::for_case(conn, &case.id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}
