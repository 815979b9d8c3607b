//! `/patients/{id}/care-team` and `/patients/{id}/care-team/{member_id}`.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::access::{self, Need};
use crate::api::{self, Check, Id, Json};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::error::AppResult;
use crate::patients::team::{self, AddMember, MemberView, UpdateMember};
use crate::state::AppState;

#[derive(Serialize)]
struct TeamList {
    items: Vec<MemberView>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamQuery {
    pub include_past: Option<bool>,
}

/// `GET /patients/{id}/care-team`.
pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
    query: api::Query<TeamQuery>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let include_past = query.include_past.unwrap_or(false);
    let items = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::ReadTeam, Resource::CareTeam)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::CareTeam, None, Some(&patient_id)))?;
            team::list(conn, &patient_id, include_past)
        })
        .await?;
    Ok(HttpResponse::Ok().json(TeamList { items }))
}

/// `POST /patients/{id}/care-team`: the lead or the care manager adds a person from any
/// organisation (found through the directory); an org admin adds their own organisation's people.
pub async fn add(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
    body: Json<AddMember>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let body = body.into_inner();
    let mut check = Check::new();
    check.id("user_id", &body.user_id);
    check.finish()?;
    let mailer = state.mail.clone();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let is_lead = body.is_lead.unwrap_or(false);
            let (patient, user) = access::team_addition(conn, &me, &patient_id, &body.user_id, body.role, is_lead)?;
            team::add_member(conn, &me, &mailer, &patient, &user, &body)
        })
        .await?;
    Ok(HttpResponse::Created().insert_header((header::ETAG, api::etag(view.version))).json(view))
}

/// `PATCH /patients/{id}/care-team/{member_id}`: change the role or lead, or end the membership.
pub async fn update(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<(Id, Id)>,
    body: Json<UpdateMember>,
) -> AppResult<HttpResponse> {
    let (patient_id, member_id) = path.into_inner();
    let (patient_id, member_id) = (patient_id.into_string(), member_id.into_string());
    let body = body.into_inner();
    let expected = api::if_match(&req)?;
    let mailer = state.mail.clone();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (patient, member) =
                access::team_member_change(conn, &me, &patient_id, &member_id, body.role, body.is_lead)?;
            team::update_member(conn, &me, &mailer, &patient, &member, expected, &body)
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header((header::ETAG, api::etag(view.version))).json(view))
}
