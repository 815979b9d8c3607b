//! `/metrics` in the OpenMetrics text format (which Prometheus reads), through the
//! `prometheus-client` crate. Every label value comes from a closed set, so no request can make
//! the exposition grow: the method is one of the standard ones or `OTHER`, the route is a
//! pattern the service registered (`/api/v1/patients/{id}`, never the id itself) or
//! `unmatched`, and the status is one the HTTP registry knows or its class (`5xx`). No patient
//! data ever becomes a label.
//!
//! Who may read it is decided in `access::operations_view` (a bearer token, see the README).

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    channel: &'static str,
    outcome: &'static str,
}

/// The outcomes a delivery attempt is counted under.
pub const DELIVERY_OUTCOMES: [&str; 4] = ["sent", "retry", "dead", "gone"];

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    deliveries: Family<DeliveryLabels, Counter>,
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
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "renkei_outbox_deliveries",
            "Outbox delivery attempts by channel (email, push) and outcome (sent, retry, dead, gone: a push subscription the push service no longer knows)",
            deliveries.clone(),
        );
        Metrics { registry, requests, latency, deliveries }
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
    /// Counts one answer. `route` is a pattern of the route table (`app::route_label`) or
    /// `None` for a request that matched no route.
    pub fn observe(&self, method: &str, route: Option<&'static str>, status: u16, seconds: f64) {
        let route = route.unwrap_or("unmatched");
        let labels = RequestLabels { method: method_label(method), route, status: status_label(status) };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&RouteLabels { route }).observe(seconds);
    }
}

impl Metrics {
    /// Counts one outbox delivery attempt. `channel` is the outbox's closed vocabulary (its
    /// `as_str`), `outcome` one of [`DELIVERY_OUTCOMES`].
    pub fn delivery(&self, channel: &'static str, outcome: &'static str) {
        let outcome = DELIVERY_OUTCOMES.into_iter().find(|o| *o == outcome).unwrap_or("dead");
        self.deliveries.get_or_create(&DeliveryLabels { channel, outcome }).inc();
    }
}

impl Metrics {
    /// The exposition: the counters kept since start, then `scrape`, the values read for this
    /// answer.
    pub fn encode(&self, scrape: &Registry) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)?;
        encode_registry(&mut out, scrape)?;
        encode_eof(&mut out)?;
        Ok(out)
    }
}

/// Adds a gauge read at scrape time to `registry`.
pub fn gauge(registry: &mut Registry, name: &str, help: &str, value: impl TryInto<i64>) {
    let g = Gauge::<i64>::default();
    g.set(value.try_into().unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

/// Adds a gauge family read at scrape time, one value per label from a closed set.
pub fn gauges(registry: &mut Registry, name: &str, help: &str, label: &'static str, values: &[(&'static str, i64)]) {
    let family = Family::<Vec<(&'static str, &'static str)>, Gauge<i64>>::default();
    for (value, n) in values {
        family.get_or_create(&vec![(label, *value)]).set(*n);
    }
    registry.register(name, help, family);
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
    }
}
