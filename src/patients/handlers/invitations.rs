//! `/patients/{id}/care-team/invitations` (the lead's side) and `/care-team-invitations/accept`
//! and `/decline` (the invitee's, with the e-mailed token).

use actix_web::{http::header, web, HttpResponse};
use serde::Serialize;

use crate::access;
use crate::api::{self, Check, Id, Json};
use crate::auth::Bearer;
use crate::error::AppResult;
use crate::patients::invitations::{self, Answer, InvitationView, Invite};
use crate::patients::joining::{self, Joined};
use crate::state::AppState;

#[derive(Serialize)]
struct InvitationList {
    items: Vec<InvitationView>,
}

/// `GET /patients/{id}/care-team/invitations`: every invitation of the patient with its state.
pub async fn list(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let items = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let patient = access::invitations(conn, &me, &patient_id)?;
            invitations::list(conn, &patient.id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(InvitationList { items }))
}

/// `POST /patients/{id}/care-team/invitations`: invite an account (`user_id`) or an address
/// (`email`) in a role; the invitee is e-mailed a one-time link.
pub async fn create(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
    body: Json<Invite>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let body = body.into_inner();
    let mut check = Check::new();
    for (field, null) in [("user_id", body.user_id == Some(None)), ("email", body.email == Some(None))] {
        if null {
            check.push(
                field,
                "null",
                "null は指定できません。項目ごと省いてください。",
                "null is not allowed: leave the field out.",
            );
        }
    }
    let (user_id, email) = (body.user_id.flatten(), body.email.flatten());
    match (&user_id, &email) {
        (Some(id), None) => check.id("user_id", id),
        (None, Some(email)) => check.email("email", email),
        _ if !check.is_empty() => {}
        _ => check.push(
            "user_id",
            "one_of",
            "招待する方は user_id か email のどちらか一方で指定してください。",
            "Name the invitee by exactly one of user_id and email.",
        ),
    }
    check.finish()?;
    let mailer = state.mail.clone();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let user_id = user_id.as_ref().map(|id| id.as_str().to_string());
            let (patient, invitee) =
                access::invite(conn, &me, &patient_id, user_id.as_deref(), email.as_deref(), body.role)?;
            invitations::create(conn, &me, &mailer, &patient, &invitee, email.is_some(), body.role)
        })
        .await?;
    Ok(HttpResponse::Created().json(view))
}

/// `POST /patients/{id}/care-team/invitations/{invitation_id}/revoke`: a pending one only.
pub async fn revoke(state: web::Data<AppState>, bearer: Bearer, path: web::Path<(Id, Id)>) -> AppResult<HttpResponse> {
    let (patient_id, invitation_id) = path.into_inner();
    let (patient_id, invitation_id) = (patient_id.into_string(), invitation_id.into_string());
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (_, invitation) = access::invitation(conn, &me, &patient_id, &invitation_id)?;
            invitations::revoke(conn, &me, &invitation)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The token of an answer to an e-mailed invitation (422 naming `token` when blank).
pub(super) fn token_of(body: &Answer) -> AppResult<String> {
    let mut check = Check::new();
    if body.token.trim().is_empty() {
        check.push("token", "required", "招待のトークンがありません。", "The invitation token is missing.");
    }
    check.finish()?;
    Ok(body.token.clone())
}

/// `POST /care-team-invitations/accept`: the invitee joins the team (201), or waits for the
/// patient's or key person's approval (202).
pub async fn accept(state: web::Data<AppState>, bearer: Bearer, body: Json<Answer>) -> AppResult<HttpResponse> {
    let token = token_of(&body.into_inner())?;
    let mailer = state.mail.clone();
    let joined = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            joining::accept(conn, &me, &mailer, &token)
        })
        .await?;
    Ok(match joined {
        Joined::Member(view) => {
            HttpResponse::Created().insert_header((header::ETAG, api::etag(view.version))).json(view)
        }
        // The patient or the key person approves first: the invitation, awaiting approval.
        Joined::AwaitingApproval(invitation) => HttpResponse::Accepted().json(invitation),
    })
}

/// `POST /care-team-invitations/decline`.
pub async fn decline(state: web::Data<AppState>, bearer: Bearer, body: Json<Answer>) -> AppResult<HttpResponse> {
    let token = token_of(&body.into_inner())?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            joining::decline(conn, &me, &token)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}
