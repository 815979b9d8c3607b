//! `GET /changes`: the change feed (`feed`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::feed;
use crate::api::PageQuery;
use crate::auth::Bearer;
use crate::error::AppResult;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    pub since: Option<String>,
    pub limit: Option<i64>,
}

/// `GET /changes?since=`: without `since` the first sync's snapshot of the caller's patients,
/// then the changes after the cursor, in commit order.
pub async fn list(state: web::Data<AppState>, bearer: Bearer, query: web::Query<FeedQuery>) -> AppResult<HttpResponse> {
    let q = query.into_inner();
    let limit = PageQuery { limit: q.limit, cursor: None }.limit()?;
    let since = feed::parse(q.since.as_deref(), "since")?;
    let page = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            feed::read(conn, &me, since, limit)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
