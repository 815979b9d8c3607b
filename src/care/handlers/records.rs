//! The routes every versioned care record has — medications, allergies, visit plans and
//! appointments: `POST /patients/{id}/<kind>` (offline-safe with `Idempotency-Key`),
//! `GET /<kind>/{id}` with its `ETag`, `PUT /<kind>/{id}` under `If-Match`, `GET /<kind>/{id}/versions`
//! and, where a kind has it, `POST /<kind>/{id}/entered-in-error`. The flow — find the record
//! through `access`, check the body, write, audit, answer — is written once here, over
//! [`Versioned`]; each kind's own checks and queries are its domain module's.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{created, EnteredInError, Versions};
use crate::access::{self, Need};
use crate::api::{self, Check, Id, Json};
use crate::audit::{self, Action, Event};
use crate::auth::Bearer;
use crate::care::{Retractable, Versioned};
use crate::error::AppResult;
use crate::idempotency::{self, Answer};
use crate::state::AppState;

/// `POST /patients/{id}/<kind>`: a member of the team adds a record. Offline-safe with
/// `Idempotency-Key`.
pub async fn add<K: Versioned>(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<K::Entry>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let entry = body.into_inner();
    let key = idempotency::key_from(&req)?;
    let fingerprint = idempotency::fingerprint("POST", req.path(), &entry);
    let answer = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Write, K::RESOURCE)?;
            let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
                let mut check = Check::new();
                K::check(&entry, &mut check);
                check.finish()?;
                access::care_record_write::<K>(conn, &me, &patient_id, None, &entry)?;
                let view = K::add(conn, &patient_id, entry, &me.id)?;
                audit::record(
                    conn,
                    &me,
                    Event::new(Action::Create, K::RESOURCE, Some(K::view_id(&view)), Some(&patient_id)),
                )?;
                Answer::json(StatusCode::CREATED, &view)
            })?;
            answer.audit_replay(conn, &me, K::RESOURCE, &patient_id)?;
            Ok(answer)
        })
        .await?;
    Ok(created(answer, K::PATH))
}

/// `GET /<kind>/{id}`: the current version, with its `ETag`.
pub async fn get<K: Versioned>(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let view = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let head: K = access::care_record(conn, &me, &id, Need::Read)?;
            audit::record(conn, &me, Event::new(Action::Read, K::RESOURCE, Some(&id), Some(head.patient_id())))?;
            head.view(conn)
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, K::view_version(&view), &view))
}

/// `PUT /<kind>/{id}`: a change recorded as a new version of the one named by `If-Match` (428
/// without it, 412 when it is no longer current).
pub async fn change<K: Versioned>(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<K::Entry>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let entry = body.into_inner();
    let expected = api::require_if_match(&req)?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let head: K = access::care_record(conn, &me, &id, Need::Write)?;
            let mut check = Check::new();
            K::check(&entry, &mut check);
            check.finish()?;
            access::care_record_write(conn, &me, head.patient_id(), Some(&head), &entry)?;
            let view = head.change(conn, expected, entry, &me.id)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, K::RESOURCE, Some(&id), Some(head.patient_id()))
                    .detail(format!("version:{}", K::view_version(&view))),
            )?;
            Ok(view)
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, K::view_version(&view), &view))
}

/// `POST /<kind>/{id}/entered-in-error`: the record was a mistake. It stays, with every version,
/// marked entered in error with the reason; the list no longer shows it. `If-Match` (optional)
/// names the version meant.
pub async fn entered_in_error<K: Retractable>(
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
            let head: K = access::care_record(conn, &me, &id, Need::Write)?;
            let mut check = Check::new();
            crate::care::check_reason(&mut check, &body.reason);
            check.finish()?;
            let view = head.mark_entered_in_error(conn, expected, body.reason, &me.id)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, K::RESOURCE, Some(&id), Some(head.patient_id())).detail("entered in error"),
            )?;
            Ok(view)
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, K::view_version(&view), &view))
}

/// `GET /<kind>/{id}/versions`: every version, oldest first.
pub async fn versions<K: Versioned>(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let list = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let head: K = access::care_record(conn, &me, &id, Need::Read)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, K::RESOURCE, Some(&id), Some(head.patient_id())).detail("versions"),
            )?;
            Ok(Versions { items: K::history(conn, &id)?, id })
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}
