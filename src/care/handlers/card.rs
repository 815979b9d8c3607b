//! `/patients/{id}/emergency-card` (the whole card in one request), its versions and its
//! printable page.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::Versions;
use crate::access::{self, Need};
use crate::api::{self, Check, Id, Json};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::care::card::{self, CardBody, DnarChange};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// `GET /patients/{id}/emergency-card`: the wishes, whom to call, the diagnoses, the drugs taken
/// now and the allergies, in one answer; readable under emergency access (break-glass). `ETag`
/// is the card's version (`"0"` before one was recorded).
pub async fn get(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let sheet = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let (patient, _) = access::patient(conn, &me, &patient_id, Need::Read, Resource::EmergencyCard)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::EmergencyCard, None, Some(&patient_id)))?;
            card::sheet(conn, &patient)
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, sheet.version, &sheet))
}

/// `GET /patients/{id}/emergency-card/print`: the card as one A4 page of HTML, to print.
pub async fn print(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let sheet = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let (patient, _) = access::patient(conn, &me, &patient_id, Need::Read, Resource::EmergencyCard)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::EmergencyCard, None, Some(&patient_id)).detail("print"),
            )?;
            card::sheet(conn, &patient)
        })
        .await?;
    let html = crate::care::print::render(&sheet)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::ETAG, api::etag(sheet.version)))
        // Nothing the page could load: it is self-contained.
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'"))
        .body(html))
}

/// `PUT /patients/{id}/emergency-card`: a member of the team records a new version of the card.
/// `If-Match` names the version it replaces, `"0"` for the first card (428 without it, 412 when
/// stale).
/// Recording or withdrawing the DNAR decision is a physician's (403); `dnar` left out keeps it.
pub async fn put(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<CardBody>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let body = body.into_inner();
    let expected = api::require_if_match(&req)?;
    let sheet = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (patient, _) = access::patient(conn, &me, &patient_id, Need::Write, Resource::EmergencyCard)?;
            if expected != card::version(conn, &patient_id)? {
                return Err(AppError::precondition_failed());
            }
            let mut check = Check::new();
            body.check(&mut check);
            check.finish()?;
            let dnar = card::dnar_change(conn, &patient_id, &body)?;
            if dnar != DnarChange::Kept {
                access::record_dnar(conn, &me, &patient_id)?;
            }
            let detail = match &dnar {
                DnarChange::Kept => String::new(),
                DnarChange::Recorded(d) => format!(" dnar:{}", d.decision),
                DnarChange::Withdrawn => " dnar:withdrawn".to_string(),
            };
            let view = card::record(conn, &patient_id, expected, body, dnar, &me.id)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, Resource::EmergencyCard, None, Some(&patient_id))
                    .detail(format!("version:{}{detail}", view.version)),
            )?;
            card::sheet(conn, &patient)
        })
        .await?;
    let status = if sheet.version == 1 { StatusCode::CREATED } else { StatusCode::OK };
    Ok(api::versioned(status, sheet.version, &sheet))
}

/// `GET /patients/{id}/emergency-card/versions`: every version of the card's own part.
pub async fn versions(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let list = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Read, Resource::EmergencyCard)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::EmergencyCard, None, Some(&patient_id)).detail("versions"),
            )?;
            Ok(Versions { items: card::history(conn, &patient_id)?, id: patient_id })
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}
