//! Operations: liveness, readiness, and the database going away and coming back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{Backend, TestApp};

async fn live_and_ready(app: TestApp) {
    let live = app.call("GET", "/livez", None, None, &[]).await.expect(200);
    assert_eq!(live.body["status"], "ok");
    let ready = app.call("GET", "/readyz", None, None, &[]).await.expect(200);
    assert_eq!(ready.body["migrations"], "current");
    assert_eq!(ready.header("x-content-type-options").as_deref(), Some("nosniff"));
}

crate::both_backends!(live_and_ready);

/// A TCP proxy in front of PostgreSQL that the test can cut and restore.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(AtomicU64::new(0));
        let (up2, gen2) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let my_gen = gen2.load(Ordering::SeqCst);
                let gen3 = gen2.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let cut = async {
                        while gen3.load(Ordering::SeqCst) == my_gen {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! { _ = copy => {}, _ = cut => {} }
                });
            }
        });
        Proxy { port, up, generation }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// The database becomes unreachable: requests answer 503 problem+json quickly (not a hang), and
/// the service recovers by itself when the database returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_answers_503_then_recovers() {
    let Some(cluster) = crate::helpers::postgres() else { return };
    let url = cluster.fresh_database();
    let (host_port, database) =
        url.trim_start_matches("postgres://").split_once('@').unwrap().1.split_once('/').unwrap();
    let proxy = Proxy::start(host_port.to_string()).await;
    let via_proxy = format!("postgres://postgres@127.0.0.1:{}/{database}", proxy.port);
    let app = TestApp::start(Backend::Postgres, via_proxy, tempfile::tempdir().unwrap(), false, HashMap::new()).await;
    let admin = app.system_admin().await;
    app.get("/api/v1/wards", &admin.token).await.expect(200);

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let res = app.get("/api/v1/wards", &admin.token).await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert_eq!(res.problem_type(), "/problems/unavailable");
    assert!(res.header("retry-after").is_some());
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let ready = app.call("GET", "/readyz", None, None, &[]).await;
    assert_eq!(ready.status, 503);
    // Liveness does not depend on the database.
    app.call("GET", "/livez", None, None, &[]).await.expect(200);

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = app.get("/api/v1/wards", &admin.token).await;
        if res.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover: {}", res.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.call("GET", "/readyz", None, None, &[]).await.expect(200);
}

async fn metrics_count_requests_by_route_without_ids(app: TestApp) {
    let admin = app.system_admin().await;
    app.get("/api/v1/wards", &admin.token).await.expect(200);
    let org = app.organization(&admin, "clinic", "メトリクス診療所", None).await;
    app.get(&format!("/api/v1/organizations/{org}"), &admin.token).await.expect(200);
    let res = app.call("GET", "/metrics", None, None, &[]).await.expect(200);
    assert!(res.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    assert!(res.text.ends_with("# EOF\n"), "{}", res.text);
    assert!(
        res.text.contains(r#"renkei_http_requests_total{method="GET",route="/api/v1/wards",status="200"} 1"#),
        "{}",
        res.text
    );
    assert!(res.text.contains(r#"route="/api/v1/organizations/{id}""#));
    assert!(!res.text.contains(&org), "ids never become labels");
    assert!(res.text.contains("renkei_http_request_duration_seconds_bucket"));
    assert!(res.text.contains("renkei_db_pool_connections"));
    assert!(res.text.contains("renkei_outbox_pending 0"), "{}", res.text);
    assert!(res.text.contains("renkei_flags_active 0"));
    assert!(res.text.contains("renkei_database_up 1"));
}

/// A method or path a client invents never becomes a label: it is counted as `OTHER` and
/// `unmatched`, so no request can make `/metrics` grow.
async fn invented_methods_and_paths_are_not_labels(app: TestApp) {
    let long = "X".repeat(60_000);
    for method in ["BREW", long.as_str()] {
        let res = app.call(method, "/api/v1/wards", None, None, &[]).await;
        assert_eq!(res.status, 405, "{method:.10}");
    }
    app.call("GET", "/api/v1/no-such-thing-0193a3f2", None, None, &[]).await.expect(404);
    let res = app.call("GET", "/metrics", None, None, &[]).await.expect(200);
    assert!(!res.text.contains("XXXX") && !res.text.contains("BREW"));
    assert!(!res.text.contains("no-such-thing"), "{}", res.text);
    assert!(
        res.text.contains(r#"renkei_http_requests_total{method="OTHER",route="/api/v1/wards",status="405"} 2"#),
        "{}",
        res.text
    );
    assert!(res.text.contains(r#"renkei_http_requests_total{method="GET",route="unmatched",status="404"} 1"#));
    assert!(res.text.len() < 20_000, "{} bytes", res.text.len());
}

crate::both_backends!(metrics_count_requests_by_route_without_ids, invented_methods_and_paths_are_not_labels);

const METRICS_TOKEN: &str = "metrics-0123456789abcdef0123456789abcdef";

/// With `RENKEI_METRICS_TOKEN`, `/metrics` and the detail of `/readyz` need it as a bearer token;
/// without it `/readyz` says only up or down.
async fn operational_detail_needs_the_token(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("RENKEI_METRICS_TOKEN", METRICS_TOKEN)]).await;
    let bearer = format!("Bearer {METRICS_TOKEN}");
    let wrong = format!("Bearer {METRICS_TOKEN}x");
    for auth in [None, Some(wrong.as_str()), Some(METRICS_TOKEN)] {
        let headers: Vec<(&str, &str)> = auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
        let res = app.call("GET", "/metrics", None, None, &headers).await.expect(401);
        assert_eq!(res.problem_type(), "/problems/invalid-token");
        assert!(!res.text.contains("renkei_"));
        let ready = app.call("GET", "/readyz", None, None, &headers).await.expect(200);
        assert_eq!(ready.body, serde_json::json!({"status": "ok"}));
    }
    // A user's access token is not the metrics token either.
    let admin = app.system_admin().await;
    app.call("GET", "/metrics", Some(&admin.token), None, &[]).await.expect(401);
    let res = app.call("GET", "/metrics", None, None, &[("authorization", &bearer)]).await.expect(200);
    assert!(res.text.contains("renkei_flags_active 0"), "{}", res.text);
    let ready = app.call("GET", "/readyz", None, None, &[("authorization", &bearer)]).await.expect(200);
    assert_eq!(ready.body["migrations"], "current");
    assert_eq!(ready.body["outbox"]["pending"], 0);
}

/// In production without a token, `/metrics` is off and `/readyz` says only up or down.
async fn production_without_a_token_hides_operations(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("RENKEI_ENV", "production"),
            ("RENKEI_ALLOW_SQLITE_IN_PRODUCTION", "true"),
            ("RENKEI_SMTP_URL", "smtps://127.0.0.1:9"),
            ("RENKEI_PUBLIC_URL", "https://renkei.example.jp"),
            ("RENKEI_CLAMD_URL", "tcp://127.0.0.1:9"),
            ("RENKEI_SECRETS_KEY", "c2VhbGluZy1rZXktb2YtMzItYnl0ZXMtZm9yLXRlc3Q"),
        ],
    )
    .await;
    let res = app.call("GET", "/metrics", None, None, &[]).await.expect(404);
    assert_eq!(res.problem_type(), "/problems/not-found");
    let ready = app.call("GET", "/readyz", None, None, &[]).await.expect(200);
    assert_eq!(ready.body, serde_json::json!({"status": "ok"}));
}

crate::both_backends!(by_backend: operational_detail_needs_the_token, production_without_a_token_hides_operations);
