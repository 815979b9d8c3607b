//! `/patients/{id}/allergies` and `/allergies/{id}` (with its versions and entered-in-error).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::{created, EnteredInError, Versions};
use crate::access::{self, Need};
use crate::api::{self, Check, Id, Json};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::care::allergies::{self, Entry, View};
use crate::error::AppResult;
use crate::idempotency::{self, Answer};
use crate::state::AppState;

#[derive(Serialize)]
struct List {
    patient_id: String,
    items: Vec<View>,
}

/// `GET /patients/{id}/allergies`: the allergies and contraindications as they stand (entered-in-error
/// entries left out).
pub async fn list(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let list = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Read, Resource::Allergy)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::Allergy, None, Some(&patient_id)))?;
            let items = allergies::list(conn, &patient_id, false)?;
            Ok(List { patient_id, items })
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// `POST /patients/{id}/allergies`: a member of the team records an allergy or contraindication.
/// Offline-safe with `Idempotency-Key`.
pub async fn add(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<Entry>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let entry = body.into_inner();
    let key = idempotency::key_from(&req)?;
    let fingerprint = idempotency::fingerprint("POST", req.path(), &entry);
    let answer = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Write, Resource::Allergy)?;
            let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
                let mut check = Check::new();
                entry.check(&mut check);
                check.finish()?;
                let view = allergies::add(conn, &patient_id, entry, &me.id)?;
                audit::record(
                    conn,
                    &me,
                    Event::new(Action::Create, Resource::Allergy, Some(&view.id), Some(&patient_id)),
                )?;
                Answer::json(StatusCode::CREATED, &view)
            })?;
            answer.audit_replay(conn, &me, Resource::Allergy, &patient_id)?;
            Ok(answer)
        })
        .await?;
    Ok(created(answer, "allergies"))
}

/// `GET /allergies/{id}`: the current version, with its `ETag`.
pub async fn get(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let view = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let allergy = access::allergy(conn, &me, &id, Need::Read)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::Allergy, Some(&id), Some(&allergy.patient_id)),
            )?;
            allergies::view(conn, &allergy)
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, view.version, &view))
}

/// `PUT /allergies/{id}`: a change (reaction, severity, verification …) recorded as a new version
/// of the one named by `If-Match` (428 without it, 412 when it is no longer current).
pub async fn change(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<Entry>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let entry = body.into_inner();
    let expected = api::require_if_match(&req)?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let allergy = access::allergy(conn, &me, &id, Need::Write)?;
            let mut check = Check::new();
            entry.check(&mut check);
            check.finish()?;
            let view = allergies::change(conn, &allergy, expected, entry, &me.id)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, Resource::Allergy, Some(&id), Some(&allergy.patient_id))
                    .detail(format!("version:{}", view.version)),
            )?;
            Ok(view)
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, view.version, &view))
}

/// `POST /allergies/{id}/entered-in-error`: the entry was a mistake. It stays, with every
/// version, marked entered in error with the reason; the list no longer shows it.
/// `If-Match` (optional) names the version meant.
pub async fn entered_in_error(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<EnteredInError>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let body = body.into_inner();
    let expected = api::if_match(&req)?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let allergy = access::allergy(conn, &me, &id, Need::Write)?;
            let mut check = Check::new();
            crate::care::check_reason(&mut check, &body.reason);
            check.finish()?;
            let view = allergies::mark_entered_in_error(conn, &allergy, expected, body.reason, &me.id)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, Resource::Allergy, Some(&id), Some(&allergy.patient_id))
                    .detail("entered in error"),
            )?;
            Ok(view)
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, view.version, &view))
}

/// `GET /allergies/{id}/versions`: every version, oldest first.
pub async fn versions(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let list = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let allergy = access::allergy(conn, &me, &id, Need::Read)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::Allergy, Some(&id), Some(&allergy.patient_id)).detail("versions"),
            )?;
            Ok(Versions { items: allergies::history(conn, &id)?, id })
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}
