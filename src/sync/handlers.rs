//! `GET /changes`: the change feed (`feed`), and `GET /changes/stream`, its live stream.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{feed, stream};
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
pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    query: crate::api::Query<FeedQuery>,
) -> AppResult<HttpResponse> {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    pub since: Option<String>,
}

/// `GET /changes/stream`: the same changes as Server-Sent Events, from `Last-Event-ID` (or
/// `since`), or from now on.
pub async fn stream(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    query: crate::api::Query<StreamQuery>,
) -> AppResult<HttpResponse> {
    let last_event_id = req.headers().get("last-event-id").map(|v| v.to_str().unwrap_or("\u{0}").to_string());
    let (raw, field) = match last_event_id {
        Some(id) => (Some(id), "Last-Event-ID"),
        None => (query.into_inner().since, "since"),
    };
    let since = feed::parse(raw.as_deref(), field)?;
    let user = bearer.clone();
    let (user_id, cursor) = state
        .db
        .read(move |conn| {
            let me = user.user(conn)?;
            Ok((me.id.clone(), stream::start(conn, since, field)?))
        })
        .await?;
    let slot = state.streams.open(&user_id)?;
    let live = stream::Live {
        db: state.db.clone(),
        bearer,
        cursor,
        heartbeat: Duration::from_secs(state.config.stream_heartbeat_secs),
        poll: Duration::from_millis(state.config.stream_poll_ms),
        slot,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        // Proxies (nginx) pass each event on at once instead of buffering the answer.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream::events(live)))
}
