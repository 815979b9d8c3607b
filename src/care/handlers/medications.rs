//! `/patients/{id}/medications`, `/medications/{id}` (with its versions and entered-in-error) and
//! `/patients/{id}/medication-reconciliations`: the list and the reconciliation here, the rest
//! through [`records`](super::records).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::access::{self, Need};
use crate::api::{Check, Id, Json};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::care::medications::{self, ReconciliationView, View};
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
