//! `/patients/{id}/participants` (the lead's side), `/participant-invitations/register` and
//! `/accept` (the invitee's, with the e-mailed token), and the patient's or key person's
//! approval of who joins: `/patients/{id}/joining-requests` and `/patients/{id}/joining-approval`.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::access;
use crate::api::{self, Check, Id, Json};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::{self, Bearer};
use crate::error::AppResult;
use crate::patients::approval::{self, JoiningRequest, Waiver};
use crate::patients::invitations::Answer;
use crate::patients::participants::{self, Invite, ParticipantView, Register};
use crate::state::AppState;
use crate::vocab::Locale;

#[derive(Serialize)]
struct Items<T> {
    items: Vec<T>,
}

/// `GET /patients/{id}/participants`: the patient's participants and open invitations.
pub async fn list(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let items = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let patient = access::participants(conn, &me, &patient_id)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::Participant, None, Some(&patient.id)))?;
            participants::list(conn, &patient.id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// `POST /patients/{id}/participants`: invites the patient, a family member or the key person
/// by e-mail.
pub async fn invite(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
    body: Json<Invite>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let body = body.into_inner();
    let mut check = Check::new();
    check.email("email", &body.email);
    check.line("relationship", body.relationship.as_deref(), 40);
    check.finish()?;
    let email = api::normalize_email(&body.email);
    let mailer = state.mail.clone();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let patient = access::invite_participant(conn, &me, &patient_id, &email)?;
            participants::invite(conn, &me, &mailer, &patient, &email, body.role, body.relationship)
        })
        .await?;
    Ok(HttpResponse::Created().json(view))
}

/// `POST /patients/{id}/participants/{participant_id}/end`: ends a participation, or withdraws
/// an open invitation.
pub async fn end(state: web::Data<AppState>, bearer: Bearer, path: web::Path<(Id, Id)>) -> AppResult<HttpResponse> {
    let (patient_id, participant_id) = path.into_inner();
    let (patient_id, participant_id) = (patient_id.into_string(), participant_id.into_string());
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (_, participant) = access::participant(conn, &me, &patient_id, &participant_id)?;
            participants::end(conn, &me, &participant)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Serialize)]
struct Registered {
    user_id: String,
    participant: ParticipantView,
}

/// `POST /participant-invitations/register`: takes an invitation up with a new account of no
/// organisation; the person then signs in as everyone does.
pub async fn register(state: web::Data<AppState>, req: HttpRequest, body: Json<Register>) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let mut check = Check::new();
    if body.token.trim().is_empty() {
        check.push("token", "required", "招待のトークンがありません。", "The invitation token is missing.");
    }
    check.required_line("name", &body.name, 100);
    check.finish()?;
    let locale = body.locale.unwrap_or(Locale::Ja);
    let ip = auth::extract::client_ip(&req);
    let (user, view) =
        crate::patients::joining::take_up_participation(&state, body.token, body.name, body.password, locale, ip)
            .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/users/{}", user.id)))
        .json(Registered { user_id: user.id, participant: view }))
}

/// `POST /participant-invitations/accept`: takes an invitation up as the signed-in account of
/// no organisation.
pub async fn accept(state: web::Data<AppState>, bearer: Bearer, body: Json<Answer>) -> AppResult<HttpResponse> {
    let token = super::invitations::token_of(&body.into_inner())?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let participant = access::participant_joining(conn, &me, &token)?;
            participants::join(conn, &me, &participant)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /patients/{id}/joining-requests`: who waits to join, and who was decided on.
pub async fn requests(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let items: Vec<JoiningRequest> = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let patient = access::joining_requests(conn, &me, &patient_id)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::JoiningApproval, None, Some(&patient.id)))?;
            approval::requests(conn, &patient.id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// `POST /patients/{id}/joining-requests/{invitation_id}/approve`: the professional joins.
pub async fn approve(state: web::Data<AppState>, bearer: Bearer, path: web::Path<(Id, Id)>) -> AppResult<HttpResponse> {
    let (patient_id, invitation_id) = path.into_inner();
    let (patient_id, invitation_id) = (patient_id.into_string(), invitation_id.into_string());
    let mailer = state.mail.clone();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (patient, invitation) = access::joining_to_decide(conn, &me, &patient_id, &invitation_id)?;
            let invitee = access::approved_joiner(conn, &me, &patient, &invitation)?;
            approval::approve(conn, &me, &mailer, &patient, &invitation, &invitee)
        })
        .await?;
    Ok(HttpResponse::Created().insert_header((header::ETAG, api::etag(view.version))).json(view))
}

/// `POST /patients/{id}/joining-requests/{invitation_id}/refuse`: nobody joins; the lead is told.
pub async fn refuse(state: web::Data<AppState>, bearer: Bearer, path: web::Path<(Id, Id)>) -> AppResult<HttpResponse> {
    let (patient_id, invitation_id) = path.into_inner();
    let (patient_id, invitation_id) = (patient_id.into_string(), invitation_id.into_string());
    let mailer = state.mail.clone();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (patient, invitation) = access::joining_to_decide(conn, &me, &patient_id, &invitation_id)?;
            approval::refuse(conn, &me, &mailer, &patient, &invitation)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /patients/{id}/joining-approval`: who decides joinings for this patient.
pub async fn approval_setting(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let setting = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let patient = access::joining_approval(conn, &me, &patient_id)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::JoiningApproval, None, Some(&patient.id)))?;
            approval::setting(conn, &patient)
        })
        .await?;
    Ok(HttpResponse::Ok().json(setting))
}

/// `PUT /patients/{id}/joining-approval`: the lead or the care manager records that the care
/// manager decides joinings (with the reason the patient cannot), or gives it back.
pub async fn set_approval(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
    body: Json<Waiver>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let mut check = Check::new();
    let reason = match body.into_inner().reason {
        Some(reason) => reason,
        None => {
            check.push(
                "reason",
                "required",
                "reason を指定してください（戻すときは null）。",
                "reason is required (null gives the decision back).",
            );
            None
        }
    };
    if let Some(r) = &reason {
        check.text("reason", r, 500);
    }
    check.finish()?;
    let setting = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let patient = access::participants(conn, &me, &patient_id)?;
            approval::set_waiver(conn, &me, &patient, reason)
        })
        .await?;
    Ok(HttpResponse::Ok().json(setting))
}
