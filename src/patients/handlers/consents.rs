//! `/patients/{id}/consents` and `/patients/{id}/consents/{consent_id}/revoke`.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::access::{self, Need};
use crate::api::{Check, Id, Json};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::error::AppResult;
use crate::patients::consents::{self, Consent, RecordConsent, RevokeConsent};
use crate::patients::today_jst;
use crate::state::AppState;

#[derive(Serialize)]
struct ConsentList {
    items: Vec<Consent>,
}

/// `GET /patients/{id}/consents`: every consent record, newest first.
pub async fn list(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let items = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::ReadConsents, Resource::Consent)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::Consent, None, Some(&patient_id)))?;
            consents::list(conn, &patient_id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ConsentList { items }))
}

/// `POST /patients/{id}/consents`: the team member who obtained consent records it.
pub async fn create(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
    body: Json<RecordConsent>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let body = body.into_inner();
    let mut check = Check::new();
    check.optional_text("note", body.note.as_deref(), 2000);
    if body.obtained_on > today_jst() {
        check.push("obtained_on", "in_future", "同意を得た日が未来になっています。", "obtained_on is in the future.");
    }
    check.finish()?;
    let consent = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Write, Resource::Consent)?;
            consents::record(conn, &me, &patient_id, body)
        })
        .await?;
    Ok(HttpResponse::Created().json(consent))
}

/// `POST /patients/{id}/consents/{consent_id}/revoke`.
pub async fn revoke(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<(Id, Id)>,
    body: Json<RevokeConsent>,
) -> AppResult<HttpResponse> {
    let (patient_id, consent_id) = path.into_inner();
    let (patient_id, consent_id) = (patient_id.into_string(), consent_id.into_string());
    let reason = body.into_inner().reason;
    let mut check = Check::new();
    check.text("reason", &reason, 1000);
    check.finish()?;
    let consent = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (consent, _) = access::consent(conn, &me, &patient_id, &consent_id, Need::RevokeConsent)?;
            consents::revoke(conn, &me, &consent, &reason)
        })
        .await?;
    Ok(HttpResponse::Ok().json(consent))
}
