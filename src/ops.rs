//! Operations routes (no `/api/v1` prefix): liveness, readiness and the API contract.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::access::{self, OpsView};
use crate::app::AppState;
use crate::db;
use crate::error::{AppError, AppResult};
use crate::mail::outbox;

/// The contract, served as written.
pub const OPENAPI_YAML: &str = include_str!("../api-spec/openapi.yaml");

/// `GET /livez`: the process answers.
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers and every migration is applied. The outbox depth is
/// shown for monitoring but does not decide readiness: a backlog of e-mail is no reason to take
/// an instance out of the load balancer. Only a caller that may read operational detail
/// (`access::operations_view`) sees more than `{"status": "ok"}`.
pub async fn readyz(state: web::Data<AppState>, req: HttpRequest) -> AppResult<HttpResponse> {
    let detail = access::operations_view(&state.config, &req) == OpsView::Detail;
    let current = state
        .db
        .run(|conn| {
            if !db::migrations_current(conn).map_err(AppError::internal)? {
                return Ok(None);
            }
            Ok(Some(outbox::depth(conn)?))
        })
        .await;
    match current {
        Ok(Some(_)) if !detail => Ok(HttpResponse::Ok().json(json!({ "status": "ok" }))),
        Ok(Some(depth)) => Ok(HttpResponse::Ok().json(json!({
            "status": "ok",
            "database": "ok",
            "migrations": "current",
            "outbox": {
                "pending": depth.pending,
                "dead": depth.dead,
                "oldest_pending_age_secs": depth.oldest_pending_age_secs(db::now()),
            },
        }))),
        Ok(None) => {
            tracing::warn!("readiness: migrations pending");
            Err(AppError::unavailable())
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unavailable");
            Err(AppError::unavailable())
        }
    }
}

/// `GET /api-spec/openapi.yaml`.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/yaml; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(OPENAPI_YAML)
}
