//! Web Push end to end: a person registers a subscription whose endpoint is a real HTTP server
//! started by the test (standing in for the push service); a flag raised through the API reaches
//! it exactly once, through the outbox, and independent code (Python's `http_ece` and
//! `cryptography`, tests/push_decrypt.py) decrypts the message with the subscription's private
//! key and verifies the VAPID signature. A subscription the push service says is gone (410) is
//! deleted.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{json, Value};

use crate::helpers::{say, Backend, TestApp};
use crate::patients::team;

#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The stand-in push service: 201 for every message, except 410 (gone) under `/gone/`.
pub(crate) struct PushService {
    pub(crate) origin: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl PushService {
    pub(crate) async fn start() -> PushService {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let store = received.clone();
        let server = HttpServer::new(move || {
            let store = store.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let store = store.clone();
                async move {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                        .collect();
                    let path = req.path().to_string();
                    store.lock().unwrap().push(Received { path: path.clone(), headers, body: body.to_vec() });
                    if path.starts_with("/gone/") {
                        HttpResponse::Gone().finish()
                    } else {
                        HttpResponse::Created().finish()
                    }
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        PushService { origin, received }
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub(crate) async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let start = Instant::now();
        while self.received().len() < n && start.elapsed() < within {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.received()
    }
}

/// A browser's side of a subscription: its key pair and auth secret.
pub(crate) struct Browser {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Browser {
    pub(crate) fn new() -> Browser {
        Browser { secret: p256::SecretKey::random(&mut rand::rngs::OsRng), auth: rand::random() }
    }

    pub(crate) fn subscription(&self, endpoint: &str) -> Value {
        json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {
                "p256dh": b64(self.secret.public_key().to_encoded_point(false).as_bytes()),
                "auth": b64(&self.auth),
            }
        })
    }
}

/// The Python with `http_ece` and `cryptography`: `RENKEI_PUSH_DECRYPT_PYTHON` (CI's venv) or
/// `python3`, if it can import them.
fn decrypt_python() -> Option<String> {
    let python = std::env::var("RENKEI_PUSH_DECRYPT_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import http_ece, cryptography"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

/// Decrypts and verifies a received push with independent code; `None` when it is not installed
/// (allowed unless `RENKEI_REQUIRE_PUSH_DECRYPT=1`).
pub(crate) fn decrypt_independently(browser: &Browser, received: &Received) -> Option<Value> {
    let Some(python) = decrypt_python() else {
        assert!(
            std::env::var("RENKEI_REQUIRE_PUSH_DECRYPT").as_deref() != Ok("1"),
            "RENKEI_REQUIRE_PUSH_DECRYPT=1 but http_ece is not importable (set RENKEI_PUSH_DECRYPT_PYTHON)"
        );
        say("SKIPPED: independent Web Push decryption (python3 cannot import http_ece; see .ci/run)");
        return None;
    };
    let input = json!({
        "private_key": b64(&browser.secret.to_bytes()),
        "auth": b64(&browser.auth),
        "body": base64::engine::general_purpose::STANDARD.encode(&received.body),
        "authorization": received.header("authorization").expect("an Authorization header"),
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/push_decrypt.py");
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the decryption script");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "independent decryption failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

async fn push_app(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[
            ("RENKEI_PUSH_ALLOW_LOOPBACK", "true"),
            ("RENKEI_PUBLIC_URL", "https://renkei.example.jp"),
            ("RENKEI_VAPID_SUBJECT", "mailto:ops@renkei.example.jp"),
        ],
    )
    .await
}

async fn a_flag_is_pushed_once_encrypted_and_signed(backend: Backend) {
    let service = PushService::start().await;
    let app = push_app(backend).await;
    let t = team(&app, "14131").await;
    let key = app.call("GET", "/api/v1/push/public-key", None, None, &[]).await.expect(200);
    let public_key = key.body["public_key"].as_str().unwrap().to_string();
    assert_eq!(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&public_key).unwrap().len(), 65);

    let phone = Browser::new();
    let old_tablet = Browser::new();
    let mine = "/api/v1/me/push-subscriptions";
    let sub = app
        .post(mine, &t.care_manager.token, phone.subscription(&format!("{}/send/phone-1", service.origin)))
        .await
        .expect(201);
    let sub_id = sub.body["id"].as_str().unwrap().to_string();
    app.post(mine, &t.care_manager.token, old_tablet.subscription(&format!("{}/gone/tablet-1", service.origin)))
        .await
        .expect(201);
    assert_eq!(app.get(mine, &t.care_manager.token).await.expect(200).body["items"].as_array().unwrap().len(), 2);

    // The nurse raises an emergency flag with a typed reason; the care manager is alerted.
    let reason = "呼吸苦あり、山田様の家族より連絡";
    let flag = app
        .post(
            &format!("/api/v1/patients/{}/flags", t.patient_id),
            &t.nurse.token,
            json!({"severity": "emergency", "reason": reason}),
        )
        .await
        .expect(201);
    let flag_id = flag.body["id"].as_str().unwrap().to_string();
    let received = service.wait_for(2, Duration::from_secs(10)).await;
    // The worker polls every second: give a second delivery time to show up, if there were one.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let received = {
        let again = service.received();
        assert_eq!(again.len(), received.len());
        again
    };
    let to_phone: Vec<&Received> = received.iter().filter(|r| r.path == "/send/phone-1").collect();
    let to_tablet: Vec<&Received> = received.iter().filter(|r| r.path == "/gone/tablet-1").collect();
    assert_eq!((to_phone.len(), to_tablet.len()), (1, 1), "{received:?}");
    let push = to_phone[0];
    assert_eq!(push.header("content-encoding"), Some("aes128gcm"));
    assert_eq!(push.header("urgency"), Some("high"));
    assert!(push.header("ttl").is_some_and(|t| t.parse::<u64>().unwrap() > 0));
    let body = String::from_utf8_lossy(&push.body);
    assert!(!body.contains("flag_raised") && !body.contains(&flag_id), "the message is sent encrypted");

    // The push service said the tablet's subscription is gone: it is deleted.
    let left = app.get(mine, &t.care_manager.token).await.expect(200);
    let ids: Vec<&str> = left.body["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [sub_id.as_str()]);
    // The e-mail went out as before, one outbox row of its own.
    assert_eq!(crate::helpers::emails_to(&app, &t.care_manager.id, "flag_raised").await.len(), 1);

    if let Some(out) = decrypt_independently(&phone, push) {
        let message: Value = serde_json::from_str(out["plaintext"].as_str().unwrap()).unwrap();
        assert_eq!(message["kind"], "flag_raised");
        assert_eq!(message["id"], flag_id.as_str());
        assert_eq!(message["emergency"], true);
        assert_eq!(message["url"], format!("https://renkei.example.jp/flags/{flag_id}"));
        assert!(message["title"].as_str().unwrap().contains("緊急"), "{message}");
        let text = message.to_string();
        for typed in ["呼吸苦", "山田", "川崎", "カワサキ"] {
            assert!(!text.contains(typed), "the message carries {typed}: {text}");
        }
        assert_eq!(out["claims"]["aud"], service.origin.as_str());
        assert_eq!(out["claims"]["sub"], "mailto:ops@renkei.example.jp");
        let exp = out["claims"]["exp"].as_i64().unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!(exp > now && exp <= now + 24 * 3600, "exp {exp}");
        assert_eq!(out["k"], public_key.as_str());
        say("push decrypted by http_ece; VAPID signature verified by cryptography");
    }

    // Only the owner deletes a subscription; anyone else gets the 404 of a missing one.
    let path = format!("{mine}/{sub_id}");
    app.call("DELETE", &path, Some(&t.nurse.token), None, &[]).await.expect(404);
    app.call("DELETE", &path, Some(&t.care_manager.token), None, &[]).await.expect(204);
    app.call("DELETE", &path, Some(&t.care_manager.token), None, &[]).await.expect(404);
    app.call("DELETE", &format!("{mine}/not-an-id"), Some(&t.care_manager.token), None, &[]).await.expect(404);
}

async fn subscriptions_are_validated(app: TestApp) {
    let t = team(&app, "14132").await;
    let browser = Browser::new();
    let mine = "/api/v1/me/push-subscriptions";
    app.call("POST", mine, None, Some(&browser.subscription("https://push.example.net/a")), &[]).await.expect(401);
    for (body, field) in [
        (browser.subscription("http://push.example.net/a"), "endpoint"),
        (browser.subscription("ftp://push.example.net/a"), "endpoint"),
        (browser.subscription("not a url"), "endpoint"),
        (
            json!({"endpoint": "https://push.example.net/a", "keys": {"p256dh": format!("{}=", b64(browser.secret.public_key().to_encoded_point(false).as_bytes())), "auth": b64(&[1u8; 16])}}),
            "keys.p256dh",
        ),
        (
            json!({"endpoint": "https://push.example.net/a", "keys": {"p256dh": b64(&[4u8; 65]), "auth": b64(&[1u8; 16])}}),
            "keys.p256dh",
        ),
        (
            json!({"endpoint": "https://push.example.net/a", "keys": {"p256dh": b64(browser.secret.public_key().to_encoded_point(false).as_bytes()), "auth": b64(&[1u8; 8])}}),
            "keys.auth",
        ),
    ] {
        let res = app.post(mine, &t.care_manager.token, body).await.expect(422);
        assert_eq!(res.body["errors"][0]["field"], field, "{}", res.text);
    }
    // The test setting that allows loopback endpoints is off here.
    let res = app.post(mine, &t.care_manager.token, browser.subscription("http://127.0.0.1:9/a")).await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], "endpoint");
    let ok =
        app.post(mine, &t.care_manager.token, browser.subscription("https://push.example.net/a")).await.expect(201);
    // The same browser registered again by someone else moves to them.
    app.post(mine, &t.nurse.token, browser.subscription("https://push.example.net/a")).await.expect(201);
    assert_eq!(app.get(mine, &t.care_manager.token).await.expect(200).body["items"], json!([]));
    assert_ne!(app.get(mine, &t.nurse.token).await.expect(200).body["items"][0]["id"], ok.body["id"]);
}

crate::both_backends!(by_backend: a_flag_is_pushed_once_encrypted_and_signed);
crate::both_backends!(subscriptions_are_validated);

/// Preferences per channel and kind: a care manager who turned flag alerts off gets neither the
/// e-mail nor the push of an urgent flag, and both of an emergency one.
async fn preferences_choose_channels_but_an_emergency_goes_everywhere(backend: Backend) {
    let service = PushService::start().await;
    let app = push_app(backend).await;
    let t = team(&app, "14133").await;
    let prefs = "/api/v1/me/notification-preferences";
    let all_on = json!({"flag_raised": true, "flag_escalated": true, "task_assigned": true});
    let before = app.get(prefs, &t.care_manager.token).await.expect(200);
    assert_eq!(before.body, json!({"email": all_on, "push": all_on}));
    for (body, field) in [
        (json!({"push": {"flag_raised": "no"}}), "push.flag_raised"),
        (json!({"push": {"flag_raised": null}}), "push.flag_raised"),
        (json!({"email": null}), "email"),
    ] {
        let bad = app.call("PUT", prefs, Some(&t.care_manager.token), Some(&body), &[]).await.expect(422);
        assert_eq!(bad.body["errors"][0]["field"], field, "{}", bad.text);
    }
    let body = json!({"email": {"flag_raised": false}, "push": {"flag_raised": false}});
    let now = app.call("PUT", prefs, Some(&t.care_manager.token), Some(&body), &[]).await.expect(200);
    assert_eq!(now.body["email"], json!({"flag_raised": false, "flag_escalated": true, "task_assigned": true}));
    assert_eq!(now.body["push"]["flag_raised"], false);
    assert_eq!(app.get(prefs, &t.care_manager.token).await.expect(200).body, now.body);
    // Someone else's preferences are untouched.
    assert_eq!(app.get(prefs, &t.nurse.token).await.expect(200).body, before.body);

    let phone = Browser::new();
    app.post(
        "/api/v1/me/push-subscriptions",
        &t.care_manager.token,
        phone.subscription(&format!("{}/send/cm", service.origin)),
    )
    .await
    .expect(201);
    let flags = format!("/api/v1/patients/{}/flags", t.patient_id);
    app.post(&flags, &t.nurse.token, json!({"severity": "urgent", "reason": "食欲低下"})).await.expect(201);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(service.received().len(), 0, "no push for an urgent flag the person turned off");
    assert_eq!(crate::helpers::emails_to(&app, &t.care_manager.id, "flag_raised").await.len(), 0);

    app.post(&flags, &t.nurse.token, json!({"severity": "emergency", "reason": "意識レベル低下"})).await.expect(201);
    let got = service.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("urgency"), Some("high"));
    assert_eq!(crate::helpers::emails_to(&app, &t.care_manager.id, "flag_raised").await.len(), 1);
}

crate::both_backends!(by_backend: preferences_choose_channels_but_an_emergency_goes_everywhere);
