//! `/wards` and `/wards/{code}/coordinators/{user_id}`.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::{coordinators, Ward};
use crate::access;
use crate::api::Id;
use crate::auth::Bearer;
use crate::error::AppResult;
use crate::state::AppState;

#[derive(Serialize)]
struct WardList {
    items: Vec<Ward>,
}

/// `GET /wards`: every signed-in user may read the list.
pub async fn list(state: web::Data<AppState>, bearer: Bearer) -> AppResult<HttpResponse> {
    let items = state
        .db
        .run(move |conn| {
            bearer.user(conn)?;
            super::all(conn)
        })
        .await?;
    Ok(HttpResponse::Ok().json(WardList { items }))
}

/// `PUT /wards/{code}/coordinators/{user_id}` (system administrators, for another person who is
/// a physician): idempotent. The ward's other coordinators are told of a new one.
pub async fn assign_coordinator(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<(String, Id)>,
) -> AppResult<HttpResponse> {
    let (code, user_id) = path.into_inner();
    let user_id = user_id.into_string();
    let mailer = state.mail.clone();
    let created = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (ward, user) = access::coordinator_assignment(conn, &me, &code, &user_id)?;
            coordinators::assign(conn, &me, &mailer, ward, &user)
        })
        .await?;
    Ok(if created { HttpResponse::Created().finish() } else { HttpResponse::NoContent().finish() })
}

/// `DELETE /wards/{code}/coordinators/{user_id}` (system administrators).
pub async fn remove_coordinator(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<(String, Id)>,
) -> AppResult<HttpResponse> {
    let (code, user_id) = path.into_inner();
    let user_id = user_id.into_string();
    state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::administer_system(&me)?;
            coordinators::remove(conn, &me, &code, &user_id)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
