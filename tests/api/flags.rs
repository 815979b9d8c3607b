//! Deterioration flags: raising, acknowledging, resolving, NEWS2 triggers and escalation.

use chrono::Duration;
use renkei::flags::{self, AutoFlag};
use renkei::notes::news2;
use renkei::notes::vitals::Vitals;
use serde_json::json;

use crate::helpers::TestApp;
use crate::patients::team;

async fn raise_acknowledge_resolve(app: TestApp) {
    let t = team(&app, "14131").await;
    let base = format!("/api/v1/patients/{}/flags", t.patient_id);
    let urgent = app
        .post(&base, &t.nurse.token, json!({"severity": "urgent", "reason": "食事が摂れず、ぐったりしている"}))
        .await
        .expect(201);
    let emergency = app
        .post(&base, &t.nurse.token, json!({"severity": "emergency", "reason": "呼びかけへの反応が乏しい"}))
        .await
        .expect(201);
    assert_eq!(urgent.body["status"], json!("active"));
    assert_eq!(urgent.body["source"], json!("manual"));
    assert_eq!(urgent.body["patient_family_name"], json!("川崎"));
    let (u, e) = (urgent.body["id"].as_str().unwrap(), emergency.body["id"].as_str().unwrap());

    // Most severe first.
    let mine = app.get("/api/v1/me/flags", &t.care_manager.token).await.expect(200);
    let order: Vec<&str> = mine.body["items"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(order, [e, u]);

    app.post(&format!("/api/v1/flags/{e}/acknowledge"), &t.care_manager.token, json!({"note": "主治医に連絡済み"}))
        .await
        .expect(200);
    app.post(&format!("/api/v1/flags/{e}/acknowledge"), &t.care_manager.token, json!({})).await.expect(409);
    app.post(&format!("/api/v1/flags/{e}/resolve"), &t.nurse.token, json!({"note": ""})).await.expect(422);
    let resolved = app
        .post(&format!("/api/v1/flags/{e}/resolve"), &t.nurse.token, json!({"note": "往診で対応、状態安定"}))
        .await
        .expect(200);
    assert_eq!(resolved.body["status"], json!("resolved"));
    app.post(&format!("/api/v1/flags/{e}/resolve"), &t.nurse.token, json!({"note": "again"})).await.expect(409);
    let wrong = app
        .post(
            &format!("/api/v1/flags/{u}/resolve"),
            &t.nurse.token,
            json!({"note": "別の患者と取り違え", "entered_in_error": true}),
        )
        .await
        .expect(200);
    assert_eq!(wrong.body["status"], json!("entered_in_error"));
    assert_eq!(app.get("/api/v1/me/flags", &t.care_manager.token).await.expect(200).body["items"], json!([]));
    let all = app.get(&format!("{base}?status=resolved"), &t.nurse.token).await.expect(200);
    assert_eq!(all.body["items"].as_array().unwrap().len(), 1);

    // Outside the team: the same 404 as a flag that does not exist.
    let outsider_org = app.organization(&t.admin, "clinic", "外部クリニック", None).await;
    let outsider = app.person(&t.admin, &outsider_org, "physician", "member").await;
    let hidden = app.get(&format!("/api/v1/flags/{u}"), &outsider.token).await.expect(404);
    let missing = app.get("/api/v1/flags/01900000-0000-7000-8000-000000000000", &outsider.token).await.expect(404);
    assert_eq!(hidden.text, missing.text);
    app.post(&base, &outsider.token, json!({"severity": "urgent", "reason": "x"})).await.expect(404);
    app.get(&format!("/api/v1/flags/{u}"), &t.nurse.token).await.expect(200);
}

fn vitals(rr: i32, spo2: i32, pulse: i32, sbp: i32, temp: f64) -> Vitals {
    Vitals {
        respiratory_rate: Some(rr),
        spo2: Some(spo2),
        on_oxygen: Some(false),
        systolic_bp: Some(sbp),
        pulse: Some(pulse),
        consciousness: Some(renkei::notes::vitals::Consciousness::A),
        temperature: Some(temp),
        ..Default::default()
    }
}

async fn news2_triggers_update_one_automatic_flag(app: TestApp) {
    let t = team(&app, "14132").await;
    let limits = app.config.escalation_limits();
    let pid = t.patient_id.clone();
    let nurse = t.nurse.id.clone();
    let out = app
        .db
        .run(move |conn| {
            let now = renkei::db::now();
            let normal = news2::score(&vitals(16, 97, 70, 130, 36.5));
            let urgent = news2::score(&vitals(22, 94, 112, 130, 36.5)); // 2 + 1 + 2 = 5
            let emergency = news2::score(&vitals(25, 93, 115, 130, 36.5)); // 3 + 2 + 2 = 7
            assert_eq!(urgent.alert_level(), Some(news2::AlertLevel::Urgent));
            assert_eq!(emergency.alert_level(), Some(news2::AlertLevel::Emergency));
            let mut out = vec![flags::apply_news2(conn, &pid, "note-1", &normal, &nurse, now, &limits)?];
            out.push(flags::apply_news2(conn, &pid, "note-2", &urgent, &nurse, now, &limits)?);
            out.push(flags::apply_news2(conn, &pid, "note-3", &urgent, &nurse, now, &limits)?);
            out.push(flags::apply_news2(conn, &pid, "note-4", &emergency, &nurse, now, &limits)?);
            out.push(flags::apply_news2(conn, &pid, "note-5", &urgent, &nurse, now, &limits)?);
            Ok(out)
        })
        .await
        .unwrap();
    assert_eq!(out[0], None, "a normal score raises nothing");
    let id = match &out[1] {
        Some(AutoFlag::Raised(id)) => id.clone(),
        other => panic!("expected a new flag, got {other:?}"),
    };
    assert_eq!(out[2], Some(AutoFlag::Updated(id.clone())), "no duplicate while one is open");
    assert_eq!(out[3], Some(AutoFlag::Escalated(id.clone())), "a higher severity escalates it");
    assert_eq!(out[4], Some(AutoFlag::Updated(id.clone())), "a lower score does not lower it");
    let flag = app.get(&format!("/api/v1/flags/{id}"), &t.nurse.token).await.expect(200);
    assert_eq!(flag.body["source"], json!("news2"));
    assert_eq!(flag.body["severity"], json!("emergency"));
    assert_eq!(flag.body["source_note_id"], json!("note-5"));
    assert!(flag.body["reason"].as_str().unwrap().contains("NEWS2"));
    let open =
        app.get(&format!("/api/v1/patients/{}/flags?status=active", t.patient_id), &t.nurse.token).await.expect(200);
    assert_eq!(open.body["items"].as_array().unwrap().len(), 1);
}

async fn escalation_steps_happen_once(app: TestApp) {
    let t = team(&app, "14133").await;
    let clinic = app.organization(&t.admin, "clinic", "中原在宅クリニック", Some("14133")).await;
    let backup = app.person(&t.admin, &clinic, "physician", "member").await;
    let coordinator = app.person(&t.admin, &clinic, "physician", "member").await;
    app.post(
        &format!("/api/v1/patients/{}/care-team", t.patient_id),
        &t.care_manager.token,
        json!({"user_id": backup.id, "role": "backup_physician"}),
    )
    .await
    .expect(201);
    app.call("PUT", &format!("/api/v1/wards/14133/coordinators/{}", coordinator.id), Some(&t.admin.token), None, &[])
        .await
        .expect(201);
    let base = format!("/api/v1/patients/{}/flags", t.patient_id);
    let e = app
        .post(&base, &t.nurse.token, json!({"severity": "emergency", "reason": "SpO2 低下、呼吸苦"}))
        .await
        .expect(201);
    let acked = app.post(&base, &t.nurse.token, json!({"severity": "emergency", "reason": "転倒"})).await.expect(201);
    app.post(
        &format!("/api/v1/flags/{}/acknowledge", acked.body["id"].as_str().unwrap()),
        &t.care_manager.token,
        json!({}),
    )
    .await
    .expect(200);
    let flag_id = e.body["id"].as_str().unwrap().to_string();
    let limits = app.config.escalation_limits();
    let escalate = |minutes: i64| {
        let db = app.db.clone();
        async move {
            db.run(move |conn| flags::escalate_due(conn, renkei::db::now() + Duration::minutes(minutes), &limits))
                .await
                .unwrap()
        }
    };
    // Each step taken is a recorded change of the flag: the change feed and partners hear of it.
    let flag_changes = || {
        let (db, patient_id) = (app.db.clone(), t.patient_id.clone());
        async move {
            use diesel::prelude::*;
            use renkei::db::schema::change_log::dsl as c;
            db.run(move |conn| {
                Ok(c::change_log
                    .filter(c::patient_id.eq(patient_id))
                    .filter(c::kind.eq("flag"))
                    .count()
                    .get_result::<i64>(conn)?)
            })
            .await
            .unwrap()
        }
    };
    let before = flag_changes().await;
    assert!(escalate(14).await.is_empty(), "not before 15 minutes");
    let step = escalate(16).await;
    assert_eq!(step.len(), 1, "only the unacknowledged flag escalates");
    assert_eq!((step[0].flag_id.as_str(), step[0].level), (flag_id.as_str(), 1));
    assert_eq!(step[0].recipients, vec![backup.id.clone()]);
    assert_eq!(flag_changes().await, before + 1, "the step is recorded once");
    assert!(escalate(16).await.is_empty(), "the same step never twice");
    assert!(escalate(30).await.is_empty(), "the next step waits its own 15 minutes");
    assert_eq!(flag_changes().await, before + 1, "no step, no change");
    let step = escalate(32).await;
    assert_eq!((step[0].level, step[0].recipients.clone()), (2, vec![coordinator.id.clone()]));
    assert_eq!(flag_changes().await, before + 2);
    assert!(escalate(120).await.is_empty(), "no step after the coordinators");
    let flag = app.get(&format!("/api/v1/flags/{flag_id}"), &t.nurse.token).await.expect(200);
    assert_eq!(flag.body["escalation_level"], json!(2));
}

/// Two instances racing for the same due step on PostgreSQL: exactly one takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_escalation_is_claimed_once() {
    let Some(app) = TestApp::spawn_postgres().await else { return };
    let t = team(&app, "14134").await;
    for _ in 0..20 {
        app.post(
            &format!("/api/v1/patients/{}/flags", t.patient_id),
            &t.nurse.token,
            json!({"severity": "urgent", "reason": "発熱"}),
        )
        .await
        .expect(201);
    }
    let second = renkei::db::Db::new(&app.database_url, 4, std::time::Duration::from_secs(2)).unwrap();
    let limits = app.config.escalation_limits();
    let at = renkei::db::now() + Duration::minutes(61);
    let (a, b) = tokio::join!(
        app.db.run(move |conn| flags::escalate_due(conn, at, &limits)),
        second.run(move |conn| flags::escalate_due(conn, at, &limits)),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut ids: Vec<String> = a.iter().chain(b.iter()).map(|s| s.flag_id.clone()).collect();
    assert_eq!(ids.len(), 20, "every due step taken: {} + {}", a.len(), b.len());
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "none taken twice");
}

async fn alert_recipients_honour_preferences(app: TestApp) {
    let t = team(&app, "14135").await;
    let clinic = app.organization(&t.admin, "clinic", "多摩在宅クリニック", Some("14135")).await;
    let doctor = app.person(&t.admin, &clinic, "physician", "member").await;
    app.post(
        &format!("/api/v1/patients/{}/care-team", t.patient_id),
        &t.care_manager.token,
        json!({"user_id": doctor.id, "role": "primary_physician"}),
    )
    .await
    .expect(201);
    // The doctor wants emergencies only; the lead care manager wants nothing.
    app.patch(
        &format!("/api/v1/users/{}", doctor.id),
        &doctor.token,
        json!({"flag_notifications": "emergency_only"}),
        None,
    )
    .await
    .expect(200);
    app.patch(
        &format!("/api/v1/users/{}", t.care_manager.id),
        &t.care_manager.token,
        json!({"flag_notifications": "none"}),
        None,
    )
    .await
    .expect(200);
    let pid = t.patient_id.clone();
    let raiser = t.nurse.id.clone();
    let (urgent, emergency) = app
        .db
        .run(move |conn| {
            Ok((
                flags::alert_recipients(conn, &pid, renkei::vocab::FlagSeverity::Urgent, None)?,
                flags::alert_recipients(conn, &pid, renkei::vocab::FlagSeverity::Emergency, Some(&raiser))?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(urgent, vec![t.nurse.id.clone()]);
    let mut emergency = emergency;
    emergency.sort();
    let mut want = vec![t.care_manager.id.clone(), doctor.id.clone()];
    want.sort();
    assert_eq!(emergency, want, "an emergency reaches the lead and the physicians whatever they chose; not the raiser");
}

/// A flag id that names nothing is answered and audited exactly like a flag of a patient outside
/// the caller's scope, on every flag route; a malformed id takes the same way.
async fn missing_flags_are_audited_like_hidden_ones(app: TestApp) {
    let t = team(&app, "14132").await;
    let flag = app
        .post(
            &format!("/api/v1/patients/{}/flags", t.patient_id),
            &t.nurse.token,
            json!({"severity": "urgent", "reason": "発熱"}),
        )
        .await
        .expect(201);
    let hidden = flag.body["id"].as_str().unwrap().to_string();
    let outsider_org = app.organization(&t.admin, "clinic", "外部クリニック", None).await;
    let outsider = app.person(&t.admin, &outsider_org, "physician", "member").await;
    let missing = "01900000-0000-7000-8000-000000000000";
    let denied = |actor: String| {
        let (app, token) = (&app, t.admin.token.clone());
        async move {
            let res =
                app.get(&format!("/api/v1/audit-events?outcome=denied&actor_id={actor}"), &token).await.expect(200);
            res.body["items"].as_array().unwrap().clone()
        }
    };
    let ack = json!({"note": "確認"});
    let resolve = json!({"note": "対応済み"});
    let routes: [(&str, &str, Option<&serde_json::Value>); 3] =
        [("GET", "", None), ("POST", "/acknowledge", Some(&ack)), ("POST", "/resolve", Some(&resolve))];
    for (method, tail, body) in routes {
        let before = denied(outsider.id.clone()).await.len();
        let out_of_scope = app
            .call(method, &format!("/api/v1/flags/{hidden}{tail}"), Some(&outsider.token), body, &[])
            .await
            .expect(404);
        let after_hidden = denied(outsider.id.clone()).await.len();
        assert_eq!(after_hidden, before + 1, "{method} {tail}: the out-of-scope attempt is audited");
        for id in [missing, "not-a-flag", "%00", "01900000-0000-7000-8000-00000000000"] {
            let res = app
                .call(method, &format!("/api/v1/flags/{id}{tail}"), Some(&outsider.token), body, &[])
                .await
                .expect(404);
            assert_eq!(res.text, out_of_scope.text, "{method} /flags/{id}{tail}: byte-identical");
        }
        let events = denied(outsider.id.clone()).await;
        // `%00` is refused before any route (see app.rs); the other three are audited misses.
        assert_eq!(events.len(), after_hidden + 3, "{method} {tail}: each miss is audited: {events:?}");
        let miss = events.iter().find(|e| e["resource_id"] == json!(missing)).expect("the miss names the id");
        assert_eq!(miss["resource_type"], json!("flag"));
        assert_eq!(miss["detail"], json!("no such flag"));
        // A malformed id is audited as the nil UUID, which names nothing.
        assert!(events.iter().any(|e| e["resource_id"] == json!("00000000-0000-0000-0000-000000000000")));
        // Nothing about the flag changed.
        let seen = app.get(&format!("/api/v1/flags/{hidden}"), &t.nurse.token).await.expect(200);
        assert_eq!(seen.body["status"], json!("active"));
    }
}

crate::both_backends!(
    missing_flags_are_audited_like_hidden_ones,
    raise_acknowledge_resolve,
    news2_triggers_update_one_automatic_flag,
    escalation_steps_happen_once,
    alert_recipients_honour_preferences,
);
