//! `GET /audit-events`: the trail, for system administrators.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::Filter;
use crate::access;
use crate::api::{self, PageQuery};
use crate::auth::Bearer;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    pub patient_id: Option<crate::api::Id>,
    pub actor_id: Option<crate::api::Id>,
    /// C, R, U, D or E (FHIR AuditEvent.action).
    pub action: Option<String>,
    /// success or denied.
    pub outcome: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

pub async fn list(state: web::Data<AppState>, bearer: Bearer, query: api::Query<Query>) -> AppResult<HttpResponse> {
    let q = query.into_inner();
    let paging = PageQuery { limit: q.limit, cursor: q.cursor.clone() };
    let (limit, before) = (paging.limit()?, paging.after()?);
    let mut check = crate::api::Check::new();
    check.optional_id("patient_id", q.patient_id.as_ref());
    check.optional_id("actor_id", q.actor_id.as_ref());
    check.finish()?;
    if q.action.as_deref().is_some_and(|a| !["C", "R", "U", "D", "E"].contains(&a)) {
        return Err(AppError::field(
            "action",
            "invalid",
            "action は C, R, U, D, E のいずれかです。",
            "action is one of C, R, U, D, E.",
        ));
    }
    if q.outcome.as_deref().is_some_and(|o| !["success", "denied"].contains(&o)) {
        return Err(AppError::field(
            "outcome",
            "invalid",
            "outcome は success か denied です。",
            "outcome is success or denied.",
        ));
    }
    let filter = Filter {
        patient_id: q.patient_id.map(crate::api::Id::into_string),
        actor_id: q.actor_id.map(crate::api::Id::into_string),
        action: q.action,
        outcome: q.outcome,
        since: q.since.map(|t| crate::db::truncate(t.naive_utc())),
        until: q.until.map(|t| crate::db::truncate(t.naive_utc())),
    };
    let page = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::administer_system(&me)?;
            let rows = super::search(conn, &filter, before.as_deref(), limit)?;
            Ok(api::page(rows, limit, |e| e.id.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
