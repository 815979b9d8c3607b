//! Operations routes (no `/api/v1` prefix): liveness, readiness, metrics and the API contract.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::access::{self, OpsView};
use crate::state::AppState;
use prometheus_client::registry::Registry;

use crate::db;
use crate::error::{AppError, AppResult};
use crate::metrics;

use super::OPENAPI_YAML;

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
    let current = state.db.run(super::readiness).await;
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

/// `GET /metrics`.
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> AppResult<HttpResponse> {
    match access::operations_view(&state.config, &req) {
        OpsView::Detail => {}
        OpsView::Refused => return Err(AppError::invalid_token()),
        OpsView::Summary => return Err(AppError::not_found()),
    }
    // Values read at scrape time go into a registry of their own, made for this answer.
    let mut now = Registry::default();
    let (connections, idle) = state.db.pool_state();
    metrics::gauge(&mut now, "renkei_db_pool_connections", "Open database connections in the pool", connections);
    metrics::gauge(
        &mut now,
        "renkei_db_pool_in_use",
        "Database connections checked out now",
        connections.saturating_sub(idle),
    );
    metrics::gauge(&mut now, "renkei_db_pool_max", "Largest size of the pool", state.config.db_pool_size);
    if let Some(w) = state.db.writer_stats().map(|w| w.counts()) {
        metrics::gauge(&mut now, "renkei_db_write_batches", "SQLite write batches committed", w.batches);
        metrics::gauge(
            &mut now,
            "renkei_db_write_requests",
            "Requests whose work those batches committed",
            w.committed,
        );
        metrics::gauge(
            &mut now,
            "renkei_db_write_rolled_back",
            "Requests rolled back to their savepoint",
            w.rolled_back,
        );
        let failed = w.failed_batches;
        metrics::gauge(
            &mut now,
            "renkei_db_write_failed_batches",
            "SQLite write batches that failed to commit",
            failed,
        );
    }
    // Counts read from the database, shared by every instance: no patient data, only totals.
    let counts = state.db.run(super::scrape_counts).await;
    let up = "1 when the database answered this scrape";
    match counts {
        Ok((depth, sent, (active, acknowledged))) => {
            let age = depth.oldest_pending_age_secs(crate::db::now()).unwrap_or(0);
            metrics::gauge(&mut now, "renkei_outbox_pending", "E-mails waiting to be sent", depth.pending);
            metrics::gauge(
                &mut now,
                "renkei_outbox_oldest_pending_seconds",
                "Age of the oldest e-mail waiting (0 when none)",
                age,
            );
            metrics::gauge(
                &mut now,
                "renkei_outbox_dead",
                "E-mails given up after a permanent rejection or too many attempts",
                depth.dead,
            );
            metrics::gauge(&mut now, "renkei_outbox_sent", "E-mails delivered", sent);
            metrics::gauge(&mut now, "renkei_flags_active", "Deterioration flags nobody has acknowledged yet", active);
            metrics::gauge(
                &mut now,
                "renkei_flags_acknowledged",
                "Deterioration flags acknowledged but not resolved",
                acknowledged,
            );
            metrics::gauge(&mut now, "renkei_database_up", up, 1);
        }
        Err(_) => metrics::gauge(&mut now, "renkei_database_up", up, 0),
    }
    // Attachments stored, by the sniffed type (a closed vocabulary), and marked entered in error.
    if let Ok((by_type, marked)) = state.db.run(crate::attachments::counts).await {
        let values: Vec<(&'static str, i64)> = by_type.iter().map(|(t, n)| (t.as_str(), *n)).collect();
        metrics::gauges(&mut now, "renkei_attachments_stored", "Files stored, by type", "content_type", &values);
        metrics::gauge(&mut now, "renkei_attachments_entered_in_error", "Files marked entered in error", marked);
    }
    let out = state.metrics.encode(&now).map_err(|e| AppError::internal(e.to_string()))?;
    Ok(HttpResponse::Ok().content_type(metrics::CONTENT_TYPE).body(out))
}
