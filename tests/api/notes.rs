//! The shared notebook: notes with vital signs and NEWS2, the physician's information-sharing
//! note, offline-safe posting, amendments, read receipts and unread counts, the timeline and
//! vital-sign trends — and a scripted client posting 1,000 notes.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{Duration, SecondsFormat, Utc};
use renkei::notes::news2;
use renkei::notes::vitals::{Consciousness, Vitals};
use serde_json::{json, Value};

use crate::helpers::{Person, TestApp, TestResponse};
use crate::patients::{team, Team};

/// An RFC 3339 time `minutes` minutes ago.
fn ago(minutes: i64) -> String {
    (Utc::now() - Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn visit(text: &str, minutes_ago: i64) -> Value {
    json!({ "kind": "visit", "occurred_at": ago(minutes_ago), "text": text })
}

fn notes_path(patient_id: &str) -> String {
    format!("/api/v1/patients/{patient_id}/notes")
}

async fn post_note(app: &TestApp, who: &Person, patient_id: &str, body: Value) -> TestResponse {
    app.post(&notes_path(patient_id), &who.token, body).await
}

async fn post_with_key(app: &TestApp, who: &Person, path: &str, key: &str, body: &Value) -> TestResponse {
    app.call("POST", path, Some(&who.token), Some(body), &[("idempotency-key", key)]).await
}

fn id_of(res: &TestResponse) -> String {
    res.body["id"].as_str().unwrap().to_string()
}

fn items(res: &TestResponse) -> &Vec<Value> {
    res.body["items"].as_array().unwrap()
}

fn fields(res: &TestResponse) -> Vec<String> {
    res.body["errors"]
        .as_array()
        .map(|e| e.iter().map(|f| f["field"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn codes(res: &TestResponse) -> Vec<String> {
    res.body["errors"]
        .as_array()
        .map(|e| e.iter().map(|f| f["code"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// A physician of a clinic, on the team as primary physician.
async fn physician_on_team(app: &TestApp, t: &Team) -> Person {
    let clinic = app.organization(&t.admin, "clinic", "川崎在宅クリニック", Some("14131")).await;
    let doctor = app.person(&t.admin, &clinic, "physician", "member").await;
    app.post(
        &format!("/api/v1/patients/{}/care-team", t.patient_id),
        &t.care_manager.token,
        json!({"user_id": doctor.id, "role": "primary_physician"}),
    )
    .await
    .expect(201);
    doctor
}

async fn all_notes(app: &TestApp, who: &Person, patient_id: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("{}?limit=200{query}", notes_path(patient_id));
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path, &who.token).await.expect(200);
        out.extend(items(&page).iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

async fn post_read_and_list_notes(app: TestApp) {
    let t = team(&app, "14131").await;
    let vitals = json!({"temperature": 38.4, "systolic_bp": 98, "diastolic_bp": 60, "pulse": 112, "respiratory_rate": 22,
                        "spo2": 93, "on_oxygen": false, "consciousness": "A"});
    let body = json!({
        "kind": "visit",
        "occurred_at": ago(30),
        "text": "定期訪問。発熱あり、食事量低下。",
        "soap": {"subjective": "だるい", "objective": "体温38.4℃", "assessment": "感染症疑い", "plan": "主治医へ報告"},
        "vitals": vitals
    });
    let res = post_note(&app, &t.nurse, &t.patient_id, body).await.expect(201);
    let id = id_of(&res);
    assert_eq!(res.header("location"), Some(format!("/api/v1/notes/{id}")));
    assert_eq!(res.body["author_id"], json!(t.nurse.id));
    assert_eq!(res.body["author_profession"], json!("nurse"));
    assert_eq!(res.body["organization_id"], json!(t.nurse_station));
    assert_eq!(res.body["patient_id"], json!(t.patient_id));
    assert_eq!((res.body["version"].clone(), res.body["amended"].clone()), (json!(1), json!(false)));
    assert_eq!(res.body["read_count"], json!(1), "the author has read their own note");
    assert_eq!(res.body["soap"]["plan"], json!("主治医へ報告"));
    // NEWS2 stored with the note: 2 (RR 22) + 2 (SpO2 93) + 0 (air) + 2 (SBP 98) + 2 (HR 112) + 0 (A) + 1 (38.4 ℃).
    let v: Vitals = serde_json::from_value(vitals).unwrap();
    assert_eq!(res.body["news2"], serde_json::to_value(news2::score(&v)).unwrap());
    assert_eq!(res.body["news2"]["total"], json!(9));
    assert_eq!(res.body["news2"]["band"], json!("high"));
    assert_eq!(res.body["news2"]["partial"], json!(false));

    // A note without vitals has no NEWS2; one with some vitals has a partial score.
    let plain = post_note(
        &app,
        &t.care_manager,
        &t.patient_id,
        json!({"kind": "phone", "occurred_at": ago(20), "text": "家族より電話"}),
    )
    .await
    .expect(201);
    assert_eq!(plain.body["news2"], Value::Null);
    assert_eq!(plain.body["vitals"], Value::Null);
    let partial = post_note(
        &app,
        &t.nurse,
        &t.patient_id,
        json!({"kind": "visit", "occurred_at": ago(10), "text": "脈のみ", "vitals": {"pulse": 135}}),
    )
    .await
    .expect(201);
    assert_eq!(partial.body["news2"]["partial"], json!(true));
    assert_eq!(partial.body["news2"]["band"], json!("low_medium"));
    assert_eq!(partial.body["news2"]["missing"].as_array().unwrap().len(), 6);

    // Reading marks read; read_count counts distinct readers, the first read time is kept.
    let read = app.get(&format!("/api/v1/notes/{id}"), &t.care_manager.token).await.expect(200);
    assert_eq!(read.body["read_count"], json!(2));
    assert_eq!(read.body["read_by_me"], json!(true));
    assert_eq!(read.header("etag").as_deref(), Some("\"1\""));
    let again = app.get(&format!("/api/v1/notes/{id}"), &t.care_manager.token).await.expect(200);
    assert_eq!(again.body["read_count"], json!(2));

    // Newest occurred_at first; filters by kind, author, profession and period.
    let listed = app.get(&notes_path(&t.patient_id), &t.nurse.token).await.expect(200);
    let order: Vec<&str> = items(&listed).iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(order, [id_of(&partial), id_of(&plain), id.clone()]);
    let q = |query: &str| format!("{}?{query}", notes_path(&t.patient_id));
    assert_eq!(items(&app.get(&q("kind=phone"), &t.nurse.token).await.expect(200)).len(), 1);
    assert_eq!(items(&app.get(&q(&format!("author_id={}", t.nurse.id)), &t.nurse.token).await.expect(200)).len(), 2);
    assert_eq!(items(&app.get(&q("profession=care_manager"), &t.nurse.token).await.expect(200)).len(), 1);
    let since = app.get(&q(&format!("since={}", ago(25))), &t.nurse.token).await.expect(200);
    assert_eq!(items(&since).len(), 2);
    let window = app.get(&q(&format!("since={}&until={}", ago(25), ago(15))), &t.nurse.token).await.expect(200);
    assert_eq!(items(&window).iter().map(|n| n["id"].clone()).collect::<Vec<_>>(), [json!(id_of(&plain))]);
    app.get(&q("kind=diary"), &t.nurse.token).await.expect(422);
    app.get(&q("cursor=bm90LWEtY3Vyc29y"), &t.nurse.token).await.expect(422);

    // Notes at the same instant page by id, with no gap and no repeat.
    let same = ago(60);
    let mut tied = HashSet::new();
    for n in 0..5 {
        let r = post_note(
            &app,
            &t.nurse,
            &t.patient_id,
            json!({"kind": "handover", "occurred_at": same, "text": format!("申し送り{n}")}),
        )
        .await
        .expect(201);
        tied.insert(id_of(&r));
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("{}?kind=handover&limit=2", notes_path(&t.patient_id));
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path, &t.nurse.token).await.expect(200);
        seen.extend(items(&page).iter().map(|n| n["id"].as_str().unwrap().to_string()));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut expected: Vec<String> = tied.into_iter().collect();
    expected.sort();
    expected.reverse();
    assert_eq!(seen, expected);
}

async fn retried_post_returns_the_first_answer(app: TestApp) {
    let t = team(&app, "14132").await;
    let path = notes_path(&t.patient_id);
    let body = json!({"kind": "visit", "occurred_at": ago(5), "text": "電波の悪い地域で記録", "vitals": {"pulse": 88, "spo2": 96}});
    let first = post_with_key(&app, &t.nurse, &path, "visit-2026-11-25-0001", &body).await.expect(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    let retry = post_with_key(&app, &t.nurse, &path, "visit-2026-11-25-0001", &body).await.expect(201);
    assert_eq!(retry.text, first.text, "same body, byte for byte");
    assert_eq!(retry.header("location"), first.header("location"));
    assert_eq!(retry.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(all_notes(&app, &t.nurse, &t.patient_id, "").await.len(), 1, "the retry created nothing");

    // The same key with a different body is refused.
    let mut changed = body.clone();
    changed["text"] = json!("別の内容");
    let res = post_with_key(&app, &t.nurse, &path, "visit-2026-11-25-0001", &changed).await.expect(422);
    assert_eq!(fields(&res), ["Idempotency-Key"]);
    assert_eq!(codes(&res), ["key_reused"]);
    // Keys are per user: the care manager's identical key is their own.
    post_with_key(&app, &t.care_manager, &path, "visit-2026-11-25-0001", &body).await.expect(201);
    assert_eq!(all_notes(&app, &t.nurse, &t.patient_id, "").await.len(), 2);
    // A malformed key.
    let res = post_with_key(&app, &t.nurse, &path, &"k".repeat(300), &body).await.expect(422);
    assert_eq!(fields(&res), ["Idempotency-Key"]);
    // A request refused for its content does not use up the key.
    let bad = json!({"kind": "visit", "occurred_at": ago(5), "text": "x", "vitals": {"pulse": 900}});
    post_with_key(&app, &t.nurse, &path, "visit-2026-11-25-0002", &bad).await.expect(422);
    post_with_key(&app, &t.nurse, &path, "visit-2026-11-25-0002", &body).await.expect(201);
    assert_eq!(all_notes(&app, &t.nurse, &t.patient_id, "").await.len(), 3);

    // Concurrent duplicates: one note, no 500; each answer is the note or "in flight".
    let dup = json!({"kind": "visit", "occurred_at": ago(4), "text": "同時送信"});
    let (a, b, c) = tokio::join!(
        post_with_key(&app, &t.nurse, &path, "burst", &dup),
        post_with_key(&app, &t.nurse, &path, "burst", &dup),
        post_with_key(&app, &t.nurse, &path, "burst", &dup),
    );
    let created: Vec<&TestResponse> = [&a, &b, &c].into_iter().filter(|r| r.status == 201).collect();
    for r in [&a, &b, &c] {
        assert!(r.status == 201 || r.status == 409, "{} {}", r.status, r.text);
    }
    assert!(!created.is_empty());
    assert!(created.iter().all(|r| r.text == created[0].text));
    assert_eq!(all_notes(&app, &t.nurse, &t.patient_id, "").await.len(), 4);

    // Amendments are offline-safe too.
    let note = id_of(&first);
    let amend_path = format!("/api/v1/notes/{note}/amendments");
    let amendment = json!({"reason": "脈拍の転記ミス", "occurred_at": ago(5), "text": "電波の悪い地域で記録", "vitals": {"pulse": 86, "spo2": 96}});
    let a1 = post_with_key(&app, &t.nurse, &amend_path, "amend-1", &amendment).await.expect(201);
    let a2 = post_with_key(&app, &t.nurse, &amend_path, "amend-1", &amendment).await.expect(201);
    assert_eq!(a1.text, a2.text);
    let versions = app.get(&format!("/api/v1/notes/{note}/versions"), &t.nurse.token).await.expect(200);
    assert_eq!(items(&versions).len(), 2);
}

async fn amendments_keep_every_version(app: TestApp) {
    let t = team(&app, "14133").await;
    let first = post_note(
        &app,
        &t.nurse,
        &t.patient_id,
        json!({"kind": "visit", "occurred_at": ago(90), "text": "初回の記録", "vitals": {"pulse": 80}}),
    )
    .await
    .expect(201);
    let id = id_of(&first);
    let path = format!("/api/v1/notes/{id}/amendments");
    let second = app
        .post(&path, &t.nurse.token, json!({"reason": "脈拍の誤記", "occurred_at": ago(90), "text": "初回の記録(修正)", "vitals": {"pulse": 118}}))
        .await
        .expect(201);
    assert_eq!(second.header("location"), Some(format!("/api/v1/notes/{id}")));
    assert_eq!((second.body["version"].clone(), second.body["amended"].clone()), (json!(2), json!(true)));
    assert_eq!(second.body["news2"]["subscores"]["pulse"], json!(2));
    // If-Match names the version amended: a stale one is refused.
    let stale = app
        .call(
            "POST",
            &path,
            Some(&t.nurse.token),
            Some(&json!({"reason": "古い版から", "occurred_at": ago(90), "text": "x"})),
            &[("if-match", "\"1\"")],
        )
        .await
        .expect(412);
    assert_eq!(stale.problem_type(), "/problems/precondition-failed");
    // The problem carries the current version, so an app that amended offline can show both.
    assert_eq!(stale.body["current"]["version"], json!(2));
    assert_eq!(stale.body["current"]["text"], json!("初回の記録(修正)"));
    assert_eq!(stale.body["current"]["vitals"]["pulse"], json!(118));
    assert_eq!(stale.header("etag").as_deref(), Some("\"2\""));
    let third = app
        .call(
            "POST",
            &path,
            Some(&t.nurse.token),
            Some(&json!({"reason": "実施時刻の訂正", "occurred_at": ago(80), "text": "初回の記録(再修正)", "vitals": {"pulse": 118}})),
            &[("if-match", "\"2\"")],
        )
        .await
        .expect(201);
    assert_eq!(third.body["version"], json!(3));
    assert_eq!(third.body["amendment_reason"], json!("実施時刻の訂正"));

    // Reading shows the current version; the history shows all three with author and time.
    let current = app.get(&format!("/api/v1/notes/{id}"), &t.care_manager.token).await.expect(200);
    assert_eq!(current.body["text"], json!("初回の記録(再修正)"));
    assert_eq!(current.body["version"], json!(3));
    assert_eq!(current.body["amended"], json!(true));
    assert_eq!(current.body["created_at"], first.body["created_at"]);
    assert_eq!(current.header("etag").as_deref(), Some("\"3\""));
    let versions = app.get(&format!("/api/v1/notes/{id}/versions"), &t.care_manager.token).await.expect(200);
    let v = items(&versions);
    assert_eq!(v.len(), 3);
    assert_eq!(v.iter().map(|x| x["version"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(v.iter().map(|x| x["current"].as_bool().unwrap()).collect::<Vec<_>>(), [false, false, true]);
    assert_eq!(v[0]["text"], json!("初回の記録"));
    assert_eq!(v[0]["reason"], Value::Null);
    assert_eq!(v[1]["reason"], json!("脈拍の誤記"));
    assert_eq!(v[0]["news2"]["subscores"]["pulse"], json!(0));
    assert!(v.iter().all(|x| x["author_id"] == json!(t.nurse.id) && x["author_name"].is_string()));
    assert!(v[0]["recorded_at"].as_str().unwrap() < v[2]["recorded_at"].as_str().unwrap());
    // The list shows one note, at its current version.
    let listed = all_notes(&app, &t.nurse, &t.patient_id, "").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["version"], json!(3));

    // Only the author amends; a reason is required.
    let res = app
        .post(&path, &t.care_manager.token, json!({"reason": "代筆", "occurred_at": ago(80), "text": "y"}))
        .await
        .expect(403);
    assert_eq!(res.problem_type(), "/problems/forbidden");
    let res =
        app.post(&path, &t.nurse.token, json!({"reason": " ", "occurred_at": ago(80), "text": "y"})).await.expect(422);
    assert_eq!(fields(&res), ["reason"]);
    let res = app.post(&path, &t.nurse.token, json!({"occurred_at": ago(80), "text": "y"})).await.expect(422);
    assert_eq!(fields(&res), ["reason"]);
}

async fn notes_of_another_team_are_hidden(app: TestApp) {
    let t = team(&app, "14134").await;
    let mine = post_note(&app, &t.nurse, &t.patient_id, visit("訪問記録", 10)).await.expect(201);
    let note = id_of(&mine);
    // Another care manager with a patient of their own.
    let other_office = app.organization(&t.admin, "care_management_office", "高津ケアプラン", Some("14134")).await;
    let outsider = app.person(&t.admin, &other_office, "care_manager", "member").await;
    app.post("/api/v1/patients", &outsider.token, crate::patients::patient_body("高津", "タカツ", "14134"))
        .await
        .expect(201);

    let missing = "01900000-0000-7000-8000-000000000000";
    let hidden = post_note(&app, &outsider, &t.patient_id, visit("越権", 1)).await.expect(404);
    let ghost = post_note(&app, &outsider, missing, visit("越権", 1)).await.expect(404);
    assert_eq!(hidden.text, ghost.text, "identical to a patient that does not exist");
    let reads: [(&str, String, String); 6] = [
        ("GET", notes_path(&t.patient_id), notes_path(missing)),
        ("GET", format!("/api/v1/notes/{note}"), format!("/api/v1/notes/{missing}")),
        ("GET", format!("/api/v1/notes/{note}/versions"), format!("/api/v1/notes/{missing}/versions")),
        ("GET", format!("/api/v1/notes/{note}/reads"), format!("/api/v1/notes/{missing}/reads")),
        ("PUT", format!("/api/v1/notes/{note}/read"), format!("/api/v1/notes/{missing}/read")),
        ("GET", format!("/api/v1/patients/{}/timeline", t.patient_id), format!("/api/v1/patients/{missing}/timeline")),
    ];
    for (method, real, fake) in reads {
        let a = app.call(method, &real, Some(&outsider.token), None, &[]).await.expect(404);
        let b = app.call(method, &fake, Some(&outsider.token), None, &[]).await.expect(404);
        assert_eq!(a.text, b.text, "{method} {real}");
    }
    let amend = json!({"reason": "越権", "occurred_at": ago(1), "text": "x"});
    app.post(&format!("/api/v1/notes/{note}/amendments"), &outsider.token, amend).await.expect(404);
    app.get(&format!("/api/v1/patients/{}/vitals", t.patient_id), &outsider.token).await.expect(404);
    // Nothing was written, and every attempt is in the audit trail.
    assert_eq!(all_notes(&app, &t.nurse, &t.patient_id, "").await.len(), 1);
    let denied = app
        .get(&format!("/api/v1/audit-events?outcome=denied&actor_id={}", outsider.id), &t.admin.token)
        .await
        .expect(200);
    assert!(items(&denied).len() >= 10, "{}", denied.text);
}

async fn body_with_author_id_is_refused(app: TestApp) {
    let t = team(&app, "14135").await;
    let mut body = visit("なりすまし", 1);
    body["author_id"] = json!(t.care_manager.id);
    let res = post_note(&app, &t.nurse, &t.patient_id, body).await.expect(422);
    assert_eq!(fields(&res), ["author_id"]);
    assert_eq!(codes(&res), ["unknown_field"]);
    for extra in ["patient_id", "organization_id", "recorded_at", "created_at"] {
        let mut body = visit("x", 1);
        body[extra] = json!("x");
        let res = post_note(&app, &t.nurse, &t.patient_id, body).await.expect(422);
        assert_eq!(fields(&res), [extra]);
    }
    assert!(all_notes(&app, &t.nurse, &t.patient_id, "").await.is_empty());
}

async fn invalid_notes_name_the_field(app: TestApp) {
    let t = team(&app, "14136").await;
    let with_vitals = |vitals: Value| json!({"kind": "visit", "occurred_at": ago(1), "text": "測定", "vitals": vitals});
    let res = post_note(&app, &t.nurse, &t.patient_id, with_vitals(json!({"pulse": 400}))).await.expect(422);
    assert_eq!(fields(&res), ["vitals.pulse"]);
    assert_eq!(codes(&res), ["out_of_range"]);
    assert!(res.body["errors"][0]["detail"].as_str().unwrap().contains("脈拍"));
    let en = app
        .call(
            "POST",
            &notes_path(&t.patient_id),
            Some(&t.nurse.token),
            Some(&with_vitals(json!({"pulse": 400}))),
            &[("accept-language", "en")],
        )
        .await
        .expect(422);
    assert!(en.body["errors"][0]["detail"].as_str().unwrap().contains("between 20 and 250"), "{}", en.text);
    let res = post_note(
        &app,
        &t.nurse,
        &t.patient_id,
        with_vitals(json!({"temperature": 52.0, "systolic_bp": 120, "diastolic_bp": 130, "respiratory_rate": 0})),
    )
    .await
    .expect(422);
    assert_eq!(fields(&res), ["vitals.temperature", "vitals.diastolic_bp", "vitals.respiratory_rate"]);
    let res =
        post_note(&app, &t.nurse, &t.patient_id, with_vitals(json!({"spo2": 90, "spo2_scale": 2}))).await.expect(422);
    assert_eq!(codes(&res), ["scale_2_not_allowed"]);
    let res = post_note(&app, &t.nurse, &t.patient_id, with_vitals(json!({}))).await.expect(422);
    assert_eq!(fields(&res), ["vitals"]);
    let res = post_note(&app, &t.nurse, &t.patient_id, with_vitals(json!({"heart_rate": 80}))).await.expect(422);
    assert_eq!(fields(&res), ["vitals.heart_rate"]);
    // When it happened: not in the future beyond a small clock skew, not before birth.
    let res = post_note(&app, &t.nurse, &t.patient_id, visit("未来", -10)).await.expect(422);
    assert_eq!((fields(&res), codes(&res)), (vec!["occurred_at".to_string()], vec!["in_future".to_string()]));
    post_note(&app, &t.nurse, &t.patient_id, visit("時計が少し進んでいる端末", -2)).await.expect(201);
    let res = post_note(
        &app,
        &t.nurse,
        &t.patient_id,
        json!({"kind": "visit", "occurred_at": "1930-01-01T00:00:00Z", "text": "x"}),
    )
    .await
    .expect(422);
    assert_eq!(codes(&res), ["before_birth"]);
    // Text is required; the physician's items belong to the physician's note.
    let res = post_note(&app, &t.nurse, &t.patient_id, json!({"kind": "visit", "occurred_at": ago(1), "text": "  "}))
        .await
        .expect(422);
    assert_eq!(fields(&res), ["text"]);
    let res = post_note(
        &app,
        &t.nurse,
        &t.patient_id,
        json!({"kind": "visit", "occurred_at": ago(1), "text": "x", "next_visit_on": "2026-12-01"}),
    )
    .await
    .expect(422);
    assert_eq!((fields(&res), codes(&res)), (vec!["next_visit_on".to_string()], vec!["not_for_kind".to_string()]));
    let res = post_note(&app, &t.nurse, &t.patient_id, json!({"kind": "diary", "occurred_at": ago(1), "text": "x"}))
        .await
        .expect(422);
    assert_eq!(fields(&res), ["kind"]);

    // A patient with a prescribed target of 88–92% may use SpO2 scale 2.
    let etag = app.get(&format!("/api/v1/patients/{}", t.patient_id), &t.nurse.token).await.header("etag").unwrap();
    app.patch(
        &format!("/api/v1/patients/{}", t.patient_id),
        &t.nurse.token,
        json!({"spo2_target_88_92": true}),
        Some(&etag),
    )
    .await
    .expect(200);
    let ok =
        post_note(&app, &t.nurse, &t.patient_id, with_vitals(json!({"spo2": 97, "spo2_scale": 2, "on_oxygen": true})))
            .await
            .expect(201);
    assert_eq!(ok.body["news2"]["subscores"]["spo2"], json!(3));
    assert_eq!(ok.body["news2"]["subscores"]["air_or_oxygen"], json!(2));
}

async fn japanese_text_round_trips(app: TestApp) {
    let t = team(&app, "14137").await;
    let text = "訪問看護記録：ひらがな、カタカナ、半角ｶﾀｶﾅ ﾃｽﾄ、全角ＡＢＣ１２３、記号〜−～、絵文字😊🏥👵🏻、旧字體「髙﨑」\n改行\tタブ";
    let soap = json!({"subjective": "「腰が痛い」と本人😣", "objective": "ｽﾃｰｼﾞⅡの褥瘡", "assessment": "①②③", "plan": "ＰＴ介入を検討"});
    let res = post_note(
        &app,
        &t.nurse,
        &t.patient_id,
        json!({"kind": "visit", "occurred_at": ago(3), "text": text, "soap": soap}),
    )
    .await
    .expect(201);
    assert_eq!(res.body["text"].as_str().unwrap().as_bytes(), text.as_bytes());
    let read = app.get(&format!("/api/v1/notes/{}", id_of(&res)), &t.care_manager.token).await.expect(200);
    assert_eq!(read.body["text"].as_str().unwrap().as_bytes(), text.as_bytes());
    assert_eq!(read.body["soap"], soap);
    // Not escaped on the wire either: the raw response holds the same UTF-8 bytes.
    assert!(read.text.contains("半角ｶﾀｶﾅ ﾃｽﾄ、全角ＡＢＣ１２３"));
    assert!(read.text.contains("😊🏥👵🏻"));
    let listed = all_notes(&app, &t.care_manager, &t.patient_id, "").await;
    assert_eq!(listed[0]["text"].as_str().unwrap(), text);
    // Control characters other than line breaks and tabs are refused.
    let res = post_note(&app, &t.nurse, &t.patient_id, visit("bell\u{7}", 1)).await.expect(422);
    assert_eq!(codes(&res), ["control_character"]);
}

async fn physician_info_sharing_note(app: TestApp) {
    let t = team(&app, "14131").await;
    let doctor = physician_on_team(&app, &t).await;
    let next_week = (Utc::now() + Duration::days(7)).date_naive().to_string();
    let full = json!({
        "kind": "physician_info_sharing",
        "occurred_at": ago(15),
        "next_visit_on": next_week,
        "treatment_policy_changed": true,
        "treatment_policy_summary": "利尿薬を増量(フロセミド 20mg→40mg)。",
        "cautions_for_team": "体重が2日で2kg以上増えたら連絡を。"
    });
    // Physicians only.
    let res = post_note(&app, &t.nurse, &t.patient_id, full.clone()).await.expect(403);
    assert_eq!(res.problem_type(), "/problems/forbidden");
    // Every required item, named.
    let res =
        post_note(&app, &doctor, &t.patient_id, json!({"kind": "physician_info_sharing", "occurred_at": ago(15)}))
            .await
            .expect(422);
    assert_eq!(fields(&res), ["next_visit_on", "treatment_policy_changed", "cautions_for_team"]);
    let mut no_summary = full.clone();
    no_summary.as_object_mut().unwrap().remove("treatment_policy_summary");
    let res = post_note(&app, &doctor, &t.patient_id, no_summary.clone()).await.expect(422);
    assert_eq!(fields(&res), ["treatment_policy_summary"]);
    no_summary["treatment_policy_changed"] = json!(false);
    let unchanged = post_note(&app, &doctor, &t.patient_id, no_summary).await.expect(201);
    assert_eq!(unchanged.body["treatment_policy_summary"], Value::Null);
    let mut past = full.clone();
    past["next_visit_on"] = json!("2020-01-01");
    let res = post_note(&app, &doctor, &t.patient_id, past).await.expect(422);
    assert_eq!(codes(&res), ["before_occurred_at"]);

    let res = post_note(&app, &doctor, &t.patient_id, full).await.expect(201);
    assert_eq!(res.body["kind"], json!("physician_info_sharing"));
    assert_eq!(res.body["author_profession"], json!("physician"));
    assert_eq!(res.body["next_visit_on"], json!(next_week));
    assert_eq!(res.body["treatment_policy_changed"], json!(true));
    assert_eq!(res.body["treatment_policy_summary"], json!("利尿薬を増量(フロセミド 20mg→40mg)。"));
    assert_eq!(res.body["cautions_for_team"], json!("体重が2日で2kg以上増えたら連絡を。"));
    assert_eq!(res.body["text"], json!(""));
    // Other kinds leave these items null.
    let v = post_note(&app, &t.nurse, &t.patient_id, visit("通常の訪問", 5)).await.expect(201);
    assert_eq!(v.body["next_visit_on"], Value::Null);
    assert_eq!(v.body["cautions_for_team"], Value::Null);
    let physician_notes = all_notes(&app, &t.nurse, &t.patient_id, "&kind=physician_info_sharing").await;
    assert_eq!(physician_notes.len(), 2);
}

async fn read_receipts_and_unread_counts(app: TestApp) {
    let t = team(&app, "14132").await;
    let mut ids = Vec::new();
    for n in 0..4 {
        let r = post_note(&app, &t.nurse, &t.patient_id, visit(&format!("訪問{n}"), 40 - n)).await.expect(201);
        ids.push(id_of(&r));
    }
    // A second patient of the same care manager, with one note of her own (read: she wrote it)
    // and one by a nurse of that team.
    let second = app
        .post("/api/v1/patients", &t.care_manager.token, crate::patients::patient_body("幸", "サイワイ", "14132"))
        .await
        .expect(201);
    let second_id = id_of(&second);
    app.post(
        &format!("/api/v1/patients/{second_id}/care-team"),
        &t.care_manager.token,
        json!({"user_id": t.nurse.id, "role": "visiting_nurse"}),
    )
    .await
    .expect(201);
    post_note(&app, &t.care_manager, &second_id, visit("ケアマネの記録", 5)).await.expect(201);
    let other = post_note(&app, &t.nurse, &second_id, visit("看護師の記録", 3)).await.expect(201);

    // The nurse wrote everything on the first patient; she has one unread note (the care
    // manager's, on the second patient).
    let nurse_unread = app.get("/api/v1/me/unread", &t.nurse.token).await.expect(200);
    assert_eq!(nurse_unread.body["total_unread"], json!(1));
    assert_eq!(items(&nurse_unread)[0]["patient_id"], json!(second_id));

    let cm = app.get("/api/v1/me/unread", &t.care_manager.token).await.expect(200);
    assert_eq!(cm.body["total_unread"], json!(5));
    let per: HashMap<String, i64> = items(&cm)
        .iter()
        .map(|p| (p["patient_id"].as_str().unwrap().to_string(), p["unread_count"].as_i64().unwrap()))
        .collect();
    assert_eq!(per[&t.patient_id], 4);
    assert_eq!(per[&second_id], 1);
    // The patient with the newest unread note first; the newest 3 unread notes, newest first.
    assert_eq!(items(&cm)[0]["patient_id"], json!(second_id));
    assert_eq!(items(&cm)[0]["newest"][0]["id"], json!(id_of(&other)));
    let first_patient = items(&cm).iter().find(|p| p["patient_id"] == json!(t.patient_id)).unwrap();
    let newest: Vec<&str> =
        first_patient["newest"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(newest, [ids[3].as_str(), ids[2].as_str(), ids[1].as_str()]);
    assert_eq!(first_patient["family_name"], json!("川崎"));
    assert_eq!(first_patient["newest"][0]["excerpt"], json!("訪問3"));

    // Reading (GET) and marking (PUT) each remove one; marking again changes nothing.
    app.get(&format!("/api/v1/notes/{}", ids[0]), &t.care_manager.token).await.expect(200);
    app.call("PUT", &format!("/api/v1/notes/{}/read", ids[1]), Some(&t.care_manager.token), None, &[])
        .await
        .expect(204);
    app.call("PUT", &format!("/api/v1/notes/{}/read", ids[1]), Some(&t.care_manager.token), None, &[])
        .await
        .expect(204);
    let cm = app.get("/api/v1/me/unread", &t.care_manager.token).await.expect(200);
    assert_eq!(cm.body["total_unread"], json!(3));

    // Who read, and when (first read kept).
    let reads = app.get(&format!("/api/v1/notes/{}/reads", ids[1]), &t.nurse.token).await.expect(200);
    assert_eq!(reads.body["read_count"], json!(2));
    let readers: Vec<&str> = items(&reads).iter().map(|r| r["user_id"].as_str().unwrap()).collect();
    assert_eq!(readers, [t.nurse.id.as_str(), t.care_manager.id.as_str()]);
    assert_eq!(items(&reads)[1]["profession"], json!("care_manager"));
    let first_read = items(&reads)[1]["read_at"].clone();
    app.get(&format!("/api/v1/notes/{}", ids[1]), &t.care_manager.token).await.expect(200);
    let reads = app.get(&format!("/api/v1/notes/{}/reads", ids[1]), &t.nurse.token).await.expect(200);
    assert_eq!(items(&reads)[1]["read_at"], first_read);
    let listed = all_notes(&app, &t.care_manager, &t.patient_id, "").await;
    let counts: HashMap<&str, (i64, bool)> = listed
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), (n["read_count"].as_i64().unwrap(), n["read_by_me"].as_bool().unwrap())))
        .collect();
    assert_eq!(counts[ids[0].as_str()], (2, true));
    assert_eq!(counts[ids[1].as_str()], (2, true));
    assert_eq!(counts[ids[2].as_str()], (1, false));

    // A coordinating physician reads without leaving a receipt and cannot mark read.
    let clinic = app.organization(&t.admin, "clinic", "幸区調整医クリニック", Some("14132")).await;
    let coordinator = app.person(&t.admin, &clinic, "physician", "member").await;
    app.call("PUT", &format!("/api/v1/wards/14132/coordinators/{}", coordinator.id), Some(&t.admin.token), None, &[])
        .await
        .expect(201);
    let seen = app.get(&format!("/api/v1/notes/{}", ids[2]), &coordinator.token).await.expect(200);
    assert_eq!(seen.body["read_count"], json!(1));
    app.call("PUT", &format!("/api/v1/notes/{}/read", ids[2]), Some(&coordinator.token), None, &[]).await.expect(403);
    assert_eq!(app.get("/api/v1/me/unread", &coordinator.token).await.expect(200).body["total_unread"], json!(0));

    // Someone who left the team no longer sees that patient's unread notes.
    let today = (Utc::now() + chrono::Duration::hours(9)).date_naive().to_string();
    let team_list =
        app.get(&format!("/api/v1/patients/{second_id}/care-team"), &t.care_manager.token).await.expect(200);
    let nurse_member = items(&team_list).iter().find(|m| m["user_id"] == json!(t.nurse.id)).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.patch(
        &format!("/api/v1/patients/{second_id}/care-team/{nurse_member}"),
        &t.care_manager.token,
        json!({"ended_on": today}),
        None,
    )
    .await
    .expect(200);
    assert_eq!(app.get("/api/v1/me/unread", &t.nurse.token).await.expect(200).body["total_unread"], json!(0));
}

async fn timeline_merges_events_newest_first(app: TestApp) {
    let t = team(&app, "14133").await;
    let base = format!("/api/v1/patients/{}", t.patient_id);
    let older = post_note(&app, &t.nurse, &t.patient_id, visit("3時間前の訪問", 180)).await.expect(201);
    let newer = post_note(
        &app,
        &t.nurse,
        &t.patient_id,
        json!({"kind": "visit", "occurred_at": ago(120), "text": "2時間前の訪問", "vitals": {"pulse": 131}}),
    )
    .await
    .expect(201);
    let consent = app
        .post(
            &format!("{base}/consents"),
            &t.care_manager.token,
            json!({"scope": "care_team", "obtained_from": "patient", "obtained_on": "2026-11-01"}),
        )
        .await
        .expect(201);
    let clinic = app.organization(&t.admin, "clinic", "中原救急クリニック", Some("14133")).await;
    let er_doctor = app.person(&t.admin, &clinic, "physician", "member").await;
    app.post(
        &format!("{base}/emergency-access"),
        &er_doctor.token,
        json!({"reason": "救急搬送先から既往歴の問い合わせ"}),
    )
    .await
    .expect(201);
    app.post(
        &format!("{base}/consents/{}/revoke", id_of(&consent)),
        &t.care_manager.token,
        json!({"reason": "家族の意向"}),
    )
    .await
    .expect(200);
    let today = (Utc::now() + chrono::Duration::hours(9)).date_naive().to_string();
    app.patch(
        &format!("{base}/care-team/{}", t.nurse_member_id),
        &t.care_manager.token,
        json!({"ended_on": today}),
        None,
    )
    .await
    .expect(200);

    let full = app.get(&format!("{base}/timeline"), &t.care_manager.token).await.expect(200);
    let all = items(&full);
    let types: Vec<&str> = all.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "team_member_ended",
            "consent_revoked",
            "emergency_access",
            "consent_recorded",
            // The newer note's pulse of 131 scores 3 alone: the system raised a flag as it was posted.
            "flag_raised",
            "team_member_added",
            "team_member_added",
            "note",
            "note"
        ]
    );
    let ats: Vec<&str> = all.iter().map(|i| i["at"].as_str().unwrap()).collect();
    assert!(ats.windows(2).all(|w| w[0] >= w[1]), "{ats:?}");
    assert_eq!(all[4]["actor_id"], json!(t.nurse.id));
    assert_eq!(all[7]["id"], json!(id_of(&newer)));
    assert_eq!(all[7]["note"]["news2_total"], json!(3));
    assert_eq!(all[7]["actor_id"], json!(t.nurse.id));
    assert_eq!(all[8]["id"], json!(id_of(&older)));
    assert_eq!(all[0]["member"]["user_id"], json!(t.nurse.id));
    assert_eq!(all[0]["actor_id"], json!(t.care_manager.id));
    assert_eq!(all[2]["actor_id"], json!(er_doctor.id));
    assert!(all[2]["summary"].as_str().unwrap().contains("救急搬送先から既往歴の問い合わせ"));
    assert!(all[2]["summary_en"].as_str().unwrap().starts_with("Emergency access"));
    assert_eq!(all[6]["member"]["role"], json!("care_manager"));

    // Paging through in small pages gives the same stream.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("{base}/timeline?limit=3");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path, &t.care_manager.token).await.expect(200);
        paged.extend(items(&page).iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(&paged, all);
    app.get(&format!("{base}/timeline?cursor=eA"), &t.care_manager.token).await.expect(422);
}

async fn vital_sign_series(app: TestApp) {
    let t = team(&app, "14134").await;
    let day = 24 * 60;
    let with = |minutes: i64, vitals: Value| json!({"kind": "visit", "occurred_at": ago(minutes), "text": "測定", "vitals": vitals});
    let a = post_note(
        &app,
        &t.nurse,
        &t.patient_id,
        with(3 * day, json!({"temperature": 36.5, "pulse": 72, "spo2": 97, "on_oxygen": false, "consciousness": "A"})),
    )
    .await
    .expect(201);
    let b = post_note(
        &app,
        &t.nurse,
        &t.patient_id,
        with(2 * day, json!({"temperature": 37.9, "pulse": 95, "systolic_bp": 108, "diastolic_bp": 70})),
    )
    .await
    .expect(201);
    post_note(&app, &t.nurse, &t.patient_id, visit("測定なし", day + 60)).await.expect(201);
    let c = post_note(
        &app,
        &t.nurse,
        &t.patient_id,
        with(day, json!({"temperature": 38.6, "pulse": 118, "respiratory_rate": 24})),
    )
    .await
    .expect(201);
    // An amendment replaces the values it corrects.
    app.post(
        &format!("/api/v1/notes/{}/amendments", id_of(&c)),
        &t.nurse.token,
        json!({"reason": "体温の誤記", "occurred_at": ago(day), "text": "測定", "vitals": {"temperature": 38.2, "pulse": 118, "respiratory_rate": 24}}),
    )
    .await
    .expect(201);

    let path = format!("/api/v1/patients/{}/vitals", t.patient_id);
    let res = app.get(&format!("{path}?since={}", ago(4 * day)), &t.care_manager.token).await.expect(200);
    let s = &res.body["series"];
    let values =
        |name: &str| -> Vec<Value> { s[name].as_array().unwrap().iter().map(|p| p["value"].clone()).collect() };
    assert_eq!(values("temperature"), [json!(36.5), json!(37.9), json!(38.2)]);
    assert_eq!(values("pulse"), [json!(72), json!(95), json!(118)]);
    assert_eq!(values("systolic_bp"), [json!(108)]);
    assert_eq!(values("spo2"), [json!(97)]);
    assert_eq!(values("on_oxygen"), [json!(false)]);
    assert_eq!(values("consciousness"), [json!("A")]);
    assert_eq!(values("respiratory_rate"), [json!(24)]);
    let news2: Vec<i64> = s["news2"].as_array().unwrap().iter().map(|p| p["total"].as_i64().unwrap()).collect();
    assert_eq!(news2.len(), 3);
    let expected_c = news2::score(&Vitals {
        temperature: Some(38.2),
        pulse: Some(118),
        respiratory_rate: Some(24),
        ..Vitals::default()
    });
    assert_eq!(news2[2], i64::from(expected_c.total));
    assert_eq!(s["pulse"][0]["note_id"], json!(id_of(&a)));
    assert_eq!(s["pulse"][1]["note_id"], json!(id_of(&b)));
    assert_eq!(res.body["truncated"], json!(false));
    // A narrower period.
    let res = app
        .get(&format!("{path}?since={}&until={}", ago(2 * day + 60), ago(day + 30)), &t.care_manager.token)
        .await
        .expect(200);
    assert_eq!(res.body["series"]["pulse"].as_array().unwrap().len(), 1);
    // The default period (30 days) covers them all.
    let res = app.get(&path, &t.care_manager.token).await.expect(200);
    assert_eq!(res.body["series"]["news2"].as_array().unwrap().len(), 3);
    app.get(&format!("{path}?since={}&until={}", ago(10), ago(20)), &t.care_manager.token).await.expect(422);
    app.get(&format!("{path}?since=2020-01-01T00:00:00Z"), &t.care_manager.token).await.expect(422);
}

async fn database_refuses_changes_to_notes(app: TestApp) {
    use diesel::connection::SimpleConnection;
    let t = team(&app, "14135").await;
    let res = post_note(&app, &t.nurse, &t.patient_id, visit("消せない記録", 1)).await.expect(201);
    let id = id_of(&res);
    let mut conn = app.db.get().unwrap();
    for sql in [
        format!("UPDATE note_versions SET text = 'changed' WHERE note_id = '{id}'"),
        format!("DELETE FROM note_versions WHERE note_id = '{id}'"),
        format!("UPDATE notes SET kind = 'other' WHERE id = '{id}'"),
        format!("DELETE FROM notes WHERE id = '{id}'"),
    ] {
        assert!(conn.batch_execute(&sql).is_err(), "the database allowed: {sql}");
    }
    drop(conn);
    let read = app.get(&format!("/api/v1/notes/{id}"), &t.care_manager.token).await.expect(200);
    assert_eq!(read.body["text"], json!("消せない記録"));
}

/// Varied vital signs for the `i`-th scripted note: every band, both SpO2 answers about oxygen,
/// and some parameters missing (partial scores).
fn scripted_vitals(i: usize) -> Vitals {
    let systolic = 85 + (i * 17 % 140) as i32;
    let mut v = Vitals {
        temperature: Some(35.0 + (i * 3 % 50) as f64 / 10.0),
        systolic_bp: Some(systolic),
        diastolic_bp: Some((20 + (i * 11 % 80) as i32).min(systolic - 10)),
        pulse: Some(38 + (i * 13 % 100) as i32),
        respiratory_rate: Some(7 + (i * 7 % 22) as i32),
        spo2: Some(86 + (i % 15) as i32),
        spo2_scale: None,
        spo2_scale_reason: None,
        on_oxygen: Some(i.is_multiple_of(5)),
        consciousness: Some(if i.is_multiple_of(17) { Consciousness::C } else { Consciousness::A }),
    };
    if i.is_multiple_of(7) {
        v.temperature = None;
    }
    if i.is_multiple_of(11) {
        v.consciousness = None;
        v.on_oxygen = None;
    }
    v
}

/// The done-when: a scripted client posts 1,000 notes with vital signs through the API
/// and reads them back in order with correct NEWS2 scores, read counts and unread counts.
async fn scripted_client_posts_1000_notes(app: TestApp) {
    const NOTES: usize = 1000;
    const WORKERS: usize = 4;
    let started = Instant::now();
    let t = team(&app, "14136").await;
    let path = notes_path(&t.patient_id);
    // Two notes per second of occurred_at, so equal times are ordered by id.
    let base = Utc::now() - Duration::hours(12);
    let post_share = |worker: usize| {
        let (app, nurse, path) = (&app, &t.nurse, &path);
        async move {
            let mut posted = Vec::new();
            for i in (worker..NOTES).step_by(WORKERS) {
                let vitals = scripted_vitals(i);
                let occurred = (base - Duration::seconds((i / 2) as i64)).to_rfc3339_opts(SecondsFormat::Micros, true);
                let body = json!({"kind": "visit", "occurred_at": occurred, "text": format!("定期訪問 #{i}"), "vitals": vitals});
                let res = post_with_key(app, nurse, path, &format!("scripted-{i}"), &body).await.expect(201);
                assert_eq!(res.body["news2"], serde_json::to_value(news2::score(&vitals)).unwrap(), "note {i}");
                posted.push((id_of(&res), i));
            }
            posted
        }
    };
    let (w0, w1, w2, w3) = tokio::join!(post_share(0), post_share(1), post_share(2), post_share(3));
    let posted: HashMap<String, usize> = [w0, w1, w2, w3].into_iter().flatten().collect();
    assert_eq!(posted.len(), NOTES);
    let posting = started.elapsed();

    // Read back, page by page: newest occurred_at first, then id; each NEWS2 as scored.
    let listed = all_notes(&app, &t.care_manager, &t.patient_id, "").await;
    assert_eq!(listed.len(), NOTES);
    let keys: Vec<(String, String)> = listed
        .iter()
        .map(|n| (n["occurred_at"].as_str().unwrap().to_string(), n["id"].as_str().unwrap().to_string()))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] > w[1]), "not in order");
    for n in &listed {
        let i = posted[n["id"].as_str().unwrap()];
        // Shown as scored: the patient has no 88–92% target, so SpO2 is on scale 1.
        let vitals = scripted_vitals(i).following_patient(false);
        assert_eq!(n["news2"], serde_json::to_value(news2::score(&vitals)).unwrap(), "note {i}");
        assert_eq!(n["vitals"], serde_json::to_value(&vitals).unwrap(), "note {i}");
        assert_eq!(n["read_count"], json!(1));
    }
    // Retries of the whole script create nothing.
    let i = 123;
    let again = json!({"kind": "visit", "occurred_at": (base - Duration::seconds((i / 2) as i64)).to_rfc3339_opts(SecondsFormat::Micros, true),
                       "text": format!("定期訪問 #{i}"), "vitals": scripted_vitals(i)});
    let replay = post_with_key(&app, &t.nurse, &path, &format!("scripted-{i}"), &again).await.expect(201);
    assert_eq!(replay.header("idempotent-replayed").as_deref(), Some("true"));

    // The care manager reads every tenth note; read counts and unread counts follow.
    let read: HashSet<String> = posted.iter().filter(|(_, i)| *i % 10 == 0).map(|(id, _)| id.clone()).collect();
    let read_list: Vec<&String> = read.iter().collect();
    let read_share = |worker: usize| {
        let (app, cm, read_list) = (&app, &t.care_manager, &read_list);
        async move {
            for id in read_list.iter().skip(worker).step_by(WORKERS) {
                app.get(&format!("/api/v1/notes/{id}"), &cm.token).await.expect(200);
            }
        }
    };
    tokio::join!(read_share(0), read_share(1), read_share(2), read_share(3));
    let unread = app.get("/api/v1/me/unread", &t.care_manager.token).await.expect(200);
    assert_eq!(unread.body["total_unread"], json!(NOTES - read.len()));
    assert_eq!(items(&unread).len(), 1);
    let newest = items(&unread)[0]["newest"].as_array().unwrap();
    assert_eq!(newest.len(), 3);
    assert!(newest.iter().all(|n| !read.contains(n["id"].as_str().unwrap())));
    assert_eq!(app.get("/api/v1/me/unread", &t.nurse.token).await.expect(200).body["total_unread"], json!(0));
    let listed = all_notes(&app, &t.nurse, &t.patient_id, "").await;
    for n in &listed {
        let id = n["id"].as_str().unwrap();
        let expected = if read.contains(id) { 2 } else { 1 };
        assert_eq!(n["read_count"], json!(expected), "note {}", posted[id]);
    }
    crate::helpers::say(&format!(
        "scripted_client_posts_1000_notes ({:?}): {NOTES} notes posted in {:.1} s, whole scenario {:.1} s",
        app.backend,
        posting.as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
}

/// The patient's SpO2 target as a clinician records it (`PATCH /patients/{id}` with the ETag).
async fn set_spo2_target(app: &TestApp, who: &Person, patient_id: &str, recorded: bool) -> TestResponse {
    let path = format!("/api/v1/patients/{patient_id}");
    let etag = app.get(&path, &who.token).await.header("etag").unwrap();
    app.patch(&path, &who.token, json!({"spo2_target_88_92": recorded}), Some(&etag)).await
}

/// A patient with hypercapnic respiratory failure: once a clinician records the 88–92% target,
/// every later note is scored on SpO2 scale 2 — the note need not say so — and on oxygen at 97%
/// that is 3 for SpO2 and, with 2 for oxygen, the urgent flag, where scale 1 would score 2 and
/// raise nothing. A note overrides the patient's scale only with a reason.
async fn scale_2_follows_the_patient(app: TestApp) {
    let t = team(&app, "14135").await;
    let flags_path = format!("/api/v1/patients/{}/flags", t.patient_id);
    let on_oxygen_at_97 = |extra: Value| {
        let mut vitals = json!({"temperature": 36.8, "systolic_bp": 124, "diastolic_bp": 70, "pulse": 78,
            "respiratory_rate": 18, "spo2": 97, "on_oxygen": true, "consciousness": "A"});
        vitals.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"kind": "visit", "occurred_at": ago(1), "text": "在宅酸素 2L/分で訪問", "vitals": vitals})
    };

    // Before any decision the note is scored on scale 1: SpO2 0, oxygen 2, no flag.
    let before = post_note(&app, &t.nurse, &t.patient_id, on_oxygen_at_97(json!({}))).await.expect(201);
    assert_eq!(before.body["news2"]["total"], json!(2));
    assert_eq!(before.body["news2"]["spo2_scale"], json!(1));
    assert_eq!(before.body["news2"]["spo2_scale_basis"], json!("standard"));
    assert_eq!(before.body["vitals"]["spo2_scale"], json!(1));
    assert_eq!(app.get(&flags_path, &t.nurse.token).await.expect(200).body["items"], json!([]));

    // Recording the target is a clinician's decision: the care manager may not, the nurse may.
    set_spo2_target(&app, &t.care_manager, &t.patient_id, true).await.expect(403);
    let patient = set_spo2_target(&app, &t.nurse, &t.patient_id, true).await.expect(200);
    assert_eq!(patient.body["spo2_target_88_92"], json!(true));

    // A note that sends no scale follows the patient: scale 2, SpO2 3, total 5, urgent flag.
    let note = post_note(&app, &t.nurse, &t.patient_id, on_oxygen_at_97(json!({}))).await.expect(201);
    assert_eq!(note.body["news2"]["subscores"]["spo2"], json!(3));
    assert_eq!(note.body["news2"]["subscores"]["air_or_oxygen"], json!(2));
    assert_eq!(note.body["news2"]["total"], json!(5));
    assert_eq!(note.body["news2"]["spo2_scale"], json!(2));
    assert_eq!(note.body["news2"]["spo2_scale_basis"], json!("patient_target"));
    assert_eq!(note.body["vitals"]["spo2_scale"], json!(2));
    let flags = app.get(&flags_path, &t.nurse.token).await.expect(200);
    let raised = &flags.body["items"][0];
    assert_eq!(raised["severity"], json!("urgent"), "{}", flags.text);
    assert_eq!(raised["source_note_id"], note.body["id"]);
    assert_eq!(raised["status"], json!("active"));
    // Read back, the note still says which scale it used and why.
    let read = app.get(&format!("/api/v1/notes/{}", id_of(&note)), &t.care_manager.token).await.expect(200);
    assert_eq!(read.body["news2"]["spo2_scale_basis"], json!("patient_target"));

    // Overriding it needs a reason, named as the field at fault.
    let res = post_note(&app, &t.nurse, &t.patient_id, on_oxygen_at_97(json!({"spo2_scale": 1}))).await.expect(422);
    assert_eq!(
        (fields(&res), codes(&res)),
        (vec!["vitals.spo2_scale_reason".to_string()], vec!["required".to_string()])
    );
    let reason = "主治医と相談し、急性増悪時のため本日はスケール1で評価";
    let overridden = post_note(
        &app,
        &t.nurse,
        &t.patient_id,
        on_oxygen_at_97(json!({"spo2_scale": 1, "spo2_scale_reason": reason})),
    )
    .await
    .expect(201);
    assert_eq!(overridden.body["news2"]["total"], json!(2));
    assert_eq!(overridden.body["news2"]["spo2_scale"], json!(1));
    assert_eq!(overridden.body["news2"]["spo2_scale_basis"], json!("note_override"));
    assert_eq!(overridden.body["vitals"]["spo2_scale_reason"], json!(reason));
    // A reason without an override is refused.
    let res = post_note(&app, &t.nurse, &t.patient_id, on_oxygen_at_97(json!({"spo2_scale_reason": reason})))
        .await
        .expect(422);
    assert_eq!(codes(&res), ["not_an_override"]);

    // Withdrawn by a clinician, later notes are scored on scale 1 again.
    set_spo2_target(&app, &t.nurse, &t.patient_id, false).await.expect(200);
    let after = post_note(&app, &t.nurse, &t.patient_id, on_oxygen_at_97(json!({}))).await.expect(201);
    assert_eq!(after.body["news2"]["spo2_scale"], json!(1));
    assert_eq!(after.body["news2"]["spo2_scale_basis"], json!("standard"));
    post_note(&app, &t.nurse, &t.patient_id, on_oxygen_at_97(json!({"spo2_scale": 2}))).await.expect(422);
}

/// The kept unread counts (`notes::unread`) equal the ones computed from the notes and receipts
/// after every kind of write that moves them — notes, first reads, a member joining with notes
/// already there and leaving — and `/me/unread` pages through them newest first.
async fn unread_counts_are_kept_as_notes_are_posted_read_and_the_team_changes(app: TestApp) {
    let t = team(&app, "14132").await;
    let pharmacy = app.organization(&t.admin, "pharmacy", "幸調剤薬局", Some("14132")).await;
    let pharmacist = app.person(&t.admin, &pharmacy, "pharmacist", "member").await;
    let people = [t.care_manager.id.clone(), t.nurse.id.clone(), pharmacist.id.clone()];
    let agree = |label: &'static str| {
        let people = people.clone();
        let db = app.db.clone();
        async move {
            for user_id in people {
                let (live, stored) = db
                    .run(move |conn| {
                        Ok((
                            renkei::notes::unread::live_counts(conn, &user_id)?,
                            renkei::notes::unread::stored_counts(conn, &user_id)?,
                        ))
                    })
                    .await
                    .unwrap();
                assert_eq!(stored, live, "{label}");
            }
        }
    };

    let mut first = Vec::new();
    for n in 0..3 {
        first.push(id_of(&post_note(&app, &t.nurse, &t.patient_id, visit(&format!("訪問{n}"), 30)).await.expect(201)));
    }
    agree("after notes").await;
    // The pharmacist joins a team with three notes already written: all three are unread.
    let joined = app
        .post(
            &format!("/api/v1/patients/{}/care-team", t.patient_id),
            &t.care_manager.token,
            json!({"user_id": pharmacist.id, "role": "pharmacist"}),
        )
        .await
        .expect(201);
    agree("after joining").await;
    let mine = app.get("/api/v1/me/unread", &pharmacist.token).await.expect(200);
    assert_eq!(mine.body["total_unread"], json!(3));
    app.get(&format!("/api/v1/notes/{}", first[0]), &pharmacist.token).await.expect(200);
    agree("after a read").await;

    // Two more patients of the care manager, each with a nurse's note: three patients to page.
    let mut patients = vec![t.patient_id.clone()];
    for (name, kana) in [("幸", "サイワイ"), ("中原", "ナカハラ")] {
        let p = app
            .post("/api/v1/patients", &t.care_manager.token, crate::patients::patient_body(name, kana, "14132"))
            .await
            .expect(201);
        let pid = id_of(&p);
        app.post(
            &format!("/api/v1/patients/{pid}/care-team"),
            &t.care_manager.token,
            json!({"user_id": t.nurse.id, "role": "visiting_nurse"}),
        )
        .await
        .expect(201);
        post_note(&app, &t.nurse, &pid, visit("初回訪問", 20)).await.expect(201);
        patients.push(pid);
    }
    agree("after more patients").await;
    let mut seen = Vec::new();
    let mut path = "/api/v1/me/unread?limit=1".to_string();
    loop {
        let page = app.get(&path, &t.care_manager.token).await.expect(200);
        assert_eq!(page.body["total_unread"], json!(5), "every page counts all my patients");
        assert_eq!(items(&page).len(), 1);
        seen.push(items(&page)[0]["patient_id"].as_str().unwrap().to_string());
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/me/unread?limit=1&cursor={c}"),
            None => break,
        }
    }
    patients.reverse();
    assert_eq!(seen, patients, "the patient with the newest unread note first, each once");
    let bad = app.get("/api/v1/me/unread?cursor=bm90LWEtY3Vyc29y", &t.care_manager.token).await.expect(422);
    assert_eq!(bad.body["errors"][0]["field"], json!("cursor"));
    app.get("/api/v1/me/unread?limit=0", &t.care_manager.token).await.expect(422);

    // The pharmacist leaves: nothing of the patient is unread for them any more.
    let today = (Utc::now() + Duration::hours(9)).date_naive().to_string();
    app.patch(
        &format!("/api/v1/patients/{}/care-team/{}", t.patient_id, id_of(&joined)),
        &t.care_manager.token,
        json!({"ended_on": today}),
        None,
    )
    .await
    .expect(200);
    agree("after leaving").await;
    let mine = app.get("/api/v1/me/unread", &pharmacist.token).await.expect(200);
    assert_eq!(mine.body["total_unread"], json!(0));
    assert_eq!(mine.body["items"], json!([]));
}

crate::both_backends!(
    post_read_and_list_notes,
    retried_post_returns_the_first_answer,
    amendments_keep_every_version,
    notes_of_another_team_are_hidden,
    body_with_author_id_is_refused,
    invalid_notes_name_the_field,
    japanese_text_round_trips,
    physician_info_sharing_note,
    read_receipts_and_unread_counts,
    unread_counts_are_kept_as_notes_are_posted_read_and_the_team_changes,
    timeline_merges_events_newest_first,
    vital_sign_series,
    database_refuses_changes_to_notes,
    scripted_client_posts_1000_notes,
    scale_2_follows_the_patient,
);
