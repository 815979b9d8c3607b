//! The console: sign-in with the API's sign-in path and TOTP, the session cookie's flags, form
//! tokens, the security headers, the patient page's audited read and its byte-identical 404,
//! the flag acknowledgement form and the e-mails' links, the ward's caseload page and its CSV
//! download, and the console's authorisation matrix.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::helpers::{say, totp_code, Person, TestApp, TestResponse, PASSWORD};
use crate::patients::{patient_body, team, Team};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; \
form-action 'self'; base-uri 'none'";
const MISSING: &str = "01900000-0000-7000-8000-0000000000ff";

/// A browser: its own cookies, no redirects followed, every answer checked against the contract.
pub struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
    lang: &'static str,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Browser<'a> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Browser { app, client, cookies: BTreeMap::new(), lang: "ja,en;q=0.5" }
    }

    pub async fn send(&mut self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> TestResponse {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(m, self.app.url(path)).header("accept-language", self.lang);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", jar.join("; "));
        }
        if let Some(f) = form {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(f).unwrap());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        for c in headers.get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let text = res.text().await.unwrap();
        let response = TestResponse { status, headers, text, body: Value::Null };
        crate::contract::check_response(method, path, &response);
        response
    }

    pub async fn get(&mut self, path: &str) -> TestResponse {
        self.send("GET", path, None).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> TestResponse {
        self.send("POST", path, Some(form)).await
    }

    /// Signs in through the form; answers the final answer of the form's POST.
    pub async fn sign_in(&mut self, email: &str, code: Option<&str>, next: &str) -> TestResponse {
        let page = self.get(&format!("/console/sign-in?next={next}")).await.expect(200);
        let csrf = csrf_of(&page.text);
        self.post(
            "/console/sign-in",
            &[
                ("csrf", &csrf),
                ("next", next),
                ("email", email),
                ("password", PASSWORD),
                ("totp_code", code.unwrap_or("")),
            ],
        )
        .await
    }
}

/// A browser signed in as `person` (with a code when two-factor sign-in is on).
pub async fn signed_in<'a>(app: &'a TestApp, person: &Person) -> Browser<'a> {
    let mut b = Browser::new(app);
    let code = person.totp_secret.as_deref().map(|s| totp_code(s, 1));
    b.sign_in(&person.email, code.as_deref(), "/console").await.expect(303);
    b
}

/// The form token in a page.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form token") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

fn assert_guarded(res: &TestResponse) {
    assert_eq!(res.header("content-security-policy").as_deref(), Some(CSP));
    assert_eq!(res.header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(res.header("referrer-policy").as_deref(), Some("no-referrer"));
}

/// A physician with two-factor sign-in on, on the patient's team; answers the TOTP secret.
async fn physician_with_totp(app: &TestApp, t: &Team) -> (Person, String) {
    let clinic = app.organization(&t.admin, "clinic", "中原在宅クリニック", Some("14131")).await;
    let doctor = app.person(&t.admin, &clinic, "physician", "member").await;
    let enrol = app.post("/api/v1/me/totp", &doctor.token, json!({"password": PASSWORD})).await.expect(200);
    let secret = enrol.body["secret"].as_str().unwrap().to_string();
    app.post("/api/v1/me/totp/confirm", &doctor.token, json!({"code": totp_code(&secret, 0)})).await.expect(200);
    app.post(
        &format!("/api/v1/patients/{}/care-team", t.patient_id),
        &t.care_manager.token,
        json!({"user_id": doctor.id, "role": "primary_physician"}),
    )
    .await
    .expect(201);
    (doctor, secret)
}

/// A visit note with low SpO2 and a flag on it.
async fn deteriorating(app: &TestApp, t: &Team) -> String {
    let at = (Utc::now() - chrono::Duration::hours(2)).to_rfc3339_opts(SecondsFormat::Micros, true);
    let earlier = (Utc::now() - chrono::Duration::days(3)).to_rfc3339_opts(SecondsFormat::Micros, true);
    for (when, spo2, pulse) in [(earlier, 96, 78), (at, 89, 118)] {
        let vitals = json!({"temperature": 38.2, "systolic_bp": 104, "diastolic_bp": 62, "pulse": pulse,
                            "respiratory_rate": 23, "spo2": spo2, "on_oxygen": false, "consciousness": "A"});
        app.post(
            &format!("/api/v1/patients/{}/notes", t.patient_id),
            &t.nurse.token,
            json!({"kind": "visit", "occurred_at": when, "text": "訪問。息切れあり。", "vitals": vitals}),
        )
        .await
        .expect(201);
    }
    let flag = app
        .post(
            &format!("/api/v1/patients/{}/flags", t.patient_id),
            &t.nurse.token,
            json!({"severity": "urgent", "reason": "SpO2 低下、呼吸数増加"}),
        )
        .await
        .expect(201);
    flag.body["id"].as_str().unwrap().to_string()
}

async fn patient_reads(app: &TestApp, actor_id: &str, patient_id: &str) -> i64 {
    use diesel::prelude::*;
    use renkei::db::schema::audit_events::dsl as a;
    let (actor_id, patient_id) = (actor_id.to_string(), patient_id.to_string());
    app.db
        .run(move |conn| {
            Ok(a::audit_events
                .filter(a::actor_id.eq(actor_id))
                .filter(a::patient_id.eq(patient_id.clone()))
                .filter(a::resource_type.eq("patient"))
                .filter(a::resource_id.eq(patient_id))
                .filter(a::action.eq("R"))
                .filter(a::outcome.eq("success"))
                .count()
                .get_result::<i64>(conn)?)
        })
        .await
        .unwrap()
}

async fn sign_in_cookie_and_headers(app: TestApp) {
    let t = team(&app, "14131").await;
    let (doctor, secret) = physician_with_totp(&app, &t).await;
    let mut b = Browser::new(&app);

    // No session: to the sign-in page, with the way back.
    let res = b.get("/console").await.expect(303);
    assert_eq!(res.header("location").as_deref(), Some("/console/sign-in?next=/console"));
    assert_guarded(&res);
    let page = b.get("/console/sign-in?next=/console").await.expect(200);
    assert_guarded(&page);
    assert!(page.text.contains("<html lang=\"ja\">") && page.text.contains("サインイン"));
    assert!(!page.text.contains("<script") && !page.text.contains("style="), "no inline script or style");
    for field in ["email", "password", "totp_code"] {
        assert!(page.text.contains(&format!("<label for=\"{field}\">")), "{field} has a label");
    }

    // A form without its token, or with another's: 403, and no session.
    let res = b
        .post("/console/sign-in", &[("email", &doctor.email), ("password", PASSWORD), ("totp_code", "")])
        .await
        .expect(403);
    assert_guarded(&res);
    assert!(!b.cookies.contains_key("renkei_session"));
    // A missing second factor fails like a wrong password.
    b.sign_in(&doctor.email, None, "/console").await.expect(401);
    let wrong = b.sign_in(&doctor.email, Some("000000"), "/console").await.expect(401);
    assert!(wrong.text.contains("正しくありません"));

    // With the code: the cookie, HttpOnly and SameSite=Strict (no Secure in development).
    let code = totp_code(&secret, 1);
    let res = b.sign_in(&doctor.email, Some(&code), "/console/patients/x?cursor=a").await.expect(303);
    assert_eq!(res.header("location").as_deref(), Some("/console/patients/x?cursor=a"));
    let set: Vec<String> = res.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let session = set.iter().find(|c| c.starts_with("renkei_session=")).expect("a session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Strict"), "{session}");
    assert!(session.contains("Path=/"), "{session}");
    assert!(!session.contains("Secure"), "development runs over http: {session}");
    let cookie = b.cookies["renkei_session"].clone();
    // The cookie is no bearer token.
    app.get("/api/v1/me", &cookie).await.expect(401);

    let me = b.get("/console").await.expect(200);
    assert_guarded(&me);
    assert!(me.text.contains("マイページ"));

    // English when the browser prefers it.
    b.lang = "en-GB,en;q=0.9,ja;q=0.3";
    let en = b.get("/console").await.expect(200);
    assert!(en.text.contains("<html lang=\"en\">") && en.text.contains("My page"));
    b.lang = "ja";

    // No open redirect: another site's address leads home.
    let mut other = Browser::new(&app);
    let res = other.sign_in(&t.nurse.email, None, "https://evil.example/").await.expect(303);
    assert_eq!(res.header("location").as_deref(), Some("/console"));

    // Sign-out needs the form token, ends the session and the cookie.
    b.post("/console/sign-out", &[("csrf", "nope")]).await.expect(403);
    let csrf = csrf_of(&me.text);
    b.post("/console/sign-out", &[("csrf", &csrf)]).await.expect(303);
    assert!(!b.cookies.contains_key("renkei_session"));
    b.cookies.insert("renkei_session".into(), cookie);
    b.get("/console").await.expect(303);

    // The stylesheet is built in.
    let css = b.get("/console/assets/console.css").await.expect(200);
    assert_eq!(css.header("content-type").as_deref(), Some("text/css; charset=utf-8"));
}

async fn patient_page_acknowledgement_and_404(app: TestApp) {
    let t = team(&app, "14131").await;
    let (doctor, secret) = physician_with_totp(&app, &t).await;
    let flag_id = deteriorating(&app, &t).await;
    let mut b = Browser::new(&app);
    b.sign_in(&doctor.email, Some(&totp_code(&secret, 1)), "/console").await.expect(303);

    // マイページ lists the flag with a link to the patient.
    let me = b.get("/console").await.expect(200);
    assert!(me.text.contains("SpO2 低下、呼吸数増加"));
    assert!(me.text.contains(&format!("/console/patients/{}", t.patient_id)));

    // The patient page, audited before it is answered.
    let before = patient_reads(&app, &doctor.id, &t.patient_id).await;
    let page = b.get(&format!("/console/patients/{}", t.patient_id)).await.expect(200);
    assert_guarded(&page);
    assert_eq!(patient_reads(&app, &doctor.id, &t.patient_id).await, before + 1);
    assert!(page.text.contains("川崎") && page.text.contains("カワサキ"));
    assert!(page.text.contains("主治医") || page.text.contains("primary"), "the team with roles");
    for parameter in ["spo2", "pulse", "systolic_bp", "temperature", "respiratory_rate"] {
        assert!(page.text.contains(&format!("data-parameter=\"{parameter}\"")), "{parameter} chart");
    }
    assert!(page.text.contains("<svg") && page.text.contains("NEWS2 3点 (≤91%)"), "bands named in text");
    assert!(page.text.contains("89%"), "the low reading is drawn");
    // Light enough for a phone on a weak signal: the whole page, charts included.
    say(&format!("console: patient page {} bytes (5 vital-sign charts, {:?})", page.text.len(), app.backend));
    assert!(page.text.len() < 120_000, "patient page weighs {} bytes", page.text.len());
    assert!(!page.text.contains("<script"));
    // Dates as people write them.
    assert!(page.text.contains("年") && page.text.contains("日("));

    // Outside the scope and missing: the same 404 page, byte for byte.
    let outsider_org = app.organization(&t.admin, "clinic", "外部クリニック", None).await;
    let outsider = app.person(&t.admin, &outsider_org, "physician", "member").await;
    let mut o = Browser::new(&app);
    o.sign_in(&outsider.email, None, "/console").await.expect(303);
    let hidden = o.get(&format!("/console/patients/{}", t.patient_id)).await.expect(404);
    let missing = o.get(&format!("/console/patients/{MISSING}")).await.expect(404);
    let malformed = o.get("/console/patients/not-an-id").await.expect(404);
    assert_eq!(hidden.text, missing.text);
    assert_eq!(hidden.text, malformed.text);
    assert_guarded(&hidden);
    let hidden_flag = o.get(&format!("/console/flags/{flag_id}")).await.expect(404);
    assert_eq!(hidden_flag.text, missing.text);
    // An outsider's acknowledgement changes nothing.
    let ocsrf = csrf_of(&o.get("/console").await.expect(200).text);
    o.post(&format!("/console/flags/{flag_id}/acknowledge"), &[("csrf", &ocsrf), ("note", "x")]).await.expect(404);

    // The acknowledgement form: refused without the session's token...
    let csrf = csrf_of(&page.text);
    let refused = b
        .post(&format!("/console/flags/{flag_id}/acknowledge"), &[("csrf", &ocsrf), ("note", "往診します")])
        .await
        .expect(403);
    assert_guarded(&refused);
    let flag = app.get(&format!("/api/v1/flags/{flag_id}"), &t.nurse.token).await.expect(200);
    assert_eq!(flag.body["status"], json!("active"));
    // ...and done with it.
    let done = b
        .post(&format!("/console/flags/{flag_id}/acknowledge"), &[("csrf", &csrf), ("note", "往診します")])
        .await
        .expect(303);
    assert_eq!(done.header("location"), Some(format!("/console/patients/{}", t.patient_id)));
    let flag = app.get(&format!("/api/v1/flags/{flag_id}"), &t.nurse.token).await.expect(200);
    assert_eq!(flag.body["status"], json!("acknowledged"));
    assert_eq!(flag.body["acknowledged_by"], json!(doctor.id));
    assert_eq!(flag.body["acknowledge_note"], json!("往診します"));
    // Twice: a page saying it cannot be done, not a problem document.
    let again = b.post(&format!("/console/flags/{flag_id}/acknowledge"), &[("csrf", &csrf)]).await.expect(409);
    assert!(again.header("content-type").unwrap().starts_with("text/html"));

    // Resolving needs its note; then the flag is closed.
    let path = format!("/console/flags/{flag_id}/resolve");
    b.post(&path, &[("csrf", &ocsrf), ("note", "改善")]).await.expect(403);
    let bare = b.post(&path, &[("csrf", &csrf), ("note", " ")]).await.expect(422);
    assert!(bare.text.contains("note"), "the page names the missing note");
    b.post(&path, &[("csrf", &csrf), ("note", "往診で改善を確認")]).await.expect(303);
    let flag = app.get(&format!("/api/v1/flags/{flag_id}"), &t.nurse.token).await.expect(200);
    assert_eq!(flag.body["status"], json!("resolved"));
    assert_eq!(flag.body["resolve_note"], json!("往診で改善を確認"));
    b.post(&path, &[("csrf", &csrf), ("note", "再度")]).await.expect(409);

    // The e-mails' links lead to the console's pages.
    let link = b.get(&format!("/flags/{flag_id}")).await.expect(303);
    assert_eq!(link.header("location"), Some(format!("/console/flags/{flag_id}")));
    let on = b.get(&format!("/console/flags/{flag_id}")).await.expect(303);
    assert_eq!(on.header("location"), Some(format!("/console/patients/{}#flag-{flag_id}", t.patient_id)));
    for suffix in ["", "/access-log", "/care-team"] {
        let link = b.get(&format!("/patients/{}{suffix}", t.patient_id)).await.expect(303);
        assert_eq!(link.header("location"), Some(format!("/console/patients/{}", t.patient_id)));
    }
    assert_eq!(b.get("/me/tasks").await.expect(303).header("location").as_deref(), Some("/console"));
    // Signed out, a link leads through sign-in and back.
    let mut fresh = Browser::new(&app);
    let res = fresh.get(&format!("/console/flags/{flag_id}")).await.expect(303);
    assert_eq!(res.header("location"), Some(format!("/console/sign-in?next=/console/flags/{flag_id}")));
}

/// What is refused before any console handler runs — a wrong method, a NUL in the path — is
/// answered as a console page too, with the page's security headers, never as problem+json;
/// the API's paths keep answering problem+json.
async fn refusals_before_a_handler_are_pages(app: TestApp) {
    let t = team(&app, "14137").await;
    let mut b = signed_in(&app, &t.nurse).await;
    let wrong = b.send("DELETE", "/console/sign-in", None).await.expect(405);
    assert!(wrong.header("content-type").is_some_and(|c| c.starts_with("text/html")), "{:?}", wrong.headers);
    assert_eq!(wrong.header("allow").as_deref(), Some("GET, POST"));
    assert_guarded(&wrong);
    let nul = b.get("/console/patients/%00").await.expect(404);
    assert!(nul.header("content-type").is_some_and(|c| c.starts_with("text/html")));
    assert_eq!(nul.text, b.get(&format!("/console/patients/{MISSING}")).await.expect(404).text);
    // A NUL in a console page's query: the sign-in form ignores a return path it cannot use.
    b.get("/console/sign-in?next=%2Fconsole%00").await.expect(200);
    let api = app.call("DELETE", "/api/v1/me", Some(&t.nurse.token), None, &[]).await.expect(405);
    assert!(api.header("content-type").is_some_and(|c| c.starts_with("application/problem+json")));
}

/// The patient's notes, as the nurse reads them through the API.
async fn notes_of(app: &TestApp, t: &Team) -> Vec<serde_json::Value> {
    let res = app.get(&format!("/api/v1/patients/{}/notes", t.patient_id), &t.nurse.token).await.expect(200);
    res.body["items"].as_array().unwrap().clone()
}

/// The value of a hidden field of a page's form.
fn hidden_of(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html.find(&marker).unwrap_or_else(|| panic!("a field {name}")) + marker.len();
    html[at..].split('"').next().unwrap().to_string()
}

/// A nurse posts a visit note with vital signs from the patient page: recorded as the API
/// records one (the flag NEWS2 raises included), once however often the form is sent; a field
/// that does not parse is named and changes nothing; who may only read gets no form and a 403.
async fn patient_page_posts_a_note(app: TestApp) {
    let t = team(&app, "14132").await;
    let pid = t.patient_id.clone();
    let station = format!("/api/v1/organizations/{}", t.nurse_station);
    app.patch(&station, &t.admin.token, json!({"phone": "０４４－１１１－２２２２"}), None).await.expect(200);
    let mut b = signed_in(&app, &t.nurse).await;
    let page = b.get(&format!("/console/patients/{pid}")).await.expect(200);
    // The team with its organisations' numbers, to call from a phone.
    assert!(page.text.contains("<a href=\"tel:0441112222\">０４４－１１１－２２２２</a>"), "{}", page.text);
    assert!(page.text.contains(&format!("action=\"/console/patients/{pid}/notes\"")), "{}", page.text);
    // The birth date as the insurance card writes it.
    assert!(page.text.contains("昭和13年4月1日 (1938年)"), "{}", page.text);
    let (csrf, key) = (csrf_of(&page.text), hidden_of(&page.text, "key"));
    let at =
        (Utc::now() + chrono::Duration::hours(9) - chrono::Duration::minutes(20)).format("%Y-%m-%dT%H:%M").to_string();
    let text = "訪問。呼吸が苦しそう。ｶﾀｶﾅ半角も　全角空白も";
    let form = |spo2: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("csrf", csrf.clone()),
            ("key", key.clone()),
            ("kind", "visit".to_string()),
            ("occurred_at", at.clone()),
            ("text", text.to_string()),
            ("temperature", "38.5".to_string()),
            ("systolic_bp", "98".to_string()),
            ("diastolic_bp", "".to_string()),
            ("pulse", "１２０".to_string()),
            ("respiratory_rate", "25".to_string()),
            ("spo2", spo2.to_string()),
            ("consciousness", "A".to_string()),
        ]
    };
    let post = |f: &[(&'static str, String)]| f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let path = format!("/console/patients/{pid}/notes");

    // A value that is no number: a 422 page naming what to fix, and no note.
    let bad = post(&form("ninety"));
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = b.post(&path, &bad).await.expect(422);
    assert!(refused.text.contains("数字で入力してください"), "{}", refused.text);
    assert!(notes_of(&app, &t).await.is_empty());

    // The note, sent twice (a second press of the button): one note.
    let good = post(&form("８８"));
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for _ in 0..2 {
        let done = b.post(&path, &good).await.expect(303);
        assert_eq!(done.header("location"), Some(format!("/console/patients/{pid}#h-timeline")));
    }
    let items = notes_of(&app, &t).await;
    assert_eq!(items.len(), 1, "{items:?}");
    let note = &items[0];
    assert_eq!(note["text"], text, "Japanese text round-trips exactly");
    assert_eq!(note["kind"], "visit");
    assert_eq!(note["author_id"], t.nurse.id.as_str(), "{note}");
    assert_eq!(note["vitals"]["on_oxygen"], false, "an unticked box is room air");
    assert_eq!(note["news2"]["partial"], false, "{note}");
    assert_eq!(note["vitals"]["spo2"], 88);
    assert_eq!(note["vitals"]["pulse"], 120);
    assert!(note["vitals"]["diastolic_bp"].is_null());
    let expected_at =
        chrono::NaiveDateTime::parse_from_str(&at, "%Y-%m-%dT%H:%M").unwrap() - chrono::Duration::hours(9);
    let posted_at = chrono::DateTime::parse_from_rfc3339(note["occurred_at"].as_str().unwrap()).unwrap();
    assert_eq!(posted_at.naive_utc(), expected_at, "the form's time is Japan time");
    // NEWS2 of these signs raised the patient's flag, as a note through the API would.
    let flags = app.get(&format!("/api/v1/patients/{pid}/flags"), &t.nurse.token).await.expect(200);
    assert_eq!(flags.body["items"].as_array().unwrap().len(), 1, "{}", flags.body);
    // The page shows the note on its timeline.
    let page = b.get(&format!("/console/patients/{pid}")).await.expect(200);
    assert!(page.text.contains("呼吸が苦しそう"));

    // The ward's coordinator reads the page but is offered no form, and may not post.
    let coordinator = coordinator_of(&app, &t, "14132").await;
    let mut c = signed_in(&app, &coordinator).await;
    let read = c.get(&format!("/console/patients/{pid}")).await.expect(200);
    assert!(!read.text.contains("/notes\""), "no note form for a reader");
    let ccsrf = csrf_of(&read.text);
    let mut theirs = good.clone();
    theirs[0] = ("csrf", ccsrf.as_str());
    c.post(&path, &theirs).await.expect(403);
    assert_eq!(notes_of(&app, &t).await.len(), 1);
}

async fn audit_count(app: &TestApp, actor_id: &str, resource: &str) -> i64 {
    use diesel::prelude::*;
    use renkei::db::schema::audit_events::dsl as a;
    let (actor_id, resource) = (actor_id.to_string(), resource.to_string());
    app.db
        .run(move |conn| {
            Ok(a::audit_events
                .filter(a::actor_id.eq(actor_id))
                .filter(a::resource_type.eq(resource))
                .count()
                .get_result::<i64>(conn)?)
        })
        .await
        .unwrap()
}

/// A physician made coordinating physician of `ward`.
async fn coordinator_of(app: &TestApp, t: &Team, ward: &str) -> Person {
    let clinic = app.organization(&t.admin, "clinic", "区医師会", Some(ward)).await;
    let doctor = app.person(&t.admin, &clinic, "physician", "member").await;
    app.call("PUT", &format!("/api/v1/wards/{ward}/coordinators/{}", doctor.id), Some(&t.admin.token), None, &[])
        .await
        .expect(201);
    doctor
}

async fn ward_caseload_page_filters_pages_and_downloads(app: TestApp) {
    let t = team(&app, "14131").await;
    deteriorating(&app, &t).await;
    // 50 more patients: a page and a bit.
    for i in 0..50 {
        let kana = format!("タマ{}", ["ア", "イ", "ウ", "エ", "オ"][i % 5]);
        app.post("/api/v1/patients", &t.care_manager.token, patient_body("多摩", &kana, "14131")).await.expect(201);
    }
    let coordinator = coordinator_of(&app, &t, "14131").await;
    let mut b = signed_in(&app, &coordinator).await;

    // マイページ leads to the ward.
    let me = b.get("/console").await.expect(200);
    assert!(me.text.contains("href=\"/console/wards/14131\""), "{}", me.text);

    let before = audit_count(&app, &coordinator.id, "caseload").await;
    let page = b.get("/console/wards/14131").await.expect(200);
    assert_guarded(&page);
    assert!(!page.text.contains("<script") && !page.text.contains("style="));
    assert!(page.text.contains("川崎区") && page.text.contains("区の在宅療養患者一覧"));
    // The counts as a chart, named in words.
    assert!(page.text.contains("class=\"chart summary\"") && page.text.contains(">患者数</text>"));
    assert!(page.text.contains(">51</text>"), "51 patients counted");
    say(&format!("console: ward caseload page {} bytes (50 rows, {:?})", page.text.len(), app.backend));
    assert!(page.text.len() < 120_000, "caseload page weighs {} bytes", page.text.len());
    // 50 a page: the audit has one read per listed patient, and a link to the next page.
    assert_eq!(audit_count(&app, &coordinator.id, "caseload").await, before + 50);
    let next = page.text.split("rel=\"next\"").next().unwrap().rsplit("href=\"").next().unwrap();
    let next = next.split('"').next().unwrap().replace("&amp;", "&");
    assert!(next.starts_with("/console/wards/14131?") && next.contains("cursor="), "{next}");
    let second = b.get(&next).await.expect(200);
    assert!(second.text.contains("最初のページ") && !second.text.contains("rel=\"next\""));
    assert!(second.text.contains("(1 件を表示)"), "one patient on the second page");

    // The filters of the API, blank fields as not given: the flagged patient only.
    let flagged = b
        .get(
            "/console/wards/14131?has_active_flag=true&no_visit_days=&care_level=&status=&sort=latest_news2&order=desc",
        )
        .await
        .expect(200);
    assert!(flagged.text.contains(&format!("/console/patients/{}", t.patient_id)));
    assert!(flagged.text.contains("(1 件を表示)"));
    assert!(flagged.text.contains("value=\"true\" checked"), "the filter stays set");
    // Visited two hours ago: not among those without a visit in 14 days.
    let none = b.get("/console/wards/14131?has_active_flag=true&no_visit_days=14").await.expect(200);
    assert!(none.text.contains("条件に合う患者はいません"));
    // A parameter that does not fit: a page naming it.
    let bad = b.get("/console/wards/14131?sort=shoe_size").await.expect(422);
    assert!(bad.header("content-type").unwrap().starts_with("text/html"));
    assert!(bad.text.contains("sort"));

    // The CSV of the same filters, from the link on the page.
    let csv_link =
        flagged.text.split("\" download>").next().unwrap().rsplit("href=\"").next().unwrap().replace("&amp;", "&");
    assert!(csv_link.starts_with("/console/wards/14131/caseload.csv?has_active_flag=true"), "{csv_link}");
    let csv = b.get(&csv_link).await.expect(200);
    assert_eq!(csv.header("content-type").as_deref(), Some("text/csv; charset=utf-8"));
    assert_eq!(csv.header("content-disposition").as_deref(), Some("attachment; filename=\"caseload-14131.csv\""));
    assert!(csv.text.starts_with('\u{feff}') && csv.text.contains("患者ID"));
    assert!(csv.text.contains(&t.patient_id) && !csv.text.contains("多摩"));

    // English when the browser prefers it.
    b.lang = "en";
    let en = b.get("/console/wards/14131").await.expect(200);
    assert!(en.text.contains("Kawasaki") && en.text.contains("Ward caseload"));

    // Not a coordinator of the ward: the one 404 page, as for a ward that does not exist.
    let mut n = signed_in(&app, &t.nurse).await;
    let hidden = n.get("/console/wards/14131").await.expect(404);
    let unknown = n.get("/console/wards/99999").await.expect(404);
    let missing = n.get(&format!("/console/patients/{MISSING}")).await.expect(404);
    assert_eq!(hidden.text, unknown.text);
    assert_eq!(hidden.text, missing.text);
    assert_eq!(n.get("/console/wards/14131/caseload.csv").await.expect(404).text, missing.text);
    assert!(!n.get("/console").await.expect(200).text.contains("/console/wards/"));
}

/// The console's authorisation matrix: every console route × every relationship, answered as
/// the API's policy decides, and every 404 the same page as for a missing record.
async fn console_authorisation_matrix(app: TestApp) {
    let t = team(&app, "14135").await;
    let pid = t.patient_id.clone();
    let admin = &t.admin;
    let former = {
        let p = app.person(admin, &t.nurse_station, "nurse", "member").await;
        let m = app
            .post(
                &format!("/api/v1/patients/{pid}/care-team"),
                &t.care_manager.token,
                json!({"user_id": p.id, "role": "visiting_nurse"}),
            )
            .await
            .expect(201);
        let today = (Utc::now() + chrono::Duration::hours(9)).date_naive().to_string();
        app.patch(
            &format!("/api/v1/patients/{pid}/care-team/{}", m.body["id"].as_str().unwrap()),
            &t.care_manager.token,
            json!({"ended_on": today}),
            None,
        )
        .await
        .expect(200);
        p
    };
    let other_office = app.organization(admin, "care_management_office", "多摩ケアプラン", Some("14135")).await;
    let other_team = app.person(admin, &other_office, "care_manager", "member").await;
    app.post("/api/v1/patients", &other_team.token, patient_body("多摩", "タマ", "14135")).await.expect(201);
    let coordinator = coordinator_of(&app, &t, "14135").await;
    let other_coordinator = coordinator_of(&app, &t, "14136").await;
    let station_admin = app.person(admin, &t.nurse_station, "nurse", "org_admin").await;
    let (msw, case_id) = case_for(&app, &t).await;
    let c = Case { msw, case_id };

    // Routes: C1 GET the patient page, C2 GET a flag's page, C3 POST a flag's acknowledgement
    // (a fresh flag each time), C4 GET the ward's caseload page, C5 GET its CSV, C6 GET the
    // discharge case's page, C7 POST a task's move (a fresh task each time), C8 GET a task's
    // page, C9 POST a flag's resolution (a fresh flag each time), C10 POST a note from the
    // patient page.
    #[rustfmt::skip]
    let rows: Vec<(&str, &Person, [u16; 10])> = vec![
        //                                                C1   C2   C3   C4   C5   C6   C7   C8   C9   C10
        ("lead care manager",        &t.care_manager,    [200, 303, 303, 404, 404, 200, 303, 303, 303, 303]),
        ("active member (nurse)",    &t.nurse,           [200, 303, 303, 404, 404, 200, 303, 303, 303, 303]),
        ("hospital staff",           &c.msw,             [200, 303, 303, 404, 404, 200, 303, 303, 303, 303]),
        ("former member",            &former,            [404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
        ("another patient's team",   &other_team,        [404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
        ("coordinator of the ward",  &coordinator,       [200, 303, 403, 200, 200, 200, 403, 303, 403, 403]),
        ("coordinator of another",   &other_coordinator, [404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
        ("org admin of a member",    &station_admin,     [404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
        ("system admin",             admin,              [404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
    ];
    for (name, person, expected) in rows {
        let mut b = signed_in(&app, person).await;
        let csrf = csrf_of(&b.get("/console").await.expect(200).text);
        for (i, want) in expected.iter().enumerate() {
            let res = console_call(&app, &t, &c, &mut b, &csrf, i, &pid).await;
            assert_eq!(res.status, *want, "{name}: route C{} answered {}: {}", i + 1, res.status, res.text);
            assert_guarded(&res);
            if *want == 404 {
                let ghost = console_call(&app, &t, &c, &mut b, &csrf, i, MISSING).await;
                assert_eq!(ghost.status, 404, "{name} C{}", i + 1);
                assert_eq!(res.text, ghost.text, "{name} C{}: not the page of a missing record", i + 1);
                for h in ["content-type", "content-length", "cache-control"] {
                    assert_eq!(res.header(h), ghost.header(h), "{name} C{}: header {h}", i + 1);
                }
            }
        }
    }
}

/// The discharge case the matrix's case routes name.
struct Case {
    msw: Person,
    case_id: String,
}

async fn console_call(
    app: &TestApp,
    t: &Team,
    c: &Case,
    b: &mut Browser<'_>,
    csrf: &str,
    route: usize,
    pid: &str,
) -> TestResponse {
    let real = pid == t.patient_id;
    // For the missing patient, a flag and a ward that do not exist either.
    let ward = if real { "14135" } else { "99999" };
    match route {
        0 => b.get(&format!("/console/patients/{pid}")).await,
        1 => {
            let id = fresh_flag(app, t, real).await;
            b.get(&format!("/console/flags/{id}")).await
        }
        2 => {
            let id = fresh_flag(app, t, real).await;
            b.post(&format!("/console/flags/{id}/acknowledge"), &[("csrf", csrf), ("note", "確認")]).await
        }
        3 => b.get(&format!("/console/wards/{ward}")).await,
        4 => b.get(&format!("/console/wards/{ward}/caseload.csv")).await,
        5 => b.get(&format!("/console/discharge-cases/{}", if real { &c.case_id } else { MISSING })).await,
        9 => {
            let at = (Utc::now() + chrono::Duration::hours(9)).format("%Y-%m-%dT%H:%M").to_string();
            let key = renkei::db::new_id();
            let form =
                [("csrf", csrf), ("key", &key), ("kind", "phone"), ("occurred_at", &at), ("text", "電話で様子を確認")];
            b.post(&format!("/console/patients/{pid}/notes"), &form).await
        }
        8 => {
            let id = fresh_flag(app, t, real).await;
            b.post(&format!("/console/flags/{id}/resolve"), &[("csrf", csrf), ("note", "改善を確認")]).await
        }
        _ => {
            let id = if real {
                let task = app
                    .post(
                        &format!("/api/v1/discharge-cases/{}/tasks", c.case_id),
                        &c.msw.token,
                        json!({"title": "自宅の段差の確認", "team_role": "care_manager"}),
                    )
                    .await
                    .expect(201);
                task.body["id"].as_str().unwrap().to_string()
            } else {
                MISSING.to_string()
            };
            if route == 6 {
                b.post(&format!("/console/tasks/{id}"), &[("csrf", csrf), ("version", "1"), ("status", "accepted")])
                    .await
            } else {
                b.get(&format!("/console/tasks/{id}")).await
            }
        }
    }
}

/// A hospital with its discharge-support social worker, and a case it opened for the team's
/// patient (admitted yesterday); answers the worker and the case's id.
async fn case_for(app: &TestApp, t: &Team) -> (Person, String) {
    case_by(app, t, "social_worker").await
}

/// As [`case_for`], opened by the hospital's person of this profession.
async fn case_by(app: &TestApp, t: &Team, profession: &str) -> (Person, String) {
    let ward = "14131";
    let hospital = app.organization(&t.admin, "hospital", "川崎中央病院", Some(ward)).await;
    let msw = app.person(&t.admin, &hospital, profession, "member").await;
    let admitted = (Utc::now() - chrono::Duration::days(1)).to_rfc3339_opts(SecondsFormat::Micros, true);
    let case = app
        .post(
            "/api/v1/discharge-cases",
            &msw.token,
            json!({"patient_id": t.patient_id, "birth_date": "1938-04-01", "family_name_kana": "カワサキ",
                   "admitted_at": admitted, "department": "呼吸器内科", "reason": "誤嚥性肺炎"}),
        )
        .await
        .expect(201);
    (msw, case.body["id"].as_str().unwrap().to_string())
}

async fn discharge_case_page_tasks_and_moves(app: TestApp) {
    let t = team(&app, "14131").await;
    let (msw, case_id) = case_for(&app, &t).await;
    let tasks = app.get(&format!("/api/v1/discharge-cases/{case_id}/tasks"), &t.care_manager.token).await.expect(200);
    let task = tasks.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["template_key"] == json!("admission_info"))
        .unwrap()
        .clone();
    let task_id = task["id"].as_str().unwrap().to_string();
    let mut b = signed_in(&app, &t.care_manager).await;

    // マイページ leads to the case.
    let me = b.get("/console").await.expect(200);
    assert!(me.text.contains(&format!("/console/discharge-cases/{case_id}")), "my tasks link their case");

    let before = audit_count(&app, &t.care_manager.id, "discharge_case").await;
    let page = b.get(&format!("/console/discharge-cases/{case_id}")).await.expect(200);
    assert_guarded(&page);
    assert_eq!(audit_count(&app, &t.care_manager.id, "discharge_case").await, before + 1);
    assert!(!page.text.contains("<script") && !page.text.contains("style="));
    assert!(page.text.contains("川崎中央病院") && page.text.contains("川崎 花子"));
    assert!(page.text.contains("入院時情報提供"), "the task's title");
    assert!(page.text.contains("ケアマネジャー"), "who does it: the role on the team");
    assert!(page.text.contains("依頼中"), "its status in words");
    assert!(page.text.contains("まだ決まっていません"), "no home physician yet");
    assert!(page.text.contains(&format!("action=\"/console/tasks/{task_id}\"")));
    let csrf = csrf_of(&page.text);

    // The task's form: refused without the session's token, done with it.
    let path = format!("/console/tasks/{task_id}");
    b.post(&path, &[("csrf", "nope"), ("version", "1"), ("status", "accepted")]).await.expect(403);
    let moved = b.post(&path, &[("csrf", &csrf), ("version", "1"), ("status", "accepted")]).await.expect(303);
    assert_eq!(moved.header("location"), Some(format!("/console/discharge-cases/{case_id}#task-{task_id}")));
    // The page's old version: someone changed it meanwhile.
    let stale = b.post(&path, &[("csrf", &csrf), ("version", "1"), ("status", "completed")]).await.expect(412);
    assert!(stale.header("content-type").unwrap().starts_with("text/html"));
    b.post(&path, &[("csrf", &csrf), ("version", "2"), ("status", "completed")]).await.expect(303);
    let done = app.get(&format!("/api/v1/tasks/{task_id}"), &t.care_manager.token).await.expect(200);
    assert_eq!(done.body["status"], json!("completed"));
    assert_eq!(done.body["completed_by"], json!(t.care_manager.id));
    // A move FHIR Task does not allow: a page naming both statuses.
    let illegal = b.post(&path, &[("csrf", &csrf), ("version", "3"), ("status", "requested")]).await.expect(409);
    assert!(illegal.text.contains("completed") && illegal.text.contains("requested"));
    let page = b.get(&format!("/console/discharge-cases/{case_id}")).await.expect(200);
    assert!(page.text.contains("完了"));

    // The case's moves are the hospital's: the care manager is refused, the hospital's worker not.
    let version = app.get(&format!("/api/v1/discharge-cases/{case_id}"), &msw.token).await.expect(200).body["version"]
        .to_string();
    let today = (Utc::now() + chrono::Duration::hours(9)).date_naive().to_string();
    let discharge = format!("/console/discharge-cases/{case_id}/discharge");
    assert!(!page.text.contains(&format!("action=\"{discharge}\"")), "no case moves offered to the care manager");
    let form = [("csrf", csrf.as_str()), ("version", version.as_str()), ("discharged_on", today.as_str())];
    b.post(&discharge, &form).await.expect(403);
    let mut h = signed_in(&app, &msw).await;
    let hpage = h.get(&format!("/console/discharge-cases/{case_id}")).await.expect(200);
    assert!(hpage.text.contains(&format!("action=\"{discharge}\"")));
    let hcsrf = csrf_of(&hpage.text);
    let form = [("csrf", hcsrf.as_str()), ("version", version.as_str()), ("discharged_on", today.as_str())];
    let res = h.post(&discharge, &form).await.expect(303);
    assert_eq!(res.header("location"), Some(format!("/console/discharge-cases/{case_id}")));
    let case = app.get(&format!("/api/v1/discharge-cases/{case_id}"), &msw.token).await.expect(200);
    assert_eq!(case.body["status"], json!("discharged"));
    assert_eq!(case.body["discharged_on"], json!(today));
    // English when the browser prefers it.
    h.lang = "en";
    let en = h.get(&format!("/console/discharge-cases/{case_id}")).await.expect(200);
    assert!(en.text.contains("Discharge coordination") && en.text.contains("Discharged"));

    // The e-mails' links.
    let link = b.get(&format!("/discharge-cases/{case_id}")).await.expect(303);
    assert_eq!(link.header("location"), Some(format!("/console/discharge-cases/{case_id}")));
    let link = b.get(&format!("/tasks/{task_id}")).await.expect(303);
    assert_eq!(link.header("location"), Some(format!("/console/tasks/{task_id}")));
    let on = b.get(&format!("/console/tasks/{task_id}")).await.expect(303);
    assert_eq!(on.header("location"), Some(format!("/console/discharge-cases/{case_id}#task-{task_id}")));

    // Outside the scope: the one 404 page.
    let outsider_org = app.organization(&t.admin, "clinic", "外部クリニック", None).await;
    let outsider = app.person(&t.admin, &outsider_org, "physician", "member").await;
    let mut o = signed_in(&app, &outsider).await;
    let missing = o.get(&format!("/console/patients/{MISSING}")).await.expect(404);
    assert_eq!(o.get(&format!("/console/discharge-cases/{case_id}")).await.expect(404).text, missing.text);
    assert_eq!(o.get(&format!("/console/discharge-cases/{MISSING}")).await.expect(404).text, missing.text);
    assert_eq!(o.get(&format!("/console/tasks/{task_id}")).await.expect(404).text, missing.text);
    let ocsrf = csrf_of(&o.get("/console").await.expect(200).text);
    let res = o.post(&path, &[("csrf", &ocsrf), ("version", "3"), ("status", "cancelled")]).await.expect(404);
    assert_eq!(res.text, missing.text);
}

async fn totp_enrolment_shows_a_qr_code(app: TestApp) {
    let t = team(&app, "14131").await;
    let mut b = signed_in(&app, &t.nurse).await;
    let page = b.get("/console/totp").await.expect(200);
    assert_guarded(&page);
    assert!(page.text.contains("有効になっていません") && page.text.contains("action=\"/console/totp\""));
    let csrf = csrf_of(&page.text);

    // The password first, checked as the API checks it; a form without its token is refused.
    b.post("/console/totp", &[("password", PASSWORD)]).await.expect(403);
    let wrong = b.post("/console/totp", &[("csrf", &csrf), ("password", "not-the-password")]).await.expect(422);
    assert!(wrong.text.contains("パスワードが正しくありません"));
    let enrolling = b.post("/console/totp", &[("csrf", &csrf), ("password", PASSWORD)]).await.expect(200);
    assert_guarded(&enrolling);
    assert!(!enrolling.text.contains("<script") && !enrolling.text.contains("style="));
    assert!(enrolling.text.contains("class=\"qr\"") && enrolling.text.contains("<title id=\"qr-title\">"));
    let at = enrolling.text.find("class=\"secret\">").unwrap() + "class=\"secret\">".len();
    let secret = enrolling.text[at..].split('<').next().unwrap().to_string();
    assert!(secret.len() >= 16, "{secret}");

    // A wrong code: the QR code again, with the reason.
    let again = b.post("/console/totp/confirm", &[("csrf", &csrf), ("code", "000000")]).await.expect(422);
    assert!(again.text.contains("確認コードが正しくありません") && again.text.contains("class=\"qr\""));
    let done = b.post("/console/totp/confirm", &[("csrf", &csrf), ("code", &totp_code(&secret, 0))]).await.expect(303);
    assert_eq!(done.header("location").as_deref(), Some("/console/totp?done=1"));
    let on = b.get("/console/totp?done=1").await.expect(200);
    assert!(on.text.contains("二要素認証を有効にしました") && on.text.contains("二要素認証は有効です"));
    assert!(!on.text.contains("class=\"qr\""), "the key is shown only while enrolling");

    // From now on a sign-in needs the code.
    let mut fresh = Browser::new(&app);
    fresh.sign_in(&t.nurse.email, None, "/console").await.expect(401);
    fresh.sign_in(&t.nurse.email, Some(&totp_code(&secret, 1)), "/console").await.expect(303);
    fresh.lang = "en";
    let en = fresh.get("/console/totp").await.expect(200);
    assert!(en.text.contains("Two-factor sign-in is on"));

    // Recovery codes: made after the password, shown this once, each signs in once.
    fresh.lang = "ja";
    let on = fresh.get("/console/totp").await.expect(200);
    assert!(on.text.contains("未使用の回復コード: 0"), "{}", on.text);
    let fcsrf = csrf_of(&on.text);
    let path = "/console/totp/recovery-codes";
    fresh.post(path, &[("csrf", &fcsrf), ("password", "not-the-password")]).await.expect(422);
    let made = fresh.post(path, &[("csrf", &fcsrf), ("password", PASSWORD)]).await.expect(200);
    assert_guarded(&made);
    assert!(made.text.contains("表示されるのは今回だけ") && made.text.contains("未使用の回復コード: 10"));
    let at = made.text.find("<ol class=\"recovery-codes\"><li><code>").unwrap()
        + "<ol class=\"recovery-codes\"><li><code>".len();
    let code = made.text[at..].split('<').next().unwrap().to_string();
    assert_eq!(code.len(), 14, "{code}");
    assert!(!fresh.get("/console/totp").await.expect(200).text.contains(&code), "shown only once");
    let mut lost_phone = Browser::new(&app);
    lost_phone.sign_in(&t.nurse.email, Some(&code), "/console").await.expect(303);
    let mut again = Browser::new(&app);
    again.sign_in(&t.nurse.email, Some(&code), "/console").await.expect(401);
}

/// The password page changes one's own password as `POST /me/password` does: the current one
/// checked, the rules applied, the new one typed twice; every other session ends and the browser
/// goes on in a new one.
async fn password_page_changes_the_password(app: TestApp) {
    let t = team(&app, "14131").await;
    let mut signed_out = Browser::new(&app);
    let res = signed_out.get("/console/password").await.expect(303);
    assert_eq!(res.header("location").as_deref(), Some("/console/sign-in?next=/console/password"));

    let mut b = signed_in(&app, &t.nurse).await;
    let page = b.get("/console/password").await.expect(200);
    assert_guarded(&page);
    assert!(page.text.contains("action=\"/console/password\"") && page.text.contains("autocomplete=\"new-password\""));
    let csrf = csrf_of(&page.text);
    let new = "ひまわり訪問看護-2026-冬";
    b.post("/console/password", &[("current_password", PASSWORD), ("new_password", new), ("new_password_again", new)])
        .await
        .expect(403);
    let differ =
        [("csrf", csrf.as_str()), ("current_password", PASSWORD), ("new_password", new), ("new_password_again", "x")];
    assert!(b.post("/console/password", &differ).await.expect(422).text.contains("一致しません"));
    let wrong = [
        ("csrf", csrf.as_str()),
        ("current_password", "not-the-password"),
        ("new_password", new),
        ("new_password_again", new),
    ];
    assert!(b.post("/console/password", &wrong).await.expect(422).text.contains("パスワードが正しくありません"));
    let short = [
        ("csrf", csrf.as_str()),
        ("current_password", PASSWORD),
        ("new_password", "short"),
        ("new_password_again", "short"),
    ];
    b.post("/console/password", &short).await.expect(422);
    // Nothing above changed it.
    app.login(&t.nurse.email, PASSWORD, None).await.expect(200);

    let good =
        [("csrf", csrf.as_str()), ("current_password", PASSWORD), ("new_password", new), ("new_password_again", new)];
    let done = b.post("/console/password", &good).await.expect(303);
    assert_eq!(done.header("location").as_deref(), Some("/console/password?done=1"));
    assert!(b.get("/console/password?done=1").await.expect(200).text.contains("パスワードを変更しました"));
    // The browser goes on; the API sessions opened before have ended.
    b.get("/console").await.expect(200);
    app.get("/api/v1/me", &t.nurse.token).await.expect(401);
    app.login(&t.nurse.email, PASSWORD, None).await.expect(401);
    app.login(&t.nurse.email, new, None).await.expect(200);
}

/// Two-factor sign-in is turned off on its page with a fresh code from the app, as
/// `DELETE /me/totp`; the recovery codes end with it. A system administrator is offered no such
/// form.
async fn totp_can_be_turned_off_on_its_page(app: TestApp) {
    let t = team(&app, "14133").await;
    let nurse = &t.nurse;
    let enrol = app.post("/api/v1/me/totp", &nurse.token, json!({"password": PASSWORD})).await.expect(200);
    let secret = enrol.body["secret"].as_str().unwrap().to_string();
    app.post("/api/v1/me/totp/confirm", &nurse.token, json!({"code": totp_code(&secret, 0)})).await.expect(200);
    let made =
        app.post("/api/v1/me/totp/recovery-codes", &nurse.token, json!({"password": PASSWORD})).await.expect(201);
    let recovery = made.body["codes"][0].as_str().unwrap().to_string();
    // Signed in with a recovery code: the app's next code is still unused.
    let mut b = Browser::new(&app);
    b.sign_in(&nurse.email, Some(&recovery), "/console").await.expect(303);
    let page = b.get("/console/totp").await.expect(200);
    assert!(page.text.contains("action=\"/console/totp/off\""), "{}", page.text);
    let csrf = csrf_of(&page.text);
    let wrong = b.post("/console/totp/off", &[("csrf", &csrf), ("code", "000000")]).await.expect(422);
    assert!(wrong.text.contains("確認コードが正しくありません"));
    let off = b.post("/console/totp/off", &[("csrf", &csrf), ("code", &totp_code(&secret, 1))]).await.expect(303);
    assert_eq!(off.header("location").as_deref(), Some("/console/totp?off=1"));
    let page = b.get("/console/totp?off=1").await.expect(200);
    assert!(page.text.contains("二要素認証を無効にしました") && page.text.contains("有効になっていません"));
    let state = app.get("/api/v1/me/totp/recovery-codes", &nurse.token).await.expect(200);
    assert_eq!(state.body["remaining"], json!(0));
    Browser::new(&app).sign_in(&nurse.email, None, "/console").await.expect(303);

    let mut admin = signed_in(&app, &t.admin).await;
    let page = admin.get("/console/totp").await.expect(200);
    assert!(page.text.contains("二要素認証は有効です") && !page.text.contains("/console/totp/off"), "{}", page.text);
}

/// The walk-throughs in headless Chromium, driven over the DevTools protocol by
/// `tests/browser/walk.mjs`: a coordinating physician signs in with TOTP, filters her ward for
/// patients with an active flag and no visit in 14 days, opens one, sees the SpO2 trend with its
/// NEWS2 bands and acknowledges the flag; a hospital's discharge nurse completes a task of her
/// case; an outsider typing a patient's address sees the page of a missing patient. Every page is
/// checked with axe-core (no serious or critical violation) and saved as a screenshot.
async fn browser_walk_through(app: TestApp) {
    let required = std::env::var("RENKEI_REQUIRE_BROWSER").as_deref() == Ok("1");
    let axe = std::env::var("RENKEI_AXE_JS").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/node_modules/axe-core/axe.min.js").to_string()
    });
    let node_ok = std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let (Some(chromium), true, true) = (crate::docs::chromium(), std::path::Path::new(&axe).exists(), node_ok) else {
        assert!(
            !required,
            "RENKEI_REQUIRE_BROWSER=1 but chromium, node or axe-core ({axe}) is missing (.ci/run installs them)"
        );
        say("\n*** chromium, node or axe-core missing: skipped the console's browser walk-through. ***\n");
        return;
    };
    // The ward's patient: visited 20 and 16 days ago, SpO2 falling since, measured by the family
    // and phoned in yesterday; a flag raised on it.
    let t = team(&app, "14131").await;
    let (doctor, secret) = physician_with_totp(&app, &t).await;
    app.call("PUT", &format!("/api/v1/wards/14131/coordinators/{}", doctor.id), Some(&t.admin.token), None, &[])
        .await
        .expect(201);
    for (days, kind, spo2) in [(20, "visit", 96), (16, "visit", 94), (1, "phone", 90)] {
        let at = (Utc::now() - chrono::Duration::days(days)).to_rfc3339_opts(SecondsFormat::Micros, true);
        let vitals =
            json!({"pulse": 96, "respiratory_rate": 22, "spo2": spo2, "on_oxygen": false, "temperature": 37.4});
        app.post(
            &format!("/api/v1/patients/{}/notes", t.patient_id),
            &t.nurse.token,
            json!({"kind": kind, "occurred_at": at, "text": "家族からの連絡。息苦しさあり。", "vitals": vitals}),
        )
        .await
        .expect(201);
    }
    let flag = app
        .post(
            &format!("/api/v1/patients/{}/flags", t.patient_id),
            &t.nurse.token,
            json!({"severity": "urgent", "reason": "SpO2 低下(家族測定 90%)"}),
        )
        .await
        .expect(201);
    let flag_id = flag.body["id"].as_str().unwrap().to_string();
    let (nurse, case_id) = case_by(&app, &t, "nurse").await;
    let tasks = app.get(&format!("/api/v1/discharge-cases/{case_id}/tasks"), &nurse.token).await.expect(200);
    let task = tasks.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["team_role"] == json!("hospital_staff") && t["status"] == json!("requested"))
        .expect("a task of the hospital's")
        .clone();
    let task_id = task["id"].as_str().unwrap().to_string();
    let outsider_org = app.organization(&t.admin, "clinic", "外部クリニック", None).await;
    let outsider = app.person(&t.admin, &outsider_org, "physician", "member").await;
    // A newcomer: an account made without a password, and an invitation into the team.
    let newcomer_email = format!("newcomer-{}@example.jp", crate::helpers::short_id());
    let made = app
        .post(
            &format!("/api/v1/organizations/{}/users", t.nurse_station),
            &t.admin.token,
            json!({"email": newcomer_email, "name": "新井 さくら", "profession": "nurse"}),
        )
        .await
        .expect(201);
    let newcomer_id = made.body["id"].as_str().unwrap().to_string();
    let welcome = crate::helpers::emails_to(&app, &newcomer_id, "account_created").await;
    let welcome_token = crate::helpers::link_token(&welcome[0].1, "/password-reset");
    app.post(
        &format!("/api/v1/patients/{}/care-team/invitations", t.patient_id),
        &t.care_manager.token,
        json!({"user_id": newcomer_id, "role": "visiting_nurse"}),
    )
    .await
    .expect(201);
    let invited = crate::helpers::emails_to(&app, &newcomer_id, "team_invitation").await;
    let invitation_token = crate::helpers::link_token(&invited[0].1, "/care-team-invitations");
    let newcomer_password = "さくら訪問看護-2026-春";
    // The patient's daughter, invited as key person: she joins from the e-mail's link.
    let daughter_email = format!("daughter-{}@example.jp", crate::helpers::short_id());
    app.post(
        &format!("/api/v1/patients/{}/participants", t.patient_id),
        &t.care_manager.token,
        json!({"email": daughter_email, "role": "key_person", "relationship": "長女"}),
    )
    .await
    .expect(201);
    let daughter_token = {
        let mails = crate::helpers::emails_to_address(&app, &daughter_email, "participant_invitation").await;
        crate::helpers::link_token(&mails[0].1, "/participant-invitations")
    };
    let daughter_password = "母の在宅療養-2026-冬";

    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("console-walk-{:?}", app.backend));
    std::fs::create_dir_all(&out).unwrap();
    let sign_in = |email: &str, code: &str| {
        vec![
            json!({"go": "/console/sign-in?next=/console"}),
            json!({"fill": {"#email": email, "#password": PASSWORD, "#totp_code": code}}),
            json!({"submit": "form[action=\"/console/sign-in\"]"}),
        ]
    };
    let mut coordinator = vec![json!({"go": "/console/sign-in?next=/console"}), json!({"page": "sign-in"})];
    coordinator.extend(sign_in(&doctor.email, &totp_code(&secret, 1)));
    coordinator.extend([
        json!({"page": "my-page"}),
        json!({"follow": "a[href=\"/console/wards/14131\"]"}),
        json!({"page": "ward"}),
        json!({"fill": {"#no_visit_days": "14"}}),
        json!({"tick": "#has_active_flag"}),
        json!({"submit": "form.filters"}),
        json!({"page": "ward-filtered"}),
        json!({"follow": format!("a[href=\"/console/patients/{}\"]", t.patient_id)}),
        json!({"page": "patient"}),
        json!({"fill": {format!("#note-{flag_id}"): "本日往診します"}}),
        json!({"submit": format!("#flag-{flag_id} form")}),
        json!({"page": "patient-acknowledged"}),
        // A note from the patient page, with a measurement taken at the visit.
        json!({"fill": {"#note-text": "往診。呼吸音清、SpO2 改善傾向。", "#v-spo2": "94", "#v-pulse": "88"}}),
        json!({"submit": "form.note"}),
        json!({"page": "patient-note-posted"}),
        json!({"go": "/console/password"}),
        json!({"page": "password"}),
        json!({"go": "/console/totp"}),
        json!({"page": "totp"}),
    ]);
    let mut discharge_nurse = sign_in(&nurse.email, "");
    discharge_nurse.extend([
        json!({"go": format!("/console/discharge-cases/{case_id}")}),
        json!({"page": "case"}),
        json!({"fill": {format!("#status-{task_id}"): "accepted"}}),
        json!({"submit": format!("#task-{task_id} form")}),
        json!({"fill": {format!("#status-{task_id}"): "completed"}}),
        json!({"submit": format!("#task-{task_id} form")}),
        json!({"page": "case-task-completed"}),
    ]);
    let mut stranger = sign_in(&outsider.email, "");
    stranger.extend([
        json!({"go": format!("/console/patients/{}", t.patient_id)}),
        json!({"page": "hidden-patient"}),
        json!({"go": format!("/console/patients/{MISSING}")}),
        json!({"page": "missing-patient"}),
    ]);
    let newcomer = vec![
        json!({"go": "/console/password-reset"}),
        json!({"page": "forgot-password"}),
        json!({"go": format!("/password-reset?token={welcome_token}")}),
        json!({"page": "set-password"}),
        json!({"fill": {"#new_password": newcomer_password, "#new_password_again": newcomer_password}}),
        json!({"submit": "form[action=\"/console/password-reset/confirm\"]"}),
        json!({"page": "password-set"}),
        json!({"fill": {"#email": newcomer_email, "#password": newcomer_password}}),
        json!({"submit": "form[action=\"/console/sign-in\"]"}),
        json!({"go": format!("/care-team-invitations?token={invitation_token}")}),
        json!({"page": "invitation"}),
        json!({"submit": "form[action=\"/console/care-team-invitations/accept\"]"}),
        json!({"page": "joined-patient"}),
    ];
    let family_form = format!("form[action=\"/console/patients/{}/family-messages\"]", t.patient_id);
    let daughter = vec![
        json!({"go": format!("/participant-invitations?token={daughter_token}")}),
        json!({"page": "invitation"}),
        json!({"fill": {"#name": "川崎 由美", "#password": daughter_password, "#password_again": daughter_password}}),
        json!({"submit": "form[action=\"/console/participant-invitations\"]"}),
        json!({"page": "registered"}),
        json!({"fill": {"#email": daughter_email, "#password": daughter_password}}),
        json!({"submit": "form[action=\"/console/sign-in\"]"}),
        json!({"page": "my-page"}),
        json!({"follow": format!("a[href=\"/console/patients/{}/family\"]", t.patient_id)}),
        json!({"page": "family"}),
        json!({"fill": {"#text": "昨夜から熱が38度あります。"}}),
        json!({"tick": "#raise_flag"}),
        json!({"submit": family_form}),
        json!({"page": "family-posted"}),
        json!({"go": format!("/console/patients/{}", t.patient_id)}),
        json!({"page": "patient-page"}),
        json!({"go": format!("/console/patients/{MISSING}")}),
        json!({"page": "missing-patient"}),
    ];
    let plan = json!({
        "chromium": chromium, "axe": axe, "base": app.url(""), "out": out,
        "walks": [
            {"name": "coordinator", "steps": coordinator},
            {"name": "discharge-nurse", "steps": discharge_nurse},
            {"name": "outsider", "steps": stranger},
            {"name": "newcomer", "steps": newcomer},
            {"name": "daughter", "steps": daughter},
        ]
    });
    let plan_file = out.join("plan.json");
    std::fs::write(&plan_file, plan.to_string()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/walk.mjs");
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node").arg("--experimental-websocket").arg(script).arg(plan_file).output()
    });
    let output =
        tokio::time::timeout(Duration::from_secs(240), run).await.expect("the walk finishes").unwrap().unwrap();
    assert!(output.status.success(), "walk failed: {}", String::from_utf8_lossy(&output.stderr));
    let results: Value = serde_json::from_slice(&output.stdout).expect("the walk's results");
    assert_eq!(results["errors"], json!([]), "{results}");
    let pages: BTreeMap<String, Value> = results["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (format!("{}/{}", p["walk"].as_str().unwrap(), p["page"].as_str().unwrap()), p.clone()))
        .collect();
    for (name, p) in &pages {
        let serious: Vec<&Value> = p["violations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious") | Some("critical")))
            .collect();
        say(&format!(
            "console walk {name}: {} ({} bytes), axe: {} violation(s), {} serious or critical {}; screenshot {}",
            p["url"].as_str().unwrap(),
            p["bytes"],
            p["violations"].as_array().unwrap().len(),
            serious.len(),
            p["violations"],
            p["screenshot"].as_str().unwrap()
        ));
        assert!(serious.is_empty(), "{name}: serious accessibility violations: {serious:?}");
    }
    let text = |name: &str| pages[name]["text"].as_str().unwrap().to_string();
    assert!(text("coordinator/my-page").contains("マイページ"));
    assert!(
        text("coordinator/ward-filtered").contains("川崎 花子")
            && text("coordinator/ward-filtered").contains("(1 件を表示)")
    );
    assert!(text("coordinator/patient").contains("SpO2") && text("coordinator/patient").contains("NEWS2 3点"));
    assert!(text("coordinator/patient-acknowledged").contains("本日往診します"));
    assert!(text("coordinator/patient-note-posted").contains("往診。呼吸音清、SpO2 改善傾向。"));
    assert!(text("coordinator/totp").contains("回復コード"));
    let notes = app.get(&format!("/api/v1/patients/{}/notes", t.patient_id), &t.nurse.token).await.expect(200);
    let posted = notes.body["items"].as_array().unwrap().iter().find(|n| n["author_id"] == json!(doctor.id)).cloned();
    let posted = posted.expect("the physician's note from the page");
    assert_eq!(posted["vitals"]["spo2"], json!(94));
    assert_eq!(posted["vitals"]["pulse"], json!(88));
    assert!(text("discharge-nurse/case-task-completed").contains("完了"));
    assert_eq!(text("outsider/hidden-patient"), text("outsider/missing-patient"));
    assert!(text("newcomer/set-password").contains("パスワードの設定"));
    assert!(text("newcomer/password-set").contains("パスワードを設定しました"));
    assert!(text("newcomer/invitation").contains("訪問看護"));
    assert!(!text("newcomer/invitation").contains("川崎 花子"), "nothing of the patient before joining");
    assert!(text("newcomer/joined-patient").contains("川崎 花子"));
    assert!(text("daughter/invitation").contains("キーパーソン"));
    assert!(!text("daughter/invitation").contains("川崎 花子"), "nothing of the patient before taking part");
    assert!(text("daughter/registered").contains("参加の登録ができました"));
    assert!(text("daughter/my-page").contains("川崎 花子"));
    assert!(text("daughter/family-posted").contains("昨夜から熱が38度あります。"));
    assert!(text("daughter/family-posted").contains("チームに知らせました"));
    // The professionals' patient page is not hers: the page of a patient that does not exist.
    assert_eq!(text("daughter/patient-page"), text("daughter/missing-patient"));
    let flags = app.get(&format!("/api/v1/patients/{}/flags", t.patient_id), &t.nurse.token).await.expect(200);
    assert!(
        flags.body["items"].as_array().unwrap().iter().any(|f| f["source"] == json!("family_message")),
        "{}",
        flags.text
    );
    let flag = app.get(&format!("/api/v1/flags/{flag_id}"), &t.nurse.token).await.expect(200);
    assert_eq!(flag.body["status"], json!("acknowledged"));
    assert_eq!(flag.body["acknowledged_by"], json!(doctor.id));
    let task = app.get(&format!("/api/v1/tasks/{task_id}"), &nurse.token).await.expect(200);
    assert_eq!(task.body["status"], json!("completed"));
    assert_eq!(task.body["completed_by"], json!(nurse.id));
}

/// A new flag on the team's patient (or the id of none, for the missing patient).
async fn fresh_flag(app: &TestApp, t: &Team, real: bool) -> String {
    if !real {
        return MISSING.to_string();
    }
    let f = app
        .post(
            &format!("/api/v1/patients/{}/flags", t.patient_id),
            &t.nurse.token,
            json!({"severity": "urgent", "reason": "食欲低下"}),
        )
        .await
        .expect(201);
    f.body["id"].as_str().unwrap().to_string()
}

crate::both_backends!(
    sign_in_cookie_and_headers,
    patient_page_acknowledgement_and_404,
    ward_caseload_page_filters_pages_and_downloads,
    discharge_case_page_tasks_and_moves,
    totp_enrolment_shows_a_qr_code,
    console_authorisation_matrix,
    patient_page_posts_a_note,
    refusals_before_a_handler_are_pages,
    password_page_changes_the_password,
    totp_can_be_turned_off_on_its_page,
    browser_walk_through,
);
