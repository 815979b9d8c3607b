//! Operations routes (no `/api/v1` prefix): liveness, readiness and the API contract.

use actix_web::{http::header, web, HttpResponse};
use serde_json::json;

use crate::app::AppState;
use crate::db;
use crate::error::{AppError, AppResult};

/// The contract, served as written.
pub const OPENAPI_YAML: &str = include_str!("../api-spec/openapi.yaml");

/// `GET /livez`: the process answers.
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers and every migration is applied.
pub async fn readyz(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let current = state.db.run(|conn| db::migrations_current(conn).map_err(AppError::internal)).await;
    match current {
        Ok(true) => Ok(HttpResponse::Ok().json(json!({ "status": "ok", "database": "ok", "migrations": "current" }))),
        Ok(false) => {
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
