//! `GET /patients/{id}/timeline`.

use actix_web::{web, HttpResponse};

use crate::access::{self, Need};
use crate::api::{self, PageQuery};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::error::AppResult;
use crate::notes::timeline::{self, Position};
use crate::state::AppState;

/// `GET /patients/{id}/timeline`: what happened around the patient, newest first.
pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
    query: api::Query<PageQuery>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let (limit, after) = super::paging(&query, Position::decode)?;
    let page = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Read, Resource::Timeline)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::Timeline, None, Some(&patient_id)))?;
            let items = timeline::page(conn, &patient_id, after.as_ref(), limit)?;
            Ok(api::page(items, limit, |i| i.position().encode()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
