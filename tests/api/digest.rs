//! The daily digest of overdue and due-today discharge tasks, delivered to a real SMTP server
//! (smtp.rs): two instances on one database race for the day, and each person gets one e-mail —
//! the case's opener and the task's assignee — listing template names and the patient's label,
//! nothing typed and nothing clinical.

use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use renkei::discharge::digest;
use serde_json::json;

use crate::helpers::{Backend, TestApp};
use crate::patients::team;
use crate::smtp::SmtpServer;

const SENDER: &str = "在宅療養連携ノート <no-reply@renkei.example.jp>";

/// A JST wall-clock time as the UTC instant the server keeps.
fn jst(day: NaiveDate, hour: u32) -> NaiveDateTime {
    day.and_hms_opt(hour, 0, 0).unwrap() - chrono::Duration::hours(9)
}

async fn two_instances_send_each_digest_once(backend: Backend) {
    let server = SmtpServer::start().await;
    let url = server.url();
    let settings = [("RENKEI_SMTP_URL", url.as_str()), ("RENKEI_MAIL_FROM", SENDER)];
    let one = TestApp::spawn_with(backend, &settings).await;
    let two = one.another_instance(&settings).await;

    // A hospital opens a case for a patient admitted three days ago: 入院時情報提供 is overdue.
    let t = team(&one, "14131").await;
    let hospital = one.organization(&t.admin, "hospital", "川崎中央病院", Some("14131")).await;
    let msw = one.person(&t.admin, &hospital, "social_worker", "member").await;
    let today = (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive();
    let admitted_on = (today - chrono::Duration::days(3)).to_string();
    let body = json!({"patient_id": t.patient_id, "birth_date": "1938-04-01", "family_name_kana": "カワサキ",
                      "admitted_on": admitted_on, "reason": "誤嚥性肺炎"});
    let case = one.post("/api/v1/discharge-cases", &msw.token, body).await.expect(201).body;
    let tasks = one
        .get(&format!("/api/v1/discharge-cases/{}/tasks", case["id"].as_str().unwrap()), &t.care_manager.token)
        .await
        .expect(200)
        .body;
    let admission_info =
        tasks["items"].as_array().unwrap().iter().find(|t| t["template_key"] == json!("admission_info")).unwrap();
    assert_eq!(admission_info["overdue"], json!(true));
    // The care manager takes it on.
    let task_path = format!("/api/v1/tasks/{}", admission_info["id"].as_str().unwrap());
    let etag = format!("\"{}\"", admission_info["version"]);
    one.patch(&task_path, &t.care_manager.token, json!({"assignee_id": t.care_manager.id}), Some(&etag))
        .await
        .expect(200);
    // An ad-hoc task with a typed title, due today.
    let adhoc =
        json!({"title": "誤嚥性肺炎の経過を家族へ説明", "assignee_id": t.care_manager.id, "due_on": today.to_string()});
    one.post(&format!("/api/v1/discharge-cases/{}/tasks", case["id"].as_str().unwrap()), &t.care_manager.token, adhoc)
        .await
        .expect(201);

    // Before the hour (7:00 JST with the digest at 8) nothing is sent, and the day stays free.
    let mailer = one.mail.clone();
    let early = one.db.run(move |conn| digest::run(conn, &mailer, jst(today, 7), 8)).await.unwrap();
    assert_eq!(early, 0);

    // Both instances run at 8:00 JST at once: one claims the day, the other queues nothing.
    let at = jst(today, 8);
    let (m1, m2) = (one.mail.clone(), two.mail.clone());
    let (a, b) = tokio::join!(
        one.db.run(move |conn| digest::run(conn, &m1, at, 8)),
        two.db.run(move |conn| digest::run(conn, &m2, at, 8)),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a + b, 2, "one digest for the opener and one for the assignee: {a} + {b}");
    assert!(a == 0 || b == 0, "only one instance sends the day's digest: {a} + {b}");
    // Later runs the same day, from either instance, send nothing more.
    let m1 = one.mail.clone();
    assert_eq!(one.db.run(move |conn| digest::run(conn, &m1, jst(today, 15), 8)).await.unwrap(), 0);

    // The case's opening and the assignment sent their own notices; the digests are these.
    let digests =
        || server.received().into_iter().filter(|m| m.subject().starts_with("期限切れ・本日期限")).collect::<Vec<_>>();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while digests().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let received = digests();
    assert_eq!(received.len(), 2, "each digest is delivered once");
    let to = |address: &str| {
        received.iter().find(|m| m.rcpt_to.iter().any(|r| r.contains(address))).unwrap_or_else(|| panic!("{address}"))
    };
    let cm = to(&t.care_manager.email).body();
    assert!(cm.contains("入院時情報提供"), "{cm}");
    assert!(cm.contains("期限切れ: 1 件"), "{cm}");
    assert!(cm.contains("本日期限: 1 件"), "{cm}");
    assert!(cm.contains("カ.ハ."), "the patient by the configured label (initials): {cm}");
    let opener = to(&msw.email).body();
    assert!(opener.contains("入院時情報提供"), "{opener}");
    for body in [&cm, &opener] {
        assert!(!body.contains("誤嚥性肺炎"), "no clinical or typed text: {body}");
        assert!(!body.contains("川崎"), "no patient name: {body}");
    }
}

crate::both_backends!(by_backend: two_instances_send_each_digest_once);
