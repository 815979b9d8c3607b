//! `/metrics` in the OpenMetrics text format (which Prometheus reads), through the
//! `prometheus-client` crate. Every label value comes from a closed set, so no request can make
//! the exposition grow: the method is one of the standard ones or `OTHER`, the route is a
//! pattern the service registered (`/api/v1/patients/{id}`, never the id itself) or
//! `unmatched`, and the status is one the HTTP registry knows or its class (`5xx`). No patient
//! data ever becomes a label.
//!
//! Who may read it is decided in `access::operations_view` (a bearer token, see the README).

use std::collections::HashSet;

use actix_web::{web, HttpRequest, HttpResponse};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::access::{self, OpsView};
use crate::app::AppState;
use crate::error::{AppError, AppResult};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Methods counted by name; any other (a client may invent one of any length) is `OTHER`.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    /// The route patterns of `app::routes`: the only route labels besides `unmatched`.
    routes: HashSet<&'static str>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "renkei_http_requests",
            "HTTP requests by route pattern, method and status",
            requests.clone(),
        );
        let latency: LatencyFamily = Family::new_with_constructor(|| Histogram::new(BUCKETS));
        registry.register("renkei_http_request_duration_seconds", "Time to answer, by route pattern", latency.clone());
        let routes = crate::app::routes().into_iter().map(|(_, path, _)| path).collect();
        Metrics { registry, requests, latency, routes }
    }
}

/// The method's label: a standard method by name, anything else `OTHER`.
pub fn method_label(method: &str) -> &'static str {
    METHODS.into_iter().find(|m| *m == method).unwrap_or("OTHER")
}

/// The status's label: a registered status code as its number, anything else its class.
pub fn status_label(status: u16) -> String {
    match actix_web::http::StatusCode::from_u16(status) {
        Ok(code) if code.canonical_reason().is_some() => status.to_string(),
        _ => format!("{}xx", (status / 100).clamp(1, 5)),
    }
}

impl Metrics {
    /// The route's label: the registered pattern, or `unmatched`.
    fn route_label(&self, pattern: Option<&str>) -> &'static str {
        pattern.and_then(|p| self.routes.get(p).copied()).unwrap_or("unmatched")
    }

    pub fn observe(&self, method: &str, pattern: Option<&str>, status: u16, seconds: f64) {
        let route = self.route_label(pattern);
        let labels = RequestLabels { method: method_label(method), route, status: status_label(status) };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&RouteLabels { route }).observe(seconds);
    }
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: impl TryInto<i64>) {
    let g = Gauge::<i64>::default();
    g.set(value.try_into().unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

/// `GET /metrics`.
pub async fn render(state: web::Data<AppState>, req: HttpRequest) -> AppResult<HttpResponse> {
    match access::operations_view(&state.config, &req) {
        OpsView::Detail => {}
        OpsView::Refused => return Err(AppError::invalid_token()),
        OpsView::Summary => return Err(AppError::not_found()),
    }
    // Values read at scrape time go into a registry of their own, made for this answer.
    let mut now = Registry::default();
    let (connections, idle) = state.db.pool_state();
    gauge(&mut now, "renkei_db_pool_connections", "Open database connections in the pool", connections);
    gauge(&mut now, "renkei_db_pool_in_use", "Database connections checked out now", connections.saturating_sub(idle));
    gauge(&mut now, "renkei_db_pool_max", "Largest size of the pool", state.config.db_pool_size);
    // Counts read from the database, shared by every instance: no patient data, only totals.
    let counts = state
        .db
        .run(|conn| {
            let depth = crate::mail::outbox::depth(conn)?;
            let sent = crate::mail::outbox::count_sent(conn)?;
            let flags = crate::flags::count_open(conn)?;
            Ok((depth, sent, flags))
        })
        .await;
    let up = "1 when the database answered this scrape";
    match counts {
        Ok((depth, sent, (active, acknowledged))) => {
            let age = depth.oldest_pending_age_secs(crate::db::now()).unwrap_or(0);
            gauge(&mut now, "renkei_outbox_pending", "E-mails waiting to be sent", depth.pending);
            gauge(
                &mut now,
                "renkei_outbox_oldest_pending_seconds",
                "Age of the oldest e-mail waiting (0 when none)",
                age,
            );
            gauge(
                &mut now,
                "renkei_outbox_dead",
                "E-mails given up after a permanent rejection or too many attempts",
                depth.dead,
            );
            gauge(&mut now, "renkei_outbox_sent", "E-mails delivered", sent);
            gauge(&mut now, "renkei_flags_active", "Deterioration flags nobody has acknowledged yet", active);
            gauge(
                &mut now,
                "renkei_flags_acknowledged",
                "Deterioration flags acknowledged but not resolved",
                acknowledged,
            );
            gauge(&mut now, "renkei_database_up", up, 1);
        }
        Err(_) => gauge(&mut now, "renkei_database_up", up, 0),
    }
    let mut out = String::new();
    encode_registry(&mut out, &state.metrics.registry)
        .and_then(|_| encode_registry(&mut out, &now))
        .and_then(|_| encode_eof(&mut out))
        .map_err(|e| AppError::internal(e.to_string()))?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_closed_sets() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("get"), "OTHER");
        assert_eq!(method_label(&"X".repeat(60_000)), "OTHER");
        assert_eq!(status_label(404), "404");
        assert_eq!(status_label(599), "5xx");
        assert_eq!(status_label(299), "2xx");
        let m = Metrics::default();
        assert_eq!(m.route_label(Some("/api/v1/patients/{id}")), "/api/v1/patients/{id}");
        assert_eq!(m.route_label(Some("/api/v1/patients/0193a3f2")), "unmatched");
        assert_eq!(m.route_label(None), "unmatched");
    }
}
