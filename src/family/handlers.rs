//! `/patients/{id}/family-messages`: the family channel.

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};

use crate::access;
use crate::api::{self, Check, Id, Json, PageQuery};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::error::AppResult;
use crate::idempotency::{self, Answer};
use crate::state::AppState;

/// `GET /patients/{id}/family-messages`: the channel, newest first.
pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
    query: api::Query<PageQuery>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let (limit, after) = (query.limit()?, query.after()?);
    let page = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let (patient, _) = access::family_channel(conn, &me, &patient_id)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::FamilyMessage, None, Some(&patient.id)))?;
            let rows = super::page(conn, &patient.id, after.as_deref(), limit)?;
            Ok(api::page(rows, limit, super::position))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `POST /patients/{id}/family-messages/{message_id}/entered-in-error`: its writer withdraws a
/// message sent by mistake, with a reason; it stays readable, marked.
pub async fn entered_in_error(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<(Id, Id)>,
    body: Json<super::MarkInError>,
) -> AppResult<HttpResponse> {
    let (patient_id, message_id) = path.into_inner();
    let (patient_id, message_id) = (patient_id.into_string(), message_id.into_string());
    let reason = body.into_inner().reason;
    let mut check = Check::new();
    check.text("reason", &reason, 500);
    check.finish()?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let message = access::family_message_in_error(conn, &me, &patient_id, &message_id)?;
            super::mark_in_error(conn, &me, &message, &reason)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `POST /patients/{id}/family-messages`: a participant or a member writes; with `raise_flag`
/// the team is alerted. Retry-safe with `Idempotency-Key`.
pub async fn create(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<super::Post>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let body = body.into_inner();
    let mut check = Check::new();
    check.text("text", &body.text, super::MAX_CHARS);
    check.finish()?;
    let key = idempotency::key_from(&req)?;
    let fingerprint = idempotency::fingerprint("POST", req.path(), &body);
    let (mailer, limits) = (state.mail.clone(), state.config.escalation_limits());
    let answer = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (patient, _) = access::family_channel(conn, &me, &patient_id)?;
            let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
                let view = super::post(conn, &me, &mailer, &limits, &patient, body)?;
                Answer::json(StatusCode::CREATED, &view)
            })?;
            answer.audit_replay(conn, &me, Resource::FamilyMessage, &patient.id)?;
            Ok(answer)
        })
        .await?;
    let builder = answer.builder();
    Ok(answer.finish(builder))
}
