//! `/patients/{id}/flags`, `/flags/{id}`, acknowledge, resolve and `/me/flags`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::{Flag, FlagView};
use crate::access::{self, Need};
use crate::api::{Check, Items, Json};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::{Bearer, CurrentUser};
use crate::db::{now, DbConn};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::vocab::{FlagSeverity, FlagSource, FlagStatus};

/// The answer after a step of `flag` (`moved` tells whether it happened): 409 when the flag was
/// not in a state that allows the step; else the step is audited and the flag shown as it is now.
fn moved_on(conn: &mut DbConn, me: &CurrentUser, flag: Flag, moved: bool, step: &str) -> AppResult<FlagView> {
    if !moved {
        return Err(super::not_open());
    }
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::Flag, Some(&flag.id), Some(&flag.patient_id)).detail(step),
    )?;
    let flag = super::find(conn, &flag.id)?.ok_or_else(AppError::not_found)?;
    super::view(conn, flag)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaiseFlag {
    pub severity: FlagSeverity,
    pub reason: String,
}

/// `POST /patients/{id}/flags`: a team member raises a deterioration flag.
pub async fn raise(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
    body: Json<RaiseFlag>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let body = body.into_inner();
    let mut check = Check::new();
    check.text("reason", &body.reason, 2000);
    check.finish()?;
    let limits = state.config.escalation_limits();
    let mailer = state.mail.clone();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let patient = access::raise_flag(conn, &me, &patient_id)?;
            let (severity, source) = (body.severity, FlagSource::Manual);
            let flag = super::alerts::raise(conn, &me, &mailer, &limits, &patient, severity, source, body.reason)?;
            super::view(conn, flag)
        })
        .await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub status: Option<FlagStatus>,
}

/// `GET /patients/{id}/flags`: the patient's flags, newest first.
pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
    query: crate::api::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let status = query.into_inner().status;
    let items = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Read, Resource::Flag)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::Flag, None, Some(&patient_id)))?;
            super::list_for_patient(conn, &patient_id, status)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Items::of(items)))
}

/// `GET /flags/{id}`: a flag of a patient outside the caller's scope is 404 like a missing one,
/// and both attempts are audited (`access::flag`).
pub async fn get(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (flag, _) = access::flag(conn, &me, &id, Need::Read)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::Flag, Some(&id), Some(&flag.patient_id)))?;
            super::view(conn, flag)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acknowledge {
    pub note: Option<String>,
}

/// `POST /flags/{id}/acknowledge`: someone on the team has seen it and is acting; escalation stops.
pub async fn acknowledge(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
    body: Json<Acknowledge>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let note = body.into_inner().note;
    let mut check = Check::new();
    check.optional_text("note", note.as_deref(), 2000);
    check.finish()?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let flag = access::flag_to_act_on(conn, &me, &id)?;
            let moved = super::acknowledge(conn, &id, &me.id, note.as_deref(), now())?;
            moved_on(conn, &me, flag, moved, "acknowledged")
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    pub note: String,
    /// The flag should never have been raised (FHIR Flag `entered-in-error`).
    #[serde(default)]
    pub entered_in_error: bool,
}

/// `POST /flags/{id}/resolve`: closes an open flag, with a note.
pub async fn resolve(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
    body: Json<Resolve>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let body = body.into_inner();
    let mut check = Check::new();
    check.text("note", &body.note, 2000);
    check.finish()?;
    let outcome = if body.entered_in_error { FlagStatus::EnteredInError } else { FlagStatus::Resolved };
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let flag = access::flag_to_act_on(conn, &me, &id)?;
            let moved = super::resolve(conn, &id, &me.id, &body.note, outcome, now())?;
            moved_on(conn, &me, flag, moved, outcome.as_str())
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /me/flags`: open flags of my patients, most severe first.
pub async fn mine(state: web::Data<AppState>, bearer: Bearer) -> AppResult<HttpResponse> {
    let items = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let items = super::open_for_member(conn, &me.id)?;
            let reads = items
                .iter()
                .map(|f| Event::new(Action::Read, Resource::Flag, Some(&f.id), Some(&f.patient_id)))
                .collect();
            audit::record_all(conn, &me, reads)?;
            Ok(items)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Items::of(items)))
}
