//! Identifying a patient to open a discharge case (id + birth date + katakana family name) is
//! throttled per caller and per patient id, without telling whether the patient exists, and the
//! patient's team lead hears about repeated failures.

use chrono::Duration;
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{Person, TestApp, TestResponse};
use crate::patients::team;

const MISSING: &str = "01900000-0000-7000-8000-0000000000ab";

fn days_from_today(days: i64) -> String {
    ((chrono::Utc::now() + Duration::hours(9)).date_naive() + Duration::days(days)).to_string()
}

/// A case body for the patient `patients::team` registers (カワサキ, born 1938-04-01).
fn open_body(patient_id: &str, birth_date: &str) -> Value {
    json!({
        "patient_id": patient_id,
        "birth_date": birth_date,
        "family_name_kana": "カワサキ",
        "admitted_on": days_from_today(-1),
    })
}

/// A wrong birth date, different for each guess.
fn guess(n: i64) -> String {
    (chrono::NaiveDate::from_ymd_opt(1940, 1, 1).unwrap() + Duration::days(n)).to_string()
}

async fn msw(app: &TestApp, admin: &Person, name: &str) -> Person {
    let org = app.organization(admin, "hospital", name, Some("14131")).await;
    app.person(admin, &org, "social_worker", "member").await
}

async fn open(app: &TestApp, who: &Person, body: Value) -> TestResponse {
    app.post("/api/v1/discharge-cases", &who.token, body).await
}

/// The queued e-mails of this kind: (recipient, subject, body).
async fn emails(app: &TestApp, kind: &str) -> Vec<(Option<String>, String, String)> {
    use renkei::db::schema::email_outbox::dsl as o;
    let kind = kind.to_string();
    app.db
        .run(move |conn| {
            Ok(o::email_outbox
                .filter(o::kind.eq(&kind))
                .select((o::recipient_user_id, o::subject, o::body_text))
                .load::<(Option<String>, String, String)>(conn)?)
        })
        .await
        .unwrap()
}

fn retry_after(res: &TestResponse) -> u64 {
    res.header("retry-after").expect("Retry-After").parse().expect("seconds")
}

async fn a_caller_is_throttled_after_its_budget(app: TestApp) {
    let t = team(&app, "14131").await;
    let guesser = msw(&app, &t.admin, "川崎総合病院").await;
    let bystander = msw(&app, &t.admin, "幸病院").await;
    let ghost = open(&app, &bystander, open_body(MISSING, "1938-04-01")).await.expect(404);

    // Five misses: each the 404 of a patient that does not exist.
    for n in 0..5 {
        let miss = open(&app, &guesser, open_body(&t.patient_id, &guess(n))).await.expect(404);
        assert_eq!(miss.text, ghost.text);
    }
    // Then 429 before anything is compared — the right birth date too — with Retry-After.
    let right = open(&app, &guesser, open_body(&t.patient_id, "1938-04-01")).await.expect(429);
    assert_eq!(right.problem_type(), "/problems/too-many-requests");
    assert_eq!(right.header("content-type").as_deref(), Some("application/problem+json"));
    assert!((3500..=3600).contains(&retry_after(&right)), "{:?}", right.header("retry-after"));
    // And the same for an id that names no patient: the 429 does not tell the patient exists.
    let nobody = open(&app, &guesser, open_body(MISSING, "1938-04-01")).await.expect(429);
    assert_eq!(nobody.problem_type(), right.problem_type());
    assert!(retry_after(&right).abs_diff(retry_after(&nobody)) <= 1);
    // A new case was not opened, and the guesser is not on the team.
    let guesser_on_team = app.get(&format!("/api/v1/patients/{}", t.patient_id), &guesser.token).await;
    guesser_on_team.expect(404);
    // Throttled attempts are audited as denied.
    let denied = app
        .get(&format!("/api/v1/audit-events?actor_id={}&outcome=denied", guesser.id), &t.admin.token)
        .await
        .expect(200);
    let details: Vec<&str> =
        denied.body["items"].as_array().unwrap().iter().filter_map(|e| e["detail"].as_str()).collect();
    assert_eq!(details.iter().filter(|d| **d == "identification throttled").count(), 2, "{details:?}");

    // The team's lead (the care manager) gets one e-mail, not one per failure; fixed text,
    // nothing the guesser typed.
    let mails = emails(&app, "identification_failures").await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let (recipient, subject, body) = &mails[0];
    assert_eq!(recipient.as_deref(), Some(t.care_manager.id.as_str()));
    assert!(subject.contains("患者さんの確認"), "{subject}");
    for typed in ["1940-01", "カワサキ", "川崎総合病院", "social_worker"] {
        assert!(!body.contains(typed), "the e-mail repeats {typed}: {body}");
    }
    assert!(body.contains(&format!("/patients/{}/access-log", t.patient_id)));

    // Another hospital, within its own budget and the patient's, identifies the patient.
    let case = open(&app, &bystander, open_body(&t.patient_id, "1938-04-01")).await.expect(201);
    assert_eq!(case.body["patient_id"], json!(t.patient_id));
    assert_eq!(emails(&app, "identification_failures").await.len(), 1);
}

async fn a_patient_is_throttled_across_callers(app: TestApp) {
    let t = team(&app, "14132").await;
    let first = msw(&app, &t.admin, "中原病院").await;
    let second = msw(&app, &t.admin, "高津病院").await;
    let third = msw(&app, &t.admin, "宮前病院").await;
    // A correct identification within the budget does not count against it (and needs no
    // case: the patient is then found and the case opened).
    open(&app, &first, open_body(&t.patient_id, "1938-04-01")).await.expect(201);
    for n in 0..5 {
        open(&app, &second, open_body(&t.patient_id, &guess(n))).await.expect(404);
    }
    for n in 5..10 {
        open(&app, &third, open_body(&t.patient_id, &guess(n))).await.expect(404);
    }
    // Ten failures for the patient: a fourth hospital, with its whole budget, gets 429 for the
    // right birth date, for up to a day.
    let fourth = msw(&app, &t.admin, "麻生病院").await;
    let res = open(&app, &fourth, open_body(&t.patient_id, "1938-04-01")).await.expect(429);
    assert!(retry_after(&res) > 23 * 3600 && retry_after(&res) <= 24 * 3600, "{:?}", res.header("retry-after"));
    // The lead was told once in the window.
    assert_eq!(emails(&app, "identification_failures").await.len(), 1);
}

/// A burst of concurrent guesses by one caller: at most the budget reaches the comparison, and
/// nothing answers 409 or 5xx.
async fn concurrent_guesses_stay_within_the_budget(app: TestApp) {
    let t = team(&app, "14133").await;
    let guesser = msw(&app, &t.admin, "多摩病院").await;
    let calls = (0..12).map(|n| {
        let (app, guesser, pid) = (&app, &guesser, t.patient_id.clone());
        async move { open(app, guesser, open_body(&pid, &guess(n))).await.status }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 7, "{statuses:?}");
    open(&app, &guesser, open_body(&t.patient_id, "1938-04-01")).await.expect(429);
    assert_eq!(emails(&app, "identification_failures").await.len(), 1);
}

crate::both_backends!(
    a_caller_is_throttled_after_its_budget,
    a_patient_is_throttled_across_callers,
    concurrent_guesses_stay_within_the_budget,
);
