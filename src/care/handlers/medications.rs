//! `/patients/{id}/medications`, `/medications/{id}` (with its versions and entered-in-error) and
//! `/patients/{id}/medication-reconciliations`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{created, EnteredInError, Versions};
use crate::access::{self, Need};
use crate::api::{self, Check, Id, Json};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::care::medications::{self, Entry, ReconciliationView, View};
use crate::error::AppResult;
use crate::idempotency::{self, Answer};
use crate::state::AppState;

#[derive(Serialize)]
struct List {
    patient_id: String,
    items: Vec<View>,
    /// When a pharmacist last checked the whole list.
    last_reconciliation: Option<ReconciliationView>,
}

/// `GET /patients/{id}/medications`: the list as it stands (entered-in-error entries left out).
pub async fn list(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let list = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Read, Resource::Medication)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::Medication, None, Some(&patient_id)))?;
            let items = medications::list(conn, &patient_id, false)?;
            let last_reconciliation = medications::last_reconciliation(conn, &patient_id)?;
            Ok(List { patient_id, items, last_reconciliation })
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// `POST /patients/{id}/medications`: a member of the team adds a drug to the list.
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
            access::patient(conn, &me, &patient_id, Need::Write, Resource::Medication)?;
            let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
                let mut check = Check::new();
                entry.check(&mut check);
                check.finish()?;
                let view = medications::add(conn, &patient_id, entry, &me.id)?;
                audit::record(
                    conn,
                    &me,
                    Event::new(Action::Create, Resource::Medication, Some(&view.id), Some(&patient_id)),
                )?;
                Answer::json(StatusCode::CREATED, &view)
            })?;
            answer.audit_replay(conn, &me, Resource::Medication, &patient_id)?;
            Ok(answer)
        })
        .await?;
    Ok(created(answer, "medications"))
}

/// `GET /medications/{id}`: the current version, with its `ETag`.
pub async fn get(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let view = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let medication = access::medication(conn, &me, &id, Need::Read)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::Medication, Some(&id), Some(&medication.patient_id)),
            )?;
            medications::view(conn, &medication)
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, view.version, &view))
}

/// `PUT /medications/{id}`: a change of dose, timing, dates, status … recorded as a new version
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
            let medication = access::medication(conn, &me, &id, Need::Write)?;
            let mut check = Check::new();
            entry.check(&mut check);
            check.finish()?;
            let view = medications::change(conn, &medication, expected, entry, &me.id)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, Resource::Medication, Some(&id), Some(&medication.patient_id))
                    .detail(format!("version:{}", view.version)),
            )?;
            Ok(view)
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, view.version, &view))
}

/// `POST /medications/{id}/entered-in-error`: the entry was a mistake. It stays, with every
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
            let medication = access::medication(conn, &me, &id, Need::Write)?;
            let mut check = Check::new();
            crate::care::check_reason(&mut check, &body.reason);
            check.finish()?;
            let view = medications::mark_entered_in_error(conn, &medication, expected, body.reason, &me.id)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, Resource::Medication, Some(&id), Some(&medication.patient_id))
                    .detail("entered in error"),
            )?;
            Ok(view)
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, view.version, &view))
}

/// `GET /medications/{id}/versions`: every version, oldest first.
pub async fn versions(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let list = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let medication = access::medication(conn, &me, &id, Need::Read)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::Medication, Some(&id), Some(&medication.patient_id))
                    .detail("versions"),
            )?;
            Ok(Versions { items: medications::history(conn, &id)?, id })
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconcile {
    /// The day the pharmacist checked the list (not in the future).
    pub checked_on: NaiveDate,
    pub comment: Option<String>,
}

/// `POST /patients/{id}/medication-reconciliations`: a pharmacist on the team marks the list, as
/// it stands, checked on a date. Offline-safe with `Idempotency-Key`.
pub async fn reconcile(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<Reconcile>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let body = body.into_inner();
    let key = idempotency::key_from(&req)?;
    let fingerprint = idempotency::fingerprint("POST", req.path(), &body);
    let answer = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::reconcile_medications(conn, &me, &patient_id)?;
            let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
                let mut check = Check::new();
                crate::care::check_not_future(&mut check, "checked_on", Some(body.checked_on));
                check.optional_text("comment", body.comment.as_deref(), 1000);
                check.finish()?;
                let view = medications::reconcile(conn, &patient_id, body.checked_on, body.comment, &me.id)?;
                audit::record(
                    conn,
                    &me,
                    Event::new(Action::Create, Resource::Medication, Some(&view.id), Some(&patient_id))
                        .detail("reconciliation"),
                )?;
                Answer::json(StatusCode::CREATED, &view)
            })?;
            answer.audit_replay(conn, &me, Resource::Medication, &patient_id)?;
            Ok(answer)
        })
        .await?;
    let res = answer.builder();
    Ok(answer.finish(res))
}
