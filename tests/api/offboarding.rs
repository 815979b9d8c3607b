//! A person leaves their organisation: an administrator offboards them and everything they held
//! ends at once — sessions, team memberships (each team's lead told), the tasks assigned to them
//! (unassigned, shown to the case's opener and the lead), sign-in. The account and its history
//! stay; a second request changes nothing.

use serde_json::{json, Value};

use crate::helpers::{emails_to, Person, TestApp, TestResponse, PASSWORD};
use crate::patients::{patient_body, team};

const MISSING: &str = "01900000-0000-7000-8000-000000000000";
const REASON: &str = "2026年12月末で退職（秘密の事情あり）";

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn offboard(app: &TestApp, by: &Person, user_id: &str, reason: &str) -> TestResponse {
    app.post(&format!("/api/v1/users/{user_id}/offboard"), &by.token, json!({ "reason": reason })).await
}

/// How many audit events an actor has of one resource type and detail.
async fn audit_count(app: &TestApp, actor_id: &str, resource_type: &str, detail: &str) -> i64 {
    use diesel::prelude::*;
    use renkei::db::schema::audit_events::dsl as a;
    let (actor_id, resource_type, detail) = (actor_id.to_string(), resource_type.to_string(), detail.to_string());
    app.db
        .run(move |conn| {
            Ok(a::audit_events
                .filter(a::actor_id.eq(actor_id))
                .filter(a::resource_type.eq(resource_type))
                .filter(a::detail.eq(detail))
                .count()
                .get_result::<i64>(conn)?)
        })
        .await
        .unwrap()
}

/// Every outbox row of the e-mail channel, for counting that nothing more was queued.
async fn outbox_size(app: &TestApp) -> i64 {
    use diesel::prelude::*;
    use renkei::db::schema::email_outbox::dsl as o;
    app.db
        .run(|conn| Ok(o::email_outbox.filter(o::channel.eq("email")).count().get_result::<i64>(conn)?))
        .await
        .unwrap()
}

fn member_of<'a>(team: &'a TestResponse, user_id: &str) -> &'a Value {
    team.body["items"].as_array().unwrap().iter().find(|m| m["user_id"] == json!(user_id)).unwrap()
}

async fn leaving_ends_everything_at_once(app: TestApp) {
    let t = team(&app, "14131").await;
    let cm = &t.care_manager;
    let station_admin = app.person(&t.admin, &t.nurse_station, "nurse", "org_admin").await;
    // A second patient whose team the nurse leads.
    let second = app.post("/api/v1/patients", &cm.token, patient_body("幸", "サイワイ", "14131")).await.expect(201);
    let second_id = id_of(&second.body);
    app.post(
        &format!("/api/v1/patients/{second_id}/care-team"),
        &cm.token,
        json!({"user_id": t.nurse.id, "role": "visiting_nurse", "is_lead": true}),
    )
    .await
    .expect(201);
    // A discharge case for the first patient, with a task given to the nurse.
    let hospital = app.organization(&t.admin, "hospital", "川崎中央病院", Some("14131")).await;
    let msw = app.person(&t.admin, &hospital, "social_worker", "member").await;
    let case = app
        .post(
            "/api/v1/discharge-cases",
            &msw.token,
            json!({
                "patient_id": t.patient_id,
                "birth_date": "1938-04-01",
                "family_name_kana": "カワサキ",
                "department": "呼吸器内科",
                "hospital_ward": "5階東病棟",
                "reason": "誤嚥性肺炎",
                "contact": {"name": "幸 一郎", "phone": "044-000-1111"},
                "admitted_at": "2026-11-30T10:00:00+09:00",
            }),
        )
        .await
        .expect(201);
    let task = app
        .post(
            &format!("/api/v1/discharge-cases/{}/tasks", id_of(&case.body)),
            &cm.token,
            json!({"title": "退院前訪問の日程調整", "assignee_id": t.nurse.id}),
        )
        .await
        .expect(201);
    let task_id = id_of(&task.body);
    assert_eq!(task.body["unassigned"], json!(false));
    let lead_mails_before = emails_to(&app, &cm.id, "member_offboarded").await.len();
    assert_eq!(lead_mails_before, 0);

    let done = offboard(&app, &station_admin, &t.nurse.id, REASON).await.expect(200);
    assert_eq!(done.body["user_id"], json!(t.nurse.id));
    assert_eq!(done.body["organization_id"], json!(t.nurse_station));
    assert_eq!(done.body["offboarded_by"], json!(station_admin.id));
    assert_eq!(done.body["reason"], json!(REASON));
    assert_eq!(done.body["memberships_ended"], json!(2));
    assert_eq!(done.body["tasks_unassigned"], json!(1));
    assert_eq!(done.body["sessions_ended"], json!(1));
    assert_eq!(done.body["leads_told"], json!(2));

    // Sessions ended; sign-in refused like a wrong password.
    app.get("/api/v1/me", &t.nurse.token).await.expect(401);
    app.call("POST", "/api/v1/auth/refresh", None, Some(&json!({"refresh_token": t.nurse.refresh_token})), &[])
        .await
        .expect(401);
    let refused = app.login(&t.nurse.email, PASSWORD, None).await.expect(401);
    let wrong = app.login(&t.nurse.email, "a-wrong-password-entirely", None).await.expect(401);
    assert_eq!(refused.text, wrong.text);

    // The account stays, deactivated, for its administrators.
    let account = app.get(&format!("/api/v1/users/{}", t.nurse.id), &station_admin.token).await.expect(200);
    assert_eq!(account.body["active"], json!(false));

    // The memberships ended on record; the history stays.
    for patient in [&t.patient_id, &second_id] {
        let now_team = app.get(&format!("/api/v1/patients/{patient}/care-team"), &cm.token).await.expect(200);
        assert!(now_team.body["items"].as_array().unwrap().iter().all(|m| m["user_id"] != json!(t.nurse.id)));
        let past =
            app.get(&format!("/api/v1/patients/{patient}/care-team?include_past=true"), &cm.token).await.expect(200);
        let ended = member_of(&past, &t.nurse.id);
        assert_eq!(ended["active"], json!(false));
        assert!(ended["ended_on"].is_string());
        assert_eq!(ended["is_lead"], json!(false));
    }

    // The task lost its assignee: nobody on the team can do it, so the opener and the lead see it.
    let task = app.get(&format!("/api/v1/tasks/{task_id}"), &cm.token).await.expect(200);
    assert_eq!(task.body["assignee_id"], Value::Null);
    assert_eq!(task.body["unassigned"], json!(true));
    assert_eq!(task.body["version"], json!(2));
    for watcher in [cm, &msw] {
        let mine = app.get("/api/v1/me/tasks?limit=200", &watcher.token).await.expect(200);
        assert!(mine.body["items"].as_array().unwrap().iter().any(|x| x["id"] == json!(task_id)), "{}", mine.text);
    }

    // The lead of the first team is told; of the second, which the nurse led, its care manager.
    let mails = emails_to(&app, &cm.id, "member_offboarded").await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    let (subject, body) = mails.iter().find(|(_, b)| b.contains("未完了の退院調整タスク: 1 件")).unwrap();
    assert_eq!(subject, "ケアチームのメンバーが所属組織を離れました（在宅療養連携ノート）");
    assert!(body.starts_with("ご担当者様"), "{body}");
    assert!(body.contains("訪問看護ステーションの看護師"), "{body}");
    assert!(body.contains("チームのリーダーは変わりません。"), "{body}");
    assert!(body.contains(&format!("/patients/{}/care-team", t.patient_id)), "{body}");
    let (_, led) = mails.iter().find(|(_, b)| b.contains("未完了の退院調整タスク: 0 件")).unwrap();
    assert!(led.contains("この方はチームのリーダーでした。新しいリーダーを決めてください。"), "{led}");
    for (subject, body) in &mails {
        for typed in [REASON, "秘密", "山田", "川崎訪問看護ステーション"] {
            assert!(!subject.contains(typed) && !body.contains(typed), "typed text {typed:?} in an e-mail: {body}");
        }
    }

    // Audited: the account, each membership, the task.
    assert_eq!(audit_count(&app, &station_admin.id, "user", "offboarded").await, 1);
    assert_eq!(audit_count(&app, &station_admin.id, "care_team_member", "offboarded").await, 2);
    assert_eq!(audit_count(&app, &station_admin.id, "discharge_task", "offboarded").await, 1);

    // Again: the same answer, nothing changed, nobody told twice.
    let outbox = outbox_size(&app).await;
    let again = offboard(&app, &station_admin, &t.nurse.id, "別の理由").await.expect(200);
    assert_eq!(again.text, done.text);
    assert_eq!(outbox_size(&app).await, outbox);
    assert_eq!(audit_count(&app, &station_admin.id, "user", "offboarded").await, 1);
    let task_again = app.get(&format!("/api/v1/tasks/{task_id}"), &cm.token).await.expect(200);
    assert_eq!(task_again.body["version"], json!(2));

    // Taken back into service later, the person reaches none of their former patients: every
    // answer is that of a patient that does not exist.
    app.patch(&format!("/api/v1/users/{}", t.nurse.id), &station_admin.token, json!({"active": true}), None)
        .await
        .expect(200);
    let back = app.login(&t.nurse.email, PASSWORD, None).await.expect(200);
    let token = back.body["access_token"].as_str().unwrap().to_string();
    for patient in [&t.patient_id, &second_id] {
        for path in ["", "/care-team", "/notes", "/flags", "/timeline", "/medications", "/emergency-card"] {
            let res = app.get(&format!("/api/v1/patients/{patient}{path}"), &token).await;
            let ghost = app.get(&format!("/api/v1/patients/{MISSING}{path}"), &token).await;
            assert_eq!(res.status, 404, "{path}: {}", res.text);
            assert_eq!(res.text, ghost.text, "{path}: differs from a missing patient");
        }
    }
    let res = app.get(&format!("/api/v1/tasks/{task_id}"), &token).await.expect(404);
    assert_eq!(res.text, app.get(&format!("/api/v1/tasks/{MISSING}"), &token).await.text);
    let listed = app.get("/api/v1/patients", &token).await.expect(200);
    assert_eq!(listed.body["items"], json!([]));
    assert!(app.get("/api/v1/me/tasks", &token).await.expect(200).body["items"].as_array().unwrap().is_empty());
}

/// Who may offboard whom: the person's own administrators and system administrators; a
/// colleague 403; anyone else the 404 of an account that does not exist, byte for byte.
async fn offboarding_authorisation_matrix(app: TestApp) {
    let t = team(&app, "14132").await;
    let station = &t.nurse_station;
    let station_admin = app.person(&t.admin, station, "nurse", "org_admin").await;
    let colleague = app.person(&t.admin, station, "nurse", "member").await;
    let office_admin = app.person(&t.admin, &t.care_office, "care_manager", "org_admin").await;
    let target = || app.person(&t.admin, station, "nurse", "member");

    // Validation first, naming the field, Japanese first.
    let someone = target().await;
    let res = offboard(&app, &station_admin, &someone.id, "  ").await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("reason"));
    assert_eq!(res.body["errors"][0]["code"], json!("required"));
    assert!(res.body["detail"].as_str().unwrap().chars().next().is_some_and(|c| !c.is_ascii()), "{}", res.text);
    let res = app
        .post(
            &format!("/api/v1/users/{}/offboard", someone.id),
            &station_admin.token,
            json!({"reason": "退職", "x": 1}),
        )
        .await
        .expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("x"));
    app.call("POST", &format!("/api/v1/users/{}/offboard", someone.id), None, Some(&json!({"reason": "退職"})), &[])
        .await
        .expect(401);

    #[rustfmt::skip]
    let rows: Vec<(&str, &Person, u16)> = vec![
        ("admin of the person's organisation", &station_admin, 200),
        ("system admin",                        &t.admin,       200),
        ("colleague in the organisation",       &colleague,     403),
        ("admin of another organisation",       &office_admin,  404),
        ("care manager of another organisation", &t.care_manager, 404),
    ];
    for (name, caller, want) in rows {
        let person = target().await;
        let res = offboard(&app, caller, &person.id, "退職").await;
        assert_eq!(res.status, want, "{name}: {}", res.text);
        if want == 404 {
            let ghost = offboard(&app, caller, MISSING, "退職").await;
            assert_eq!(res.text, ghost.text, "{name}: differs from an account that does not exist");
            for h in ["content-type", "content-length", "cache-control"] {
                assert_eq!(res.header(h), ghost.header(h), "{name}: header {h}");
            }
            let malformed = offboard(&app, caller, "not-an-id", "退職").await;
            assert_eq!(res.text, malformed.text, "{name}: differs from a malformed id");
        }
        // Only an offboarding ends the person's session.
        let me = app.get("/api/v1/me", &person.token).await;
        assert_eq!(me.status, if want == 200 { 401 } else { 200 }, "{name}");
    }
    // Nobody offboards themselves, administrators included; the attempt is audited.
    let res = offboard(&app, &station_admin, &station_admin.id, "退職").await.expect(403);
    assert_eq!(res.problem_type(), "/problems/forbidden");
    assert_eq!(crate::helpers::denied_events(&app, &station_admin.id, "user").await, 1);
    app.get("/api/v1/me", &station_admin.token).await.expect(200);
    // A colleague does not learn that an inactive account exists.
    let gone = target().await;
    offboard(&app, &station_admin, &gone.id, "退職").await.expect(200);
    let res = offboard(&app, &colleague, &gone.id, "退職").await.expect(404);
    assert_eq!(res.text, offboard(&app, &colleague, MISSING, "退職").await.text);
}

crate::both_backends!(leaving_ends_everything_at_once, offboarding_authorisation_matrix);
