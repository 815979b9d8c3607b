//! Alerts end to end: a note's vital signs raise a flag through the API, and the team's e-mails
//! reach a real SMTP server; escalations and break-glass notices go out once, to the right people.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Backend, Person, TestApp};
use crate::patients::{team, Team};
use crate::smtp::SmtpServer;

async fn app_sending_to(backend: Backend, server: &SmtpServer) -> TestApp {
    let url = server.url();
    TestApp::spawn_with(
        backend,
        &[
            ("RENKEI_SMTP_URL", url.as_str()),
            ("RENKEI_MAIL_FROM", "在宅療養連携ノート <no-reply@renkei.example.jp>"),
            ("RENKEI_PUBLIC_URL", "https://renkei.example.jp"),
        ],
    )
    .await
}

/// A primary and a backup physician on the team, and a coordinator of the ward.
async fn physicians(app: &TestApp, t: &Team, ward: &str) -> (Person, Person, Person) {
    let clinic = app.organization(&t.admin, "clinic", "在宅クリニック", Some(ward)).await;
    let primary = app.person(&t.admin, &clinic, "physician", "member").await;
    let backup = app.person(&t.admin, &clinic, "physician", "member").await;
    let coordinator = app.person(&t.admin, &clinic, "physician", "member").await;
    for (p, role) in [(&primary, "primary_physician"), (&backup, "backup_physician")] {
        app.post(
            &format!("/api/v1/patients/{}/care-team", t.patient_id),
            &t.care_manager.token,
            json!({"user_id": p.id, "role": role}),
        )
        .await
        .expect(201);
    }
    app.call("PUT", &format!("/api/v1/wards/{ward}/coordinators/{}", coordinator.id), Some(&t.admin.token), None, &[])
        .await
        .expect(201);
    (primary, backup, coordinator)
}

async fn a_note_with_bad_vitals_alerts_the_team(backend: Backend) {
    let server = SmtpServer::start().await;
    let app = app_sending_to(backend, &server).await;
    let t = team(&app, "14131").await;
    let (primary, backup, _) = physicians(&app, &t, "14131").await;
    // The care manager wants emergencies only; this one is an emergency, so it comes anyway.
    app.patch(
        &format!("/api/v1/users/{}", t.care_manager.id),
        &t.care_manager.token,
        json!({"flag_notifications": "emergency_only"}),
        None,
    )
    .await
    .expect(200);

    let posted = Instant::now();
    let note = app
        .post(
            &format!("/api/v1/patients/{}/notes", t.patient_id),
            &t.nurse.token,
            json!({
                "kind": "visit",
                "occurred_at": (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339(),
                "text": "訪問時、呼吸が速く顔色不良。",
                "vitals": {"respiratory_rate": 26, "spo2": 91, "on_oxygen": false, "systolic_bp": 95, "pulse": 125, "consciousness": "A", "temperature": 38.6}
            }),
        )
        .await
        .expect(201);
    assert!(note.body["news2"]["total"].as_i64().unwrap() >= 7);
    let mut received = server.wait_for(4, Duration::from_secs(5)).await;
    eprintln!("note POST to SMTP receipt of 4 alerts ({backend:?}): {} ms", (received[3].at - posted).as_millis());
    received.sort_by(|a, b| a.rcpt_to.cmp(&b.rcpt_to));
    let mut to: Vec<String> = received.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    to.sort();
    let mut want =
        vec![t.care_manager.email.clone(), t.nurse.email.clone(), primary.email.clone(), backup.email.clone()];
    want.sort();
    assert_eq!(to, want);
    for m in &received {
        assert!(m.subject().contains("緊急"), "{}", m.subject());
        let body = m.body();
        assert!(body.contains("カ.ハ."), "the patient by initials: {body}");
        assert!(!body.contains("川崎") && !body.contains("カワサキ"), "never the patient's name");
        assert!(!body.contains("呼吸が速く") && !body.contains("NEWS2 合計"), "no clinical content");
        assert!(body.contains("https://renkei.example.jp/"), "a link into the app");
        assert!(m.header("Bcc").is_none());
    }
    // The flag names its note; a second bad note updates it without a new round of e-mail.
    let flags = app.get("/api/v1/me/flags", &t.care_manager.token).await.expect(200);
    assert_eq!(flags.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(flags.body["items"][0]["source_note_id"], note.body["id"]);
    app.post(
        &format!("/api/v1/patients/{}/notes", t.patient_id),
        &t.nurse.token,
        json!({"kind": "visit", "occurred_at": chrono::Utc::now().to_rfc3339(), "text": "再訪問", "vitals": {"respiratory_rate": 26, "spo2": 91, "pulse": 125}}),
    )
    .await
    .expect(201);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.received().len(), 4, "no duplicate alert while the flag is open");
    // The flag is on the patient's timeline.
    let timeline = app.get(&format!("/api/v1/patients/{}/timeline", t.patient_id), &t.nurse.token).await.expect(200);
    let types: Vec<&str> =
        timeline.body["items"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"flag_raised"), "{types:?}");
}

async fn unacknowledged_flags_escalate_by_email_once(backend: Backend) {
    let server = SmtpServer::start().await;
    let app = app_sending_to(backend, &server).await;
    let t = team(&app, "14132").await;
    let (_, backup, coordinator) = physicians(&app, &t, "14132").await;
    app.post(
        &format!("/api/v1/patients/{}/flags", t.patient_id),
        &t.nurse.token,
        json!({"severity": "emergency", "reason": "意識レベル低下"}),
    )
    .await
    .expect(201);
    let first_round = server.wait_for(3, Duration::from_secs(5)).await.len();
    let (mailer, limits) = (app.mail.clone(), app.config.escalation_limits());
    let run = |minutes: i64| {
        let (db, mailer) = (app.db.clone(), mailer.clone());
        async move {
            db.run(move |conn| {
                renkei::flags::alerts::run_escalations(
                    conn,
                    &mailer,
                    renkei::db::now() + chrono::Duration::minutes(minutes),
                    &limits,
                )
            })
            .await
            .unwrap()
        }
    };
    assert_eq!(run(16).await, 1, "the backup physician first");
    assert_eq!(run(16).await, 0, "that step only once");
    let got = server.wait_for(first_round + 1, Duration::from_secs(5)).await;
    assert_eq!(got.last().unwrap().rcpt_to, vec![backup.email.clone()]);
    assert!(got.last().unwrap().subject().contains("緊急"));
    assert_eq!(run(32).await, 1, "then the ward's coordinating physician");
    let got = server.wait_for(first_round + 2, Duration::from_secs(5)).await;
    assert_eq!(got.last().unwrap().rcpt_to, vec![coordinator.email.clone()]);
    assert_eq!(run(120).await, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.received().len(), first_round + 2);
}

async fn break_glass_tells_the_team(backend: Backend) {
    let server = SmtpServer::start().await;
    let app = app_sending_to(backend, &server).await;
    let t = team(&app, "14133").await;
    let er = app.organization(&t.admin, "hospital", "中原救急病院", Some("14133")).await;
    let doctor = app.person(&t.admin, &er, "physician", "member").await;
    app.post(
        &format!("/api/v1/patients/{}/emergency-access", t.patient_id),
        &doctor.token,
        json!({"reason": "救急搬送、既往歴と内服薬の確認"}),
    )
    .await
    .expect(201);
    let got = server.wait_for(2, Duration::from_secs(5)).await;
    let mut to: Vec<String> = got.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    to.sort();
    let mut want = vec![t.care_manager.email.clone(), t.nurse.email.clone()];
    want.sort();
    assert_eq!(to, want);
    // Who opened the record, by profession and kind of organisation: never a name.
    assert!(got[0].body().contains("ケアチーム外の病院の医師が"), "{}", got[0].body());
    assert!(!got[0].body().contains("山田 花子") && !got[0].body().contains("中原救急病院"), "{}", got[0].body());
}

/// Nothing a person typed reaches an e-mail: not a display name or an organisation's name
/// carrying a link, not a break-glass reason, not a task title with clinical details.
async fn typed_text_never_reaches_emails(backend: Backend) {
    let server = SmtpServer::start().await;
    let app = app_sending_to(backend, &server).await;
    let t = team(&app, "14133").await;
    let phishing_org = "病院 https://evil.example/org";
    let hospital = app.organization(&t.admin, "hospital", phishing_org, Some("14133")).await;
    let doctor = app.person(&t.admin, &hospital, "physician", "member").await;
    let phishing_name = "至急こちらへ https://evil.example/login";
    app.patch(&format!("/api/v1/users/{}", doctor.id), &doctor.token, json!({"name": phishing_name}), None)
        .await
        .expect(200);
    let reason = "救急搬送 https://evil.example/reason 既往歴の確認";
    app.post(&format!("/api/v1/patients/{}/emergency-access", t.patient_id), &doctor.token, json!({"reason": reason}))
        .await
        .expect(201);
    let got = server.wait_for(2, Duration::from_secs(5)).await;

    // The hospital opens a discharge case and gives the nurse a task with clinical details.
    let msw = app.person(&t.admin, &hospital, "social_worker", "member").await;
    app.patch(&format!("/api/v1/users/{}", msw.id), &msw.token, json!({"name": phishing_name}), None).await.expect(200);
    let today = (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive();
    let case = app
        .post(
            "/api/v1/discharge-cases",
            &msw.token,
            json!({
                "patient_id": t.patient_id,
                "birth_date": "1938-04-01",
                "family_name_kana": "カワサキ",
                "admitted_on": (today - chrono::Duration::days(2)).to_string(),
            }),
        )
        .await
        .expect(201);
    let case_id = case.body["id"].as_str().unwrap().to_string();
    let clinical = "末期肺がん、モルヒネ増量の説明 https://evil.example/task";
    app.post(
        &format!("/api/v1/discharge-cases/{case_id}/tasks"),
        &msw.token,
        json!({"title": clinical, "assignee_id": t.nurse.id}),
    )
    .await
    .expect(201);
    // A task from a template is named by the template's fixed name.
    let tasks = app.get(&format!("/api/v1/discharge-cases/{case_id}/tasks"), &msw.token).await.expect(200);
    let from_template = tasks.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|task| task["template_key"].is_string())
        .expect("a task from a template")
        .clone();
    app.patch(
        &format!("/api/v1/tasks/{}", from_template["id"].as_str().unwrap()),
        &msw.token,
        json!({"assignee_id": t.nurse.id}),
        Some(&format!("\"{}\"", from_template["version"])),
    )
    .await
    .expect(200);

    let all = server.wait_for(got.len() + 4, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = if server.received().len() > all.len() { server.received() } else { all };
    let to_nurse: Vec<_> = all.iter().filter(|m| m.rcpt_to == vec![t.nurse.email.clone()]).collect();
    let kinds: Vec<String> = to_nurse.iter().map(|m| m.subject()).collect();
    assert!(kinds.iter().any(|s| s.contains("退院調整が始まりました")), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|s| s.contains("タスクが割り当てられました")).count(), 2, "{kinds:?}");
    let template_title = from_template["title"].as_str().unwrap();
    assert!(to_nurse.iter().any(|m| m.body().contains(&format!("タスク: {template_title}\n"))), "template name");
    assert!(to_nurse.iter().any(|m| m.body().contains("タスク: タスク（内容はアプリで確認してください）")));
    for m in &all {
        let raw = &m.raw;
        let body = m.body();
        for typed in ["evil.example", "至急こちらへ", "末期肺がん", "モルヒネ", "救急搬送", "既往歴", "山田 花子"]
        {
            assert!(!body.contains(typed) && !m.subject().contains(typed), "{typed} in {}: {body}", m.subject());
        }
        assert!(!raw.contains("evil.example"), "{raw}");
    }
}

crate::both_backends!(
    by_backend: a_note_with_bad_vitals_alerts_the_team,
    unacknowledged_flags_escalate_by_email_once,
    break_glass_tells_the_team,
    typed_text_never_reaches_emails
);
