//! Webhooks end to end: an organisation's administrator registers an endpoint that is a real HTTP
//! server started by the test (standing in for a partner system); a flag raised through the API
//! reaches it exactly once, through the outbox, and independent code (Python's `hmac`,
//! tests/webhook_verify.py) verifies the signature. A 500 is retried; an endpoint that keeps
//! failing is disabled and its organisation's administrators e-mailed. Only the organisation's
//! administrators see or change its endpoints. Also Web Push: a discharge task assigned to
//! someone with a subscription is pushed once, and without a VAPID key no subscription is kept.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{say, Backend, Person, TestApp};
use crate::patients::{team, Team};
use crate::push::{decrypt_independently, Browser, Received};

/// The stand-in partner system (and push service): under `/ok/` and `/push/` it accepts
/// everything; under `/flaky/` it answers 500 to the first request of each path, then 200;
/// under `/down/` always 500.
struct Partner {
    origin: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Partner {
    async fn start() -> Partner {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let store = received.clone();
        let server = HttpServer::new(move || {
            let (store, seen) = (store.clone(), seen.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (store, seen) = (store.clone(), seen.clone());
                async move {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                        .collect();
                    let path = req.path().to_string();
                    store.lock().unwrap().push(Received { path: path.clone(), headers, body: body.to_vec() });
                    let n = {
                        let mut seen = seen.lock().unwrap();
                        let n = seen.entry(path.clone()).or_default();
                        *n += 1;
                        *n
                    };
                    if path.starts_with("/down/") || (path.starts_with("/flaky/") && n == 1) {
                        HttpResponse::InternalServerError().finish()
                    } else if path.starts_with("/push/") {
                        HttpResponse::Created().finish()
                    } else {
                        HttpResponse::Ok().finish()
                    }
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Partner { origin, received }
    }

    fn at(&self, path: &str) -> Vec<Received> {
        self.received.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    async fn wait_for(&self, path: &str, n: usize, within: Duration) -> Vec<Received> {
        let start = Instant::now();
        while self.at(path).len() < n && start.elapsed() < within {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.at(path)
    }
}

/// The Python a partner would verify with: `RENKEI_PUSH_DECRYPT_PYTHON` (CI's venv) or
/// `python3`. Only its standard library is used.
fn python() -> String {
    std::env::var("RENKEI_PUSH_DECRYPT_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Verifies a received webhook with independent code; answers its body.
fn verify_independently(secret: &str, received: &Received) -> Value {
    let input = json!({
        "secret": secret,
        "signature": received.header("renkei-signature").expect("a Renkei-Signature header"),
        "body": base64::engine::general_purpose::STANDARD.encode(&received.body),
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhook_verify.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the verification script");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "independent verification failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn webhook_app(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("RENKEI_WEBHOOK_ALLOW_LOOPBACK", "true"),
        ("RENKEI_PUSH_ALLOW_LOOPBACK", "true"),
        ("RENKEI_PUBLIC_URL", "https://renkei.example.jp"),
    ];
    vars.extend_from_slice(extra);
    TestApp::spawn_with(backend, &vars).await
}

fn hooks(organization_id: &str) -> String {
    format!("/api/v1/organizations/{organization_id}/webhooks")
}

/// The visiting-nurse station's administrator (the station has the nurse on the team).
async fn station_admin(app: &TestApp, t: &Team) -> Person {
    app.person(&t.admin, &t.nurse_station, "nurse", "org_admin").await
}

async fn register(app: &TestApp, admin: &Person, organization_id: &str, url: &str) -> (String, String) {
    let res = app.post(&hooks(organization_id), &admin.token, json!({ "url": url })).await.expect(201);
    assert_eq!(res.body["status"], "active");
    (res.body["id"].as_str().unwrap().to_string(), res.body["secret"].as_str().unwrap().to_string())
}

async fn raise_flag(app: &TestApp, t: &Team, reason: &str) -> String {
    let flag = app
        .post(
            &format!("/api/v1/patients/{}/flags", t.patient_id),
            &t.nurse.token,
            json!({"severity": "emergency", "reason": reason}),
        )
        .await
        .expect(201);
    flag.body["id"].as_str().unwrap().to_string()
}

async fn a_flag_reaches_the_partner_and_the_phone_once(backend: Backend) {
    let partner = Partner::start().await;
    let app = webhook_app(backend, &[]).await;
    let t = team(&app, "14131").await;
    let admin = station_admin(&app, &t).await;
    let (endpoint_id, secret) =
        register(&app, &admin, &t.nurse_station, &format!("{}/ok/station", partner.origin)).await;
    // The secret is shown once: never in the list.
    let list = app.get(&hooks(&t.nurse_station), &admin.token).await.expect(200);
    assert_eq!(list.body["items"][0]["id"], endpoint_id.as_str());
    assert!(!list.text.contains(&secret) && list.body["items"][0].get("secret").is_none());
    // A clinic with nobody on the patient's team hears nothing of the patient.
    let clinic = app.organization(&t.admin, "clinic", "川崎在宅クリニック", Some("14131")).await;
    let clinic_admin = app.person(&t.admin, &clinic, "physician", "org_admin").await;
    register(&app, &clinic_admin, &clinic, &format!("{}/ok/clinic", partner.origin)).await;
    // The care manager's phone subscribes to push.
    let phone = Browser::new();
    app.post(
        "/api/v1/me/push-subscriptions",
        &t.care_manager.token,
        phone.subscription(&format!("{}/push/cm-phone", partner.origin)),
    )
    .await
    .expect(201);

    let reason = "呼吸苦あり、山田様の家族より連絡";
    let flag_id = raise_flag(&app, &t, reason).await;
    partner.wait_for("/ok/station", 1, Duration::from_secs(10)).await;
    partner.wait_for("/push/cm-phone", 1, Duration::from_secs(10)).await;
    // The worker polls every second: give a second delivery time to show up, if there were one.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let hooks_got = partner.at("/ok/station");
    let pushes = partner.at("/push/cm-phone");
    assert_eq!((hooks_got.len(), pushes.len()), (1, 1), "one webhook and one push for one flag");

    assert!(partner.at("/ok/clinic").is_empty(), "not on the team: no event");
    let hook = &hooks_got[0];
    assert_eq!(hook.header("content-type"), Some("application/json"));
    assert_eq!(hook.header("renkei-event-type"), Some("flag.raised"));
    let verified = verify_independently(&secret, hook);
    let event = &verified["body"];
    assert_eq!(hook.header("renkei-event-id"), event["id"].as_str());
    assert_eq!(event["type"], "flag.raised");
    assert_eq!(event["patient_id"], t.patient_id.as_str());
    assert_eq!(event["resource"], json!({"type": "flag", "id": flag_id}));
    assert!(event["occurred_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(event.as_object().unwrap().len(), 5, "ids only: {event}");
    let text = String::from_utf8_lossy(&hook.body);
    for typed in ["呼吸苦", "山田", "川崎", "花子", "カワサキ", "emergency"] {
        assert!(!text.contains(typed), "the event carries {typed}: {text}");
    }
    // A signature made with another secret does not verify: the check is real.
    let mut forged = hook.clone();
    forged.body = text.replace("flag.raised", "flag.raisee").into_bytes();
    let forged_check = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhook_verify.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            let input = json!({
                "secret": secret,
                "signature": forged.header("renkei-signature").unwrap(),
                "body": base64::engine::general_purpose::STANDARD.encode(&forged.body),
            });
            c.stdin.take().unwrap().write_all(input.to_string().as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(!forged_check.success(), "a changed body must not verify");
    say("webhook signature verified by Python's hmac");

    if let Some(out) = decrypt_independently(&phone, &pushes[0]) {
        let message: Value = serde_json::from_str(out["plaintext"].as_str().unwrap()).unwrap();
        assert_eq!(message["kind"], "flag_raised");
        assert_eq!(message["id"], flag_id.as_str());
    }

    // A rotated secret signs the next event; the old one no longer verifies it.
    let rotated = app
        .post(&format!("{}/{endpoint_id}/rotate-secret", hooks(&t.nurse_station)), &admin.token, json!({}))
        .await
        .expect(200);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    app.post(&format!("/api/v1/flags/{flag_id}/acknowledge"), &t.nurse.token, json!({})).await.expect(200);
    let got = partner.wait_for("/ok/station", 2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2);
    let acknowledged = verify_independently(&new_secret, &got[1])["body"].clone();
    assert_eq!(acknowledged["resource"]["id"], flag_id.as_str());
    assert_eq!(acknowledged["type"], "flag.acknowledged", "each event says what happened");
    assert_eq!(got[1].header("renkei-event-type"), Some("flag.acknowledged"));

    // A disabled endpoint gets nothing.
    let off = app
        .post(&format!("{}/{endpoint_id}/disable", hooks(&t.nurse_station)), &admin.token, json!({}))
        .await
        .expect(200);
    assert_eq!((off.body["status"].as_str(), off.body["disabled_reason"].as_str()), (Some("disabled"), Some("admin")));
    raise_flag(&app, &t, "再度の発熱").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(partner.at("/ok/station").len(), 2);
}

async fn a_failure_is_retried_and_repeated_failures_disable_the_endpoint(backend: Backend) {
    let partner = Partner::start().await;
    let app = webhook_app(backend, &[("RENKEI_WEBHOOK_MAX_FAILURES", "3")]).await;
    let t = team(&app, "14132").await;
    let admin = station_admin(&app, &t).await;
    let (_, secret) = register(&app, &admin, &t.nurse_station, &format!("{}/flaky/station", partner.origin)).await;
    let flag_id = raise_flag(&app, &t, "発熱").await;
    let got = partner.wait_for("/flaky/station", 2, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 2, "a 500 is retried");
    let (first, second) = (verify_independently(&secret, &got[0]), verify_independently(&secret, &got[1]));
    assert_eq!(first["body"], second["body"], "the same event, byte for byte");
    assert_eq!(got[0].header("renkei-event-id"), got[1].header("renkei-event-id"));
    assert_eq!(second["body"]["resource"]["id"], flag_id.as_str());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let list = app.get(&hooks(&t.nurse_station), &admin.token).await.expect(200);
    assert_eq!(list.body["items"][0]["consecutive_failures"], 0, "a success resets the count");
    assert_eq!(partner.at("/flaky/station").len(), 2);

    // An endpoint that always fails is disabled after three failures in a row, and the
    // organisation's administrators are told by e-mail, once.
    let (down_id, _) = register(&app, &admin, &t.nurse_station, &format!("{}/down/station", partner.origin)).await;
    raise_flag(&app, &t, "再度の発熱").await;
    let start = Instant::now();
    let disabled = loop {
        let list = app.get(&hooks(&t.nurse_station), &admin.token).await.expect(200);
        let down =
            list.body["items"].as_array().unwrap().iter().find(|e| e["id"] == down_id.as_str()).cloned().unwrap();
        if down["status"] == "disabled" || start.elapsed() > Duration::from_secs(20) {
            break down;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(disabled["status"], "disabled", "{disabled}");
    assert_eq!(disabled["disabled_reason"], "failures");
    assert_eq!(disabled["consecutive_failures"], 3);
    assert_eq!(partner.at("/down/station").len(), 3);
    let emails = crate::helpers::emails_to(&app, &admin.id, "webhook_disabled").await;
    assert_eq!(emails.len(), 1);
    let (subject, body) = &emails[0];
    assert!(subject.contains("Webhook"), "{subject}");
    assert!(body.contains(&format!("https://renkei.example.jp/webhooks/{down_id}")), "{body}");
    assert!(!body.contains(&partner.origin), "no URL an administrator typed: {body}");
    // The nurse (no administrator) is not told.
    assert!(crate::helpers::emails_to(&app, &t.nurse.id, "webhook_disabled").await.is_empty());

    // The undelivered event is given up once the endpoint is off; operators see its channel.
    let start = Instant::now();
    let dead = loop {
        let status = app.get("/api/v1/outbox", &t.admin.token).await.expect(200);
        let dead: Vec<Value> = status.body["dead_emails"]["items"].as_array().unwrap().clone();
        if !dead.is_empty() || start.elapsed() > Duration::from_secs(15) {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["channel"], "webhook");
    assert_eq!(dead[0]["subject"], "flag.raised");
    assert_eq!(dead[0]["to_address"], partner.origin.as_str());
    assert_eq!(partner.at("/down/station").len(), 3, "nothing more after it was disabled");

    // Deliveries are counted by channel and outcome, fixed labels only.
    let metrics = app.call("GET", "/metrics", None, None, &[]).await.expect(200);
    for series in [
        r#"renkei_outbox_deliveries_total{channel="webhook",outcome="sent"}"#,
        r#"renkei_outbox_deliveries_total{channel="webhook",outcome="retry"}"#,
        r#"renkei_outbox_deliveries_total{channel="webhook",outcome="dead"}"#,
    ] {
        assert!(metrics.text.contains(series), "{series} missing");
    }

    // Enabled again, the count starts from zero.
    let on =
        app.post(&format!("{}/{down_id}/enable", hooks(&t.nurse_station)), &admin.token, json!({})).await.expect(200);
    assert_eq!((on.body["status"].as_str(), on.body["consecutive_failures"].as_i64()), (Some("active"), Some(0)));
    assert_eq!(on.body["disabled_reason"], Value::Null);
}

crate::both_backends!(by_backend: a_flag_reaches_the_partner_and_the_phone_once);
crate::both_backends!(by_backend: a_failure_is_retried_and_repeated_failures_disable_the_endpoint);

/// The authorisation matrix of the webhook routes: every route × every relationship to the
/// organisation. Only its administrators act; its members get 403; anyone else — another
/// organisation's administrator, a system administrator — the 404 of a missing organisation.
async fn only_the_organisations_administrators_manage_its_endpoints(app: TestApp) {
    let t = team(&app, "14133").await;
    let admin = station_admin(&app, &t).await;
    let other_admin = app.person(&t.admin, &t.care_office, "care_manager", "org_admin").await;
    let (id, _) = register(&app, &admin, &t.nurse_station, "https://partner.example.jp/hooks/a").await;
    let (other_id, _) = register(&app, &other_admin, &t.care_office, "https://partner.example.jp/hooks/b").await;
    let base = hooks(&t.nurse_station);
    let routes: Vec<(&str, String, Option<Value>, u16)> = vec![
        ("GET", base.clone(), None, 200),
        ("POST", base.clone(), Some(json!({"url": "https://partner.example.jp/hooks/c"})), 201),
        ("POST", format!("{base}/{id}/disable"), Some(json!({})), 200),
        ("POST", format!("{base}/{id}/enable"), Some(json!({})), 200),
        ("POST", format!("{base}/{id}/rotate-secret"), Some(json!({})), 200),
    ];
    let callers: Vec<(&str, Option<&Person>, u16)> = vec![
        ("nobody", None, 401),
        ("a member of the organisation", Some(&t.nurse), 403),
        ("another organisation's administrator", Some(&other_admin), 404),
        ("a system administrator", Some(&t.admin), 404),
        ("a member of another organisation", Some(&t.care_manager), 404),
        ("the organisation's administrator", Some(&admin), 0),
    ];
    for (method, path, body, ok) in &routes {
        for (who, person, expected) in &callers {
            let expected = if *expected == 0 { *ok } else { *expected };
            let res = app.call(method, path, person.map(|p| p.token.as_str()), body.as_ref(), &[]).await;
            assert_eq!(res.status, expected, "{method} {path} by {who}: {}", res.text);
            if expected == 404 {
                let missing = path.replace(&t.nurse_station, "0193a3f2-7c4e-7d2a-9b1f-3c5d7e9f1a2b");
                let ghost = app.call(method, &missing, person.map(|p| p.token.as_str()), body.as_ref(), &[]).await;
                assert_eq!(ghost.text, res.text, "{who}: the same answer as for no such organisation");
            }
        }
    }
    // Another organisation's endpoint named under one's own organisation: 404, like none.
    for action in ["disable", "enable", "rotate-secret"] {
        app.post(&format!("{base}/{other_id}/{action}"), &admin.token, json!({})).await.expect(404);
        app.post(&format!("{base}/not-an-id/{action}"), &admin.token, json!({})).await.expect(404);
    }
    let theirs = app.get(&hooks(&t.care_office), &other_admin.token).await.expect(200);
    assert_eq!(theirs.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(theirs.body["items"][0]["status"], "active", "untouched by the other organisation");

    // Targets inside the network are refused (loopback is not allowed on this server).
    for url in [
        "http://partner.example.jp/hooks",
        "https://127.0.0.1/hooks",
        "https://localhost/hooks",
        "https://10.1.2.3/hooks",
        "https://192.168.0.10/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "https://[fe80::1]/hooks",
        "https://user:pw@partner.example.jp/hooks",
        "not a url",
    ] {
        let res = app.post(&base, &admin.token, json!({ "url": url })).await.expect(422);
        assert_eq!(res.body["errors"][0]["field"], "url", "{url}: {}", res.text);
    }
    // The same URL twice: 409, so a retried registration never doubles the deliveries.
    app.post(&base, &admin.token, json!({"url": "https://partner.example.jp/hooks/a"})).await.expect(409);
    app.post(&base, &admin.token, json!({"url": "https://partner.example.jp/hooks/a", "secret": "x"}))
        .await
        .expect(422);
}

crate::both_backends!(only_the_organisations_administrators_manage_its_endpoints);

/// A hospital's social worker opens a discharge case for the team's patient and gives its first
/// task to the team's nurse: (the social worker, the case, the task).
async fn open_a_case_and_give_its_first_task_to_the_nurse(
    app: &TestApp,
    t: &Team,
    ward: &str,
) -> (Person, String, String) {
    let hospital = app.organization(&t.admin, "hospital", "川崎中央病院", Some(ward)).await;
    let msw = app.person(&t.admin, &hospital, "social_worker", "member").await;
    let opened = app
        .post(
            "/api/v1/discharge-cases",
            &msw.token,
            json!({
                "patient_id": t.patient_id,
                "birth_date": "1938-04-01",
                "family_name_kana": "カワサキ",
                "admitted_at": "2026-01-30T10:00:00+09:00",
            }),
        )
        .await
        .expect(201);
    let case_id = opened.body["id"].as_str().unwrap().to_string();
    let tasks = app.get(&format!("/api/v1/discharge-cases/{case_id}/tasks"), &msw.token).await.expect(200);
    let task = tasks.body["items"][0].clone();
    let task_id = task["id"].as_str().unwrap().to_string();
    let etag = format!("\"{}\"", task["version"]);
    app.patch(&format!("/api/v1/tasks/{task_id}"), &msw.token, json!({"assignee_id": t.nurse.id}), Some(&etag))
        .await
        .expect(200);
    (msw, case_id, task_id)
}

/// Each event says what happened (`discharge_case.opened`, `discharge_task.assigned` …), and the
/// signing secret is sealed at rest: the database holds no secret in the clear, a secret stored in
/// the clear by an earlier release is read and then sealed at start, and a new sealing key seals
/// everything again while the previous one still opens it.
async fn each_event_says_what_happened_and_secrets_are_sealed_at_rest(backend: Backend) {
    use diesel::prelude::*;
    use renkei::db::schema::webhook_endpoints::dsl as w;
    use renkei::sealing::Sealer;

    let partner = Partner::start().await;
    let app = webhook_app(backend, &[]).await;
    let t = team(&app, "14136").await;
    let admin = station_admin(&app, &t).await;
    let (endpoint_id, secret) = register(&app, &admin, &t.nurse_station, &format!("{}/ok/case", partner.origin)).await;
    let stored = |app: &TestApp, id: &str| {
        let (db, id) = (app.db.clone(), id.to_string());
        async move {
            db.run(move |conn| Ok(w::webhook_endpoints.find(&id).select(w::secret).first::<String>(conn)?))
                .await
                .unwrap()
        }
    };
    let at_rest = stored(&app, &endpoint_id).await;
    assert!(at_rest.starts_with("sealed:v1:"), "{at_rest}");
    assert!(!at_rest.contains(secret.trim_start_matches("whsec_")), "the secret is in the database: {at_rest}");

    // A hospital opens a case, a task is given to the nurse, the patient goes home.
    let (msw, case_id, task_id) = open_a_case_and_give_its_first_task_to_the_nurse(&app, &t, "14136").await;
    let today = (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive().to_string();
    app.post(&format!("/api/v1/discharge-cases/{case_id}/discharge"), &msw.token, json!({"discharged_on": today}))
        .await
        .expect(200);
    partner.wait_for("/ok/case", 5, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut got: Vec<(String, String, String)> = partner
        .at("/ok/case")
        .iter()
        .map(|r| {
            let body = verify_independently(&secret, r)["body"].clone();
            assert_eq!(r.header("renkei-event-type"), body["type"].as_str(), "the header names the type");
            let s = |v: &Value| v.as_str().unwrap().to_string();
            (s(&body["type"]), s(&body["resource"]["type"]), s(&body["resource"]["id"]))
        })
        .collect();
    got.sort();
    let case = |kind: &str| (kind.to_string(), "discharge_case".to_string(), case_id.clone());
    let mut expected = vec![
        case("discharge_case.opened"),
        case("discharge_task.created"),
        ("discharge_task.assigned".to_string(), "discharge_task".to_string(), task_id.clone()),
        case("discharge_case.discharged"),
        case("discharge_task.deadlines_moved"),
    ];
    expected.sort();
    assert_eq!(got, expected, "one event per step, each saying what happened");

    // An endpoint registered by the release before sealing: its secret is in the clear.
    let legacy = "whsec_registered-before-sealing-0123456789abcdefghij";
    let id = endpoint_id.clone();
    app.db
        .run(move |conn| Ok(diesel::update(w::webhook_endpoints.find(&id)).set(w::secret.eq(legacy)).execute(conn)?))
        .await
        .unwrap();
    // Deliveries go on, signed with it ...
    let current = app.get(&format!("/api/v1/tasks/{task_id}"), &msw.token).await.expect(200);
    let etag = format!("\"{}\"", current.body["version"]);
    app.patch(&format!("/api/v1/tasks/{task_id}"), &msw.token, json!({"status": "accepted"}), Some(&etag))
        .await
        .expect(200);
    let updated = partner.wait_for("/ok/case", 6, Duration::from_secs(10)).await;
    assert_eq!(verify_independently(legacy, &updated[5])["body"]["type"], "discharge_task.status_changed");
    // ... and the next start seals it (what `renkei serve` and `renkei migrate` run).
    let sealer = Sealer::new(&app.config.secrets_key, &app.config.secrets_key_previous);
    let first = sealer.clone();
    let sealed = app.db.run(move |conn| renkei::webhooks::seal_stored_secrets(conn, &first)).await.unwrap();
    assert_eq!(sealed, 1);
    let at_rest = stored(&app, &endpoint_id).await;
    assert!(at_rest.starts_with("sealed:v1:") && !at_rest.contains("registered-before-sealing"), "{at_rest}");
    let again = sealer.clone();
    assert_eq!(app.db.run(move |conn| renkei::webhooks::seal_stored_secrets(conn, &again)).await.unwrap(), 0);
    app.post(&format!("/api/v1/flags/{}/acknowledge", raise_flag(&app, &t, "発熱").await), &t.nurse.token, json!({}))
        .await
        .expect(200);
    let later = partner.wait_for("/ok/case", 8, Duration::from_secs(10)).await;
    let mut flag_events: Vec<String> = later[6..]
        .iter()
        .map(|r| verify_independently(legacy, r)["body"]["type"].as_str().unwrap().to_string())
        .collect();
    flag_events.sort();
    assert_eq!(flag_events, ["flag.acknowledged", "flag.raised"], "the same secret signs, sealed");

    // A new sealing key, the old one kept as previous: everything is sealed again and opens.
    let rotated = Sealer::new(&[42; 32], &[app.config.secrets_key]);
    let with_new = rotated.clone();
    assert_eq!(app.db.run(move |conn| renkei::webhooks::seal_stored_secrets(conn, &with_new)).await.unwrap(), 1);
    let id = endpoint_id.clone();
    let endpoint = app.db.run(move |conn| Ok(renkei::webhooks::find(conn, &id)?.unwrap())).await.unwrap();
    assert_eq!(endpoint.secret(&rotated).as_deref(), Ok(legacy));
    assert!(endpoint.secret(&Sealer::new(&[42; 32], &[])).is_ok(), "sealed under the new key");
    assert!(endpoint.secret(&sealer).is_err(), "the old key alone no longer opens it");
}

/// Web Push of a task assignment: a discharge task assigned to the nurse, who has a
/// subscription, produces one push the independent code decrypts.
async fn a_task_assignment_is_pushed_once(backend: Backend) {
    let partner = Partner::start().await;
    let app = webhook_app(backend, &[]).await;
    let t = team(&app, "14134").await;
    let phone = Browser::new();
    app.post(
        "/api/v1/me/push-subscriptions",
        &t.nurse.token,
        phone.subscription(&format!("{}/push/nurse", partner.origin)),
    )
    .await
    .expect(201);
    let (_, _, task_id) = open_a_case_and_give_its_first_task_to_the_nurse(&app, &t, "14134").await;
    partner.wait_for("/push/nurse", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got = partner.at("/push/nurse");
    assert_eq!(got.len(), 1, "one push for one assignment");
    if let Some(out) = decrypt_independently(&phone, &got[0]) {
        let message: Value = serde_json::from_str(out["plaintext"].as_str().unwrap()).unwrap();
        assert_eq!(message["kind"], "task_assigned");
        assert_eq!(message["id"], task_id.as_str());
        assert_eq!(message["url"], format!("https://renkei.example.jp/tasks/{task_id}"));
        assert_eq!(message["emergency"], false);
        say("task-assignment push decrypted by http_ece");
    }
}

/// Without a VAPID key push is off: the key answers 404 and a subscription is refused (409)
/// rather than kept where nothing could ever reach it.
async fn without_a_vapid_key_no_subscription_is_kept(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("RENKEI_VAPID_PRIVATE_KEY", "off")]).await;
    let t = team(&app, "14135").await;
    app.call("GET", "/api/v1/push/public-key", None, None, &[]).await.expect(404);
    let res = app
        .post(
            "/api/v1/me/push-subscriptions",
            &t.care_manager.token,
            Browser::new().subscription("https://push.example.net/a"),
        )
        .await
        .expect(409);
    assert!(res.body["detail"].as_str().unwrap().contains("プッシュ通知"), "{}", res.text);
    assert_eq!(
        app.get("/api/v1/me/push-subscriptions", &t.care_manager.token).await.expect(200).body["items"],
        json!([])
    );
}

crate::both_backends!(by_backend: a_task_assignment_is_pushed_once);
crate::both_backends!(by_backend: each_event_says_what_happened_and_secrets_are_sealed_at_rest);
crate::both_backends!(by_backend: without_a_vapid_key_no_subscription_is_kept);
