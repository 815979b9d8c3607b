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
    // The password-reset routes are public: whoever calls, with or without a token, the same
    // answer for an address; nobody's token stands in for the e-mailed one.
    let asked: Vec<String> = {
        let mut out = Vec::new();
        for token in [None, Some(colleague.token.as_str()), Some(t.admin.token.as_str())] {
            let body = json!({"email": format!("someone-{}@example.jp", crate::helpers::short_id())});
            let res = app.call("POST", "/api/v1/password-reset", token, Some(&body), &[]).await.expect(202);
            out.push(res.text);
        }
        out
    };
    assert!(asked.iter().all(|a| *a == asked[0]), "{asked:?}");
    for token in [colleague.token.as_str(), t.admin.token.as_str()] {
        let body = json!({"token": token, "new_password": "quiet-harbour-lantern-41"});
        let res = app.call("POST", "/api/v1/password-reset/confirm", Some(token), Some(&body), &[]).await.expect(422);
        assert_eq!(res.body["errors"][0]["field"], json!("token"));
    }
    // The console's password pages likewise: signed in or not, nobody's session or token sets a
    // password; only the e-mailed link does.
    for person in [None, Some(&colleague), Some(&t.admin)] {
        let mut b = match person {
            Some(p) => crate::console::signed_in(&app, p).await,
            None => crate::console::Browser::new(&app),
        };
        let page = b.get("/console/password-reset").await.expect(200);
        assert!(page.text.contains("action=\"/console/password-reset\""));
        let presented = person.map(|p| p.token.clone()).unwrap_or_else(|| "no-such-link-token".into());
        let page = b.get(&format!("/console/password-reset?token={presented}")).await;
        let csrf = crate::console::csrf_of(&page.text);
        let form = [
            ("csrf", csrf.as_str()),
            ("token", presented.as_str()),
            ("new_password", "quiet-harbour-lantern-41"),
            ("new_password_again", "quiet-harbour-lantern-41"),
        ];
        let res = b.post("/console/password-reset/confirm", &form).await.expect(422);
        assert!(res.text.contains("無効か"), "{}", res.text);
    }
    app.login(&colleague.email, PASSWORD, None).await.expect(200);
    // Two requests at the same moment (a double click): one offboarding, the same answer twice.
    let twice = target().await;
    let (a, b) = tokio::join!(
        offboard(&app, &station_admin, &twice.id, "退職"),
        offboard(&app, &station_admin, &twice.id, "退職")
    );
    assert_eq!((a.status, b.status), (200, 200), "{} {}", a.text, b.text);
    assert_eq!(a.text, b.text);
    // A colleague does not learn that an inactive account exists.
    let gone = target().await;
    offboard(&app, &station_admin, &gone.id, "退職").await.expect(200);
    let res = offboard(&app, &colleague, &gone.id, "退職").await.expect(404);
    assert_eq!(res.text, offboard(&app, &colleague, MISSING, "退職").await.text);
}

// ---------------------------------------------------------------------------------------------
// A forgotten password, reset by e-mail.

async fn reset_from(app: &TestApp, ip: [u8; 4], email: &str) -> TestResponse {
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let res = client
        .post(app.url("/api/v1/password-reset"))
        .header("content-type", "application/json")
        .body(json!({ "email": email }).to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    let response = TestResponse { status, headers, text, body };
    crate::contract::check_response("POST", "/api/v1/password-reset", &response);
    response
}

async fn ask_reset(app: &TestApp, email: &str) -> TestResponse {
    app.call("POST", "/api/v1/password-reset", None, Some(&json!({ "email": email })), &[]).await
}

async fn confirm_reset(app: &TestApp, token: &str, new_password: &str) -> TestResponse {
    let body = json!({ "token": token, "new_password": new_password });
    app.call("POST", "/api/v1/password-reset/confirm", None, Some(&body), &[]).await
}

/// The token of the link in a reset or welcome e-mail.
fn token_in(body: &str) -> String {
    crate::helpers::link_token(body, "/password-reset")
}

async fn reset_rows(app: &TestApp) -> Vec<(String, String)> {
    use diesel::prelude::*;
    use renkei::db::schema::password_reset_tokens::dsl as r;
    app.db.run(|conn| Ok(r::password_reset_tokens.select((r::token_hash, r::user_id)).load(conn)?)).await.unwrap()
}

async fn forgotten_passwords_are_reset_by_email(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "visiting_nurse_station", "中原訪問看護ステーション", Some("14133")).await;
    let nurse = app.person(&admin, &org, "nurse", "member").await;

    // The same answer for an account's address and for an unknown one.
    let known = ask_reset(&app, &nurse.email.to_uppercase()).await.expect(202);
    let unknown = ask_reset(&app, "nobody-here@example.jp").await.expect(202);
    assert_eq!(known.text, unknown.text);
    assert_eq!(known.header("content-type"), unknown.header("content-type"));
    let res = ask_reset(&app, "not an address").await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("email"));

    // One e-mail, to the account, Japanese first, with a one-time link; the token is kept hashed.
    let mails = emails_to(&app, &nurse.id, "password_reset").await;
    assert_eq!(mails.len(), 1);
    let (subject, body) = &mails[0];
    assert_eq!(subject, "パスワードの再設定（在宅療養連携ノート）");
    assert!(body.contains("1回だけ使えます"), "{body}");
    let token = token_in(body);
    assert!(token.len() >= 43, "{token}");
    let rows = reset_rows(&app).await;
    assert_eq!(rows.len(), 1, "none for the unknown address");
    assert_eq!(rows[0].0, renkei::auth::tokens::sha256_hex(&token));
    assert_ne!(rows[0].0, token);

    // The new password follows the rules; a wrong token is named.
    let weak = confirm_reset(&app, &token, "password").await.expect(422);
    assert_eq!(weak.body["errors"][0]["field"], json!("new_password"));
    let wrong = confirm_reset(&app, "not-the-token", "quiet-harbour-lantern-41").await.expect(422);
    assert_eq!(wrong.body["errors"][0]["field"], json!("token"));
    assert_eq!(wrong.body["errors"][0]["code"], json!("invalid_or_expired"));

    confirm_reset(&app, &token, "quiet-harbour-lantern-41").await.expect(204);
    // Every session ended; the old password is gone, the new one signs in.
    app.get("/api/v1/me", &nurse.token).await.expect(401);
    app.login(&nurse.email, PASSWORD, None).await.expect(401);
    app.login(&nurse.email, "quiet-harbour-lantern-41", None).await.expect(200);
    // Once only.
    let again = confirm_reset(&app, &token, "another-harbour-lantern-42").await.expect(422);
    assert_eq!(again.text, wrong.text);

    // An expired link does not work.
    ask_reset(&app, &nurse.email).await.expect(202);
    let later = emails_to(&app, &nurse.id, "password_reset").await;
    let expired = token_in(&later.last().unwrap().1);
    let hash = renkei::auth::tokens::sha256_hex(&expired);
    app.db
        .run(move |conn| {
            use diesel::prelude::*;
            use renkei::db::schema::password_reset_tokens::dsl as r;
            let past = renkei::db::now() - chrono::Duration::minutes(31);
            diesel::update(r::password_reset_tokens.filter(r::token_hash.eq(hash)))
                .set(r::expires_at.eq(past))
                .execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
    let res = confirm_reset(&app, &expired, "yet-another-lantern-43").await.expect(422);
    assert_eq!(res.text, wrong.text);

    // An offboarded account gets no e-mail, and the same answer.
    let station_admin = app.person(&admin, &org, "nurse", "org_admin").await;
    let leaver = app.person(&admin, &org, "nurse", "member").await;
    offboard(&app, &station_admin, &leaver.id, "退職").await.expect(200);
    let res = ask_reset(&app, &leaver.email).await.expect(202);
    assert_eq!(res.text, unknown.text);
    assert!(emails_to(&app, &leaver.id, "password_reset").await.is_empty());
}

async fn password_reset_requests_are_throttled(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "pharmacy", "高津薬局", Some("14134")).await;
    let pharmacist = app.person(&admin, &org, "pharmacist", "member").await;
    // Per address, known or not, alike: three requests, then 429 with Retry-After.
    let stranger = format!("stranger-{}@example.jp", crate::helpers::short_id());
    let mut refusals = Vec::new();
    for address in [&pharmacist.email, &stranger] {
        for _ in 0..3 {
            ask_reset(&app, address).await.expect(202);
        }
        let refused = ask_reset(&app, address).await.expect(429);
        assert_eq!(refused.problem_type(), "/problems/too-many-requests");
        assert!(refused.header("retry-after").is_some());
        refusals.push(refused);
    }
    assert_eq!(refusals[0].text, refusals[1].text);
    assert_eq!(emails_to(&app, &pharmacist.id, "password_reset").await.len(), 3);
    // Asking for resets does not lock the sign-in.
    app.login(&pharmacist.email, PASSWORD, None).await.expect(200);
    // Per client, across addresses.
    let address = |i: usize| format!("spray-{i}-{}@example.jp", crate::helpers::short_id());
    for i in 0..30 {
        reset_from(&app, [127, 0, 0, 51], &address(i)).await.expect(202);
    }
    reset_from(&app, [127, 0, 0, 51], &address(30)).await.expect(429);
    reset_from(&app, [127, 0, 0, 52], &address(31)).await.expect(202);
}

// ---------------------------------------------------------------------------------------------
// Accounts that start from an e-mail, and addresses used again.

const NEW_PASSWORD: &str = "みどり訪問看護-2026-冬";

/// An administrator makes an account without typing its password: the person is e-mailed a link
/// (nothing the administrator typed in it), the link opens the console's page, and the
/// password they choose there signs them in; the link works once.
async fn an_account_made_without_a_password_starts_from_its_email(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "visiting_nurse_station", "幸訪問看護ステーション", Some("14132")).await;
    let email = format!("welcome-{}@example.jp", crate::helpers::short_id());
    let path = format!("/api/v1/organizations/{org}/users");
    let body = json!({"email": email, "name": "川崎 みどり", "name_kana": "カワサキ ミドリ", "profession": "nurse"});
    let made = app.post(&path, &admin.token, body).await.expect(201);
    let id = id_of(&made.body);
    // Until the person sets one, no password signs in.
    app.login(&email, PASSWORD, None).await.expect(401);
    app.login(&email, "", None).await.expect(401);
    let welcome = emails_to(&app, &id, "account_created").await;
    assert_eq!(welcome.len(), 1);
    let (subject, text) = &welcome[0];
    assert!(subject.contains("アカウント"), "{subject}");
    assert!(!text.contains("川崎") && !text.contains("幸訪問看護"), "nothing typed by a person: {text}");
    let token = token_in(text);

    // The e-mail's link leads to the console's page, which knows the link is good.
    let mut b = crate::console::Browser::new(&app);
    let res = b.get(&format!("/password-reset?token={token}")).await.expect(303);
    let page_path = format!("/console/password-reset?token={token}");
    assert_eq!(res.header("location").as_deref(), Some(page_path.as_str()));
    let page = b.get(&page_path).await.expect(200);
    assert!(page.text.contains("action=\"/console/password-reset/confirm\""), "{}", page.text);
    let csrf = crate::console::csrf_of(&page.text);
    fn set<'a>(csrf: &'a str, token: &'a str, again: &'a str) -> [(&'static str, &'a str); 4] {
        [("csrf", csrf), ("token", token), ("new_password", NEW_PASSWORD), ("new_password_again", again)]
    }
    // Without the form's token: refused. Two passwords that differ: the form again.
    b.post("/console/password-reset/confirm", &set("not-the-token", &token, NEW_PASSWORD)).await.expect(403);
    let again = b.post("/console/password-reset/confirm", &set(&csrf, &token, "something-else-2026")).await.expect(422);
    assert!(again.text.contains("一致しません"), "{}", again.text);
    let csrf = crate::console::csrf_of(&again.text);
    let done = b.post("/console/password-reset/confirm", &set(&csrf, &token, NEW_PASSWORD)).await.expect(200);
    assert!(done.text.contains("パスワードを設定しました"), "{}", done.text);
    assert!(done.text.contains("action=\"/console/sign-in\""));
    app.login(&email, NEW_PASSWORD, None).await.expect(200);
    assert_eq!(audit_count(&app, &id, "user", "password reset by e-mail").await, 1);

    // Used once: the page says so at once and offers to send a new link.
    let used = b.get(&page_path).await.expect(422);
    assert!(used.text.contains("action=\"/console/password-reset\""), "{}", used.text);
    assert!(used.text.contains("無効か"), "{}", used.text);
    confirm_reset(&app, &token, "another-harbour-lantern-7").await.expect(422);
    // A password given by the administrator is still the other way, and sends no link.
    let typed = app.person(&admin, &org, "nurse", "member").await;
    assert!(emails_to(&app, &typed.id, "account_created").await.is_empty());
    let null = json!({"email": format!("null-{}@example.jp", crate::helpers::short_id()), "name": "中原 一郎", "profession": "nurse", "password": null});
    let made = app.post(&path, &admin.token, null).await.expect(201);
    assert_eq!(emails_to(&app, &id_of(&made.body), "account_created").await.len(), 1);
}

/// A forgotten password asked for from the sign-in page: the same page whether an account has
/// the address or not, and the link in the e-mail.
async fn the_sign_in_page_asks_for_a_password_link(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "visiting_nurse_station", "多摩訪問看護", Some("14135")).await;
    let nurse = app.person(&admin, &org, "nurse", "member").await;
    let mut b = crate::console::Browser::new(&app);
    let sign_in = b.get("/console/sign-in").await.expect(200);
    assert!(sign_in.text.contains("href=\"/console/password-reset\""));
    let mut sent = Vec::new();
    for email in [nurse.email.clone(), "nobody-here@example.jp".to_string()] {
        let page = b.get("/console/password-reset").await.expect(200);
        let csrf = crate::console::csrf_of(&page.text);
        b.post("/console/password-reset", &[("email", email.as_str())]).await.expect(403);
        let res = b.post("/console/password-reset", &[("csrf", csrf.as_str()), ("email", email.as_str())]).await;
        sent.push(res.expect(200).text);
    }
    assert_eq!(sent[0], sent[1], "the same page for an unknown address");
    assert!(sent[0].contains("お送りしました"));
    let mails = emails_to(&app, &nurse.id, "password_reset").await;
    assert_eq!(mails.len(), 1);
    let page = b.get("/console/password-reset").await.expect(200);
    let csrf = crate::console::csrf_of(&page.text);
    let bad = b.post("/console/password-reset", &[("csrf", csrf.as_str()), ("email", "not an address")]).await;
    assert!(bad.expect(422).text.contains("action=\"/console/password-reset\""));
    // The link sets the password as the welcome link does.
    let token = token_in(&mails[0].1);
    let page = b.get(&format!("/console/password-reset?token={token}")).await.expect(200);
    let csrf = crate::console::csrf_of(&page.text);
    let form = [
        ("csrf", csrf.as_str()),
        ("token", token.as_str()),
        ("new_password", NEW_PASSWORD),
        ("new_password_again", NEW_PASSWORD),
    ];
    b.post("/console/password-reset/confirm", &form).await.expect(200);
    app.login(&nurse.email, NEW_PASSWORD, None).await.expect(200);
    app.get("/api/v1/me", &nurse.token).await.expect(401);
}

/// A person leaves one office and joins another: the address of the deactivated account is used
/// for the new one. Sign-in and resets reach the account in use; the old one and its history stay
/// apart, and cannot come back while the address is taken.
async fn a_deactivated_accounts_address_is_used_again(app: TestApp) {
    let admin = app.system_admin().await;
    let first = app.organization(&admin, "visiting_nurse_station", "中原訪問看護", Some("14133")).await;
    let second = app.organization(&admin, "visiting_nurse_station", "高津訪問看護", Some("14134")).await;
    let nurse = app.person(&admin, &first, "nurse", "member").await;
    let body = json!({"email": nurse.email, "name": "山田 花子", "profession": "nurse", "password": NEW_PASSWORD});
    let path = format!("/api/v1/organizations/{second}/users");
    let taken = app.post(&path, &admin.token, body.clone()).await.expect(422);
    assert_eq!(
        (&taken.body["errors"][0]["field"], &taken.body["errors"][0]["code"]),
        (&json!("email"), &json!("taken"))
    );

    let old = format!("/api/v1/users/{}", nurse.id);
    app.patch(&old, &admin.token, json!({"active": false}), None).await.expect(200);
    let made = app.post(&path, &admin.token, body.clone()).await.expect(201);
    let new_id = id_of(&made.body);
    assert_ne!(new_id, nurse.id);
    // Not twice while the new one is in use.
    app.post(&path, &admin.token, body).await.expect(422);

    let signed_in = app.login(&nurse.email, NEW_PASSWORD, None).await.expect(200);
    let me = app.get("/api/v1/me", signed_in.body["access_token"].as_str().unwrap()).await.expect(200);
    assert_eq!(
        (me.body["id"].as_str(), me.body["organization_id"].as_str()),
        (Some(new_id.as_str()), Some(second.as_str()))
    );
    app.login(&nurse.email, PASSWORD, None).await.expect(401);
    ask_reset(&app, &nurse.email).await.expect(202);
    assert_eq!(emails_to(&app, &new_id, "password_reset").await.len(), 1);
    assert!(emails_to(&app, &nurse.id, "password_reset").await.is_empty());

    // The old account stays, with its address and organisation, and stays deactivated.
    let kept = app.get(&old, &admin.token).await.expect(200);
    assert_eq!(kept.body["active"], json!(false));
    assert_eq!(kept.body["organization_id"].as_str(), Some(first.as_str()));
    let back = app.patch(&old, &admin.token, json!({"active": true}), None).await.expect(409);
    assert!(back.body["detail"].as_str().unwrap().contains("メールアドレス"), "{}", back.text);
    // Once the new one is deactivated in turn, the old one may come back.
    app.patch(&format!("/api/v1/users/{new_id}"), &admin.token, json!({"active": false}), None).await.expect(200);
    app.patch(&old, &admin.token, json!({"active": true}), None).await.expect(200);
    app.login(&nurse.email, PASSWORD, None).await.expect(200);
}

crate::both_backends!(
    leaving_ends_everything_at_once,
    offboarding_authorisation_matrix,
    forgotten_passwords_are_reset_by_email,
    password_reset_requests_are_throttled,
    an_account_made_without_a_password_starts_from_its_email,
    the_sign_in_page_asks_for_a_password_link,
    a_deactivated_accounts_address_is_used_again,
);
