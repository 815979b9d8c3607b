//! `/metrics` in the Prometheus text format. Labels are the route pattern (`/api/v1/patients/{id}`,
//! never the id itself), method and status: no patient data ever becomes a label.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use actix_web::{web, HttpResponse};

use crate::app::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((method.to_string(), route.to_string(), status)).or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(route.to_string()).or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    fn render_http(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP renkei_http_requests_total HTTP requests by route pattern, method and status.");
        let _ = writeln!(out, "# TYPE renkei_http_requests_total counter");
        if let Ok(r) = self.requests.lock() {
            for ((method, route, status), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "renkei_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        let _ = writeln!(out, "# HELP renkei_http_request_duration_seconds Time to answer, by route pattern.");
        let _ = writeln!(out, "# TYPE renkei_http_request_duration_seconds histogram");
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                let route = escape(route);
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "renkei_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "renkei_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "renkei_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
                let _ = writeln!(out, "renkei_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
            }
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {value}");
}

/// `GET /metrics`.
pub async fn render(state: web::Data<AppState>) -> HttpResponse {
    let mut out = String::new();
    state.metrics.render_http(&mut out);
    let (connections, idle) = state.db.pool_state();
    gauge(&mut out, "renkei_db_pool_connections", "Open database connections in the pool.", connections);
    gauge(&mut out, "renkei_db_pool_in_use", "Database connections checked out now.", connections.saturating_sub(idle));
    gauge(&mut out, "renkei_db_pool_max", "Largest size of the pool.", state.config.db_pool_size);
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
    match counts {
        Ok((depth, sent, (active, acknowledged))) => {
            let age = depth.oldest_pending_age_secs(crate::db::now()).unwrap_or(0);
            gauge(&mut out, "renkei_outbox_pending", "E-mails waiting to be sent.", depth.pending);
            gauge(
                &mut out,
                "renkei_outbox_oldest_pending_seconds",
                "Age of the oldest e-mail waiting (0 when none).",
                age,
            );
            gauge(
                &mut out,
                "renkei_outbox_dead",
                "E-mails given up after a permanent rejection or too many attempts.",
                depth.dead,
            );
            gauge(&mut out, "renkei_outbox_sent", "E-mails delivered.", sent);
            gauge(&mut out, "renkei_flags_active", "Deterioration flags nobody has acknowledged yet.", active);
            gauge(
                &mut out,
                "renkei_flags_acknowledged",
                "Deterioration flags acknowledged but not resolved.",
                acknowledged,
            );
            gauge(&mut out, "renkei_database_up", "1 when the database answered this scrape.", 1);
        }
        Err(_) => gauge(&mut out, "renkei_database_up", "1 when the database answered this scrape.", 0),
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(out)
}
