//! Invitations into a care team: the lead invites by account or address, the invitee accepts or
//! declines with the e-mailed one-time token; pending, accepted, declined, expired and revoked.

use serde_json::{json, Value};

use crate::helpers::{denied_events, emails_to, Person, TestApp, TestResponse};
use crate::patients::team;

const MISSING: &str = "01900000-0000-7000-8000-000000000000";

fn base(pid: &str) -> String {
    format!("/api/v1/patients/{pid}/care-team/invitations")
}

async fn invite(app: &TestApp, by: &Person, pid: &str, body: Value) -> TestResponse {
    app.post(&base(pid), &by.token, body).await
}

async fn answer(app: &TestApp, who: &Person, what: &str, token: &str) -> TestResponse {
    app.post(&format!("/api/v1/care-team-invitations/{what}"), &who.token, json!({ "token": token })).await
}

/// The token of the link in an invitation e-mail.
fn token_in(body: &str) -> String {
    crate::helpers::link_token(body, "/care-team-invitations")
}

async fn last_token(app: &TestApp, user_id: &str) -> String {
    let mails = emails_to(app, user_id, "team_invitation").await;
    token_in(&mails.last().expect("an invitation e-mail").1)
}

fn state_of(list: &TestResponse, id: &str) -> String {
    let item = list.body["items"].as_array().unwrap().iter().find(|i| i["id"] == json!(id)).expect("listed");
    item["status"].as_str().unwrap().to_string()
}

async fn invited_by_email_accepts_and_sees_the_patient(app: TestApp) {
    let t = team(&app, "14135").await;
    let pid = t.patient_id.clone();
    let nurse = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    app.get(&format!("/api/v1/patients/{pid}"), &nurse.token).await.expect(404);

    // Exactly one of user_id and email; an explicit null names nobody. Nothing is invited.
    for (body, field, code) in [
        (json!({"role": "visiting_nurse"}), "user_id", "one_of"),
        (json!({"user_id": nurse.id, "email": nurse.email, "role": "visiting_nurse"}), "user_id", "one_of"),
        (json!({"user_id": null, "email": nurse.email, "role": "visiting_nurse"}), "user_id", "null"),
        (json!({"email": "not-an-address", "role": "visiting_nurse"}), "email", "invalid_email"),
    ] {
        let refused = invite(&app, &t.care_manager, &pid, body).await.expect(422);
        assert_eq!(refused.body["errors"][0]["field"], json!(field), "{}", refused.body);
        assert_eq!(refused.body["errors"][0]["code"], json!(code), "{}", refused.body);
    }
    assert!(emails_to(&app, &nurse.id, "team_invitation").await.is_empty());

    let res =
        invite(&app, &t.care_manager, &pid, json!({"email": nurse.email.to_uppercase(), "role": "visiting_nurse"}))
            .await
            .expect(201);
    let id = res.body["id"].as_str().unwrap().to_string();
    assert_eq!(res.body["status"], json!("pending"));
    assert!(res.body.get("token").is_none());

    // One e-mail, Japanese first, with the link, no patient name, no typed text.
    let mails = emails_to(&app, &nurse.id, "team_invitation").await;
    assert_eq!(mails.len(), 1);
    let (subject, body) = &mails[0];
    assert_eq!(subject, "ケアチームへの招待（在宅療養連携ノート）");
    assert!(body.contains("訪問看護師"), "{body}");
    assert!(!body.contains("川崎"), "{body}");
    let token = token_in(body);
    assert!(token.len() >= 43, "{token}");
    // Kept hashed.
    let stored: Vec<String> = app
        .db
        .run(|conn| {
            use diesel::prelude::*;
            use renkei::db::schema::care_team_invitations::dsl as i;
            Ok(i::care_team_invitations.select(i::token_hash).load(conn)?)
        })
        .await
        .unwrap();
    assert_eq!(stored, vec![renkei::auth::tokens::sha256_hex(&token)]);

    // A second invitation while this one is pending is a conflict.
    invite(&app, &t.care_manager, &pid, json!({"user_id": nurse.id, "role": "visiting_nurse"})).await.expect(409);

    let member = answer(&app, &nurse, "accept", &token).await.expect(201);
    assert_eq!(member.body["user_id"], json!(nurse.id));
    assert_eq!(member.body["role"], json!("visiting_nurse"));
    app.get(&format!("/api/v1/patients/{pid}"), &nurse.token).await.expect(200);
    let listed = app.get(&base(&pid), &t.care_manager.token).await.expect(200);
    assert_eq!(state_of(&listed, &id), "accepted");
    assert_eq!(listed.body["items"][0]["member_id"], member.body["id"]);

    // Twice: the second is a conflict, and nothing changes.
    let again = answer(&app, &nurse, "accept", &token).await.expect(409);
    assert!(again.text.contains("すでに承諾されています"), "{}", again.text);
    let declined_late = answer(&app, &nurse, "decline", &token).await.expect(409);
    assert_eq!(declined_late.text, again.text);
    let team_now = app.get(&format!("/api/v1/patients/{pid}/care-team"), &t.care_manager.token).await.expect(200);
    let mine = team_now.body["items"].as_array().unwrap().iter().filter(|m| m["user_id"] == json!(nurse.id)).count();
    assert_eq!(mine, 1);
    // Two accepts at once: one joins, the other is told it was accepted.
    let other = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    invite(&app, &t.care_manager, &pid, json!({"user_id": other.id, "role": "visiting_nurse"})).await.expect(201);
    let token2 = last_token(&app, &other.id).await;
    let (x, y) = tokio::join!(answer(&app, &other, "accept", &token2), answer(&app, &other, "accept", &token2));
    let mut statuses = [x.status, y.status];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{} / {}", x.text, y.text);
    let team_now = app.get(&format!("/api/v1/patients/{pid}/care-team"), &t.care_manager.token).await.expect(200);
    let theirs = team_now.body["items"].as_array().unwrap().iter().filter(|m| m["user_id"] == json!(other.id)).count();
    assert_eq!(theirs, 1);
    // A token that is not one names the field.
    let res = answer(&app, &nurse, "accept", "not-a-token").await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("token"));
}

async fn invitations_are_declined_expire_and_are_revoked(app: TestApp) {
    let t = team(&app, "14136").await;
    let pid = t.patient_id.clone();
    let by_id = |p: &Person| json!({"user_id": p.id, "role": "visiting_nurse"});

    // Declined: no membership.
    let a = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    let inv = invite(&app, &t.care_manager, &pid, by_id(&a)).await.expect(201);
    let token = last_token(&app, &a.id).await;
    let res = answer(&app, &a, "decline", &token).await.expect(200);
    assert_eq!(res.body["status"], json!("declined"));
    let res = answer(&app, &a, "accept", &token).await.expect(409);
    assert!(res.text.contains("すでに辞退されています"), "{}", res.text);
    app.get(&format!("/api/v1/patients/{pid}"), &a.token).await.expect(404);
    let listed = app.get(&base(&pid), &t.care_manager.token).await.expect(200);
    assert_eq!(state_of(&listed, inv.body["id"].as_str().unwrap()), "declined");

    // Expired.
    let b = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    let inv = invite(&app, &t.care_manager, &pid, by_id(&b)).await.expect(201);
    let inv_id = inv.body["id"].as_str().unwrap().to_string();
    let token = last_token(&app, &b.id).await;
    let expire = inv_id.clone();
    app.db
        .run(move |conn| {
            use diesel::prelude::*;
            use renkei::db::schema::care_team_invitations::dsl as i;
            diesel::update(i::care_team_invitations.filter(i::id.eq(expire)))
                .set(i::expires_at.eq(renkei::db::now() - chrono::Duration::minutes(1)))
                .execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
    let res = answer(&app, &b, "accept", &token).await.expect(409);
    assert!(res.text.contains("有効期限が切れています"), "{}", res.text);
    answer(&app, &b, "decline", &token).await.expect(409);
    app.get(&format!("/api/v1/patients/{pid}"), &b.token).await.expect(404);
    let listed = app.get(&base(&pid), &t.care_manager.token).await.expect(200);
    assert_eq!(state_of(&listed, &inv_id), "expired");
    app.post(&format!("{}/{inv_id}/revoke", base(&pid)), &t.care_manager.token, json!({})).await.expect(409);
    // An expired one does not stand in the way of a new invitation.
    invite(&app, &t.care_manager, &pid, by_id(&b)).await.expect(201);

    // Revoked: the link stops working.
    let c = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    let inv = invite(&app, &t.care_manager, &pid, by_id(&c)).await.expect(201);
    let inv_id = inv.body["id"].as_str().unwrap().to_string();
    let token = last_token(&app, &c.id).await;
    let res = app.post(&format!("{}/{inv_id}/revoke", base(&pid)), &t.care_manager.token, json!({})).await.expect(200);
    assert_eq!(res.body["status"], json!("revoked"));
    let res = answer(&app, &c, "accept", &token).await.expect(409);
    assert!(res.text.contains("取り消されました"), "{}", res.text);
    app.get(&format!("/api/v1/patients/{pid}"), &c.token).await.expect(404);
    app.post(&format!("{}/{inv_id}/revoke", base(&pid)), &t.care_manager.token, json!({})).await.expect(409);
    // An invitation of another patient's, or none, is the 404 of a missing patient.
    let ghost =
        app.post(&format!("{}/{MISSING}/revoke", base(&pid)), &t.care_manager.token, json!({})).await.expect(404);
    let missing_patient =
        app.post(&format!("{}/{inv_id}/revoke", base(MISSING)), &t.care_manager.token, json!({})).await.expect(404);
    assert_eq!(ghost.text, missing_patient.text);
}

async fn only_the_invited_account_answers(app: TestApp) {
    let t = team(&app, "14137").await;
    let pid = t.patient_id.clone();
    let invited = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    let other = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    invite(&app, &t.care_manager, &pid, json!({"user_id": invited.id, "role": "visiting_nurse"})).await.expect(201);
    let token = last_token(&app, &invited.id).await;
    // Another account (even on the team) cannot accept or decline it; the refusal is audited.
    for who in [&other, &t.nurse] {
        let res = answer(&app, who, "accept", &token).await.expect(403);
        assert_eq!(res.problem_type(), "/problems/forbidden");
        answer(&app, who, "decline", &token).await.expect(403);
    }
    assert_eq!(denied_events(&app, &other.id, "care_team_invitation").await, 2);
    app.get(&format!("/api/v1/patients/{pid}"), &other.token).await.expect(404);
    // Nor by e-mail: the address decides.
    let by_mail = format!("someone-{}@example.jp", crate::helpers::short_id());
    invite(&app, &t.care_manager, &pid, json!({"email": by_mail, "role": "visiting_nurse"})).await.expect(201);
    // The invited account still can.
    answer(&app, &invited, "accept", &token).await.expect(201);
    app.get(&format!("/api/v1/patients/{pid}"), &invited.token).await.expect(200);
    // A role that needs another profession is refused when invited.
    let res = invite(&app, &t.care_manager, &pid, json!({"user_id": other.id, "role": "primary_physician"})).await;
    res.expect(422);
    // Exactly one of user_id and email.
    let res = invite(&app, &t.care_manager, &pid, json!({"role": "visiting_nurse"})).await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("user_id"));
    let res = invite(&app, &t.care_manager, &pid, json!({"email": "not an address", "role": "visiting_nurse"}))
        .await
        .expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("email"));
}

/// Who may invite, list and revoke: the lead and the care manager; other readers 403, anyone
/// outside the patient's scope the byte-identical 404 of a missing patient.
async fn invitation_authorisation_matrix(app: TestApp) {
    let t = team(&app, "14133").await;
    let pid = t.patient_id.clone();
    let station_admin = app.person(&t.admin, &t.nurse_station, "nurse", "org_admin").await;
    let stranger = app.person(&t.admin, &t.care_office, "care_manager", "member").await;
    let newcomer = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    // A pending invitation to revoke, made fresh for each allowed call.
    let pending = || async {
        let n = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
        let r = invite(&app, &t.care_manager, &pid, json!({"user_id": n.id, "role": "visiting_nurse"})).await;
        r.expect(201).body["id"].as_str().unwrap().to_string()
    };
    #[rustfmt::skip]
    let rows: Vec<(&str, &Person, [u16; 3])> = vec![
        //                              invite list  revoke
        ("lead care manager", &t.care_manager, [201, 200, 200]),
        ("plain member",      &t.nurse,        [403, 403, 403]),
        ("org admin",         &station_admin,  [403, 403, 403]),
        ("outside the team",  &stranger,       [404, 404, 404]),
        ("system admin",      &t.admin,        [404, 404, 404]),
    ];
    for (name, person, expected) in rows {
        for (i, want) in expected.iter().enumerate() {
            let call = |p: String, inv: String| {
                let token = person.token.clone();
                let body = json!({"user_id": newcomer.id, "role": "visiting_nurse"});
                let app = &app;
                async move {
                    match i {
                        0 => app.post(&base(&p), &token, body).await,
                        1 => app.get(&base(&p), &token).await,
                        _ => app.post(&format!("{}/{inv}/revoke", base(&p)), &token, json!({})).await,
                    }
                }
            };
            let inv = pending().await;
            let res = call(pid.clone(), inv.clone()).await;
            assert_eq!(res.status, *want, "{name}: column {i}: {}", res.text);
            if *want == 404 {
                let ghost = call(MISSING.to_string(), MISSING.to_string()).await;
                assert_eq!(res.text, ghost.text, "{name}: column {i}");
                for h in ["content-type", "content-length", "cache-control"] {
                    assert_eq!(res.header(h), ghost.header(h), "{name}: column {i}: {h}");
                }
            }
            if i == 0 && *want == 201 {
                // Revoke it again, so the next row may invite the same newcomer.
                let id = res.body["id"].as_str().unwrap();
                app.post(&format!("{}/{id}/revoke", base(&pid)), &t.care_manager.token, json!({})).await.expect(200);
            }
        }
    }
    assert!(denied_events(&app, &station_admin.id, "care_team_invitation").await >= 3);
}

/// The e-mail's link opens the invitation in the console: signed out, through sign-in and back;
/// another account is refused (audited) and shown nothing; the invitee accepts and lands on the
/// patient's page, or declines; an answered invitation offers no answer again.
async fn the_emails_link_answers_in_the_console(app: TestApp) {
    let t = team(&app, "14132").await;
    let pid = t.patient_id.clone();
    let invited = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    let other = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    invite(&app, &t.care_manager, &pid, json!({"user_id": invited.id, "role": "visiting_nurse"})).await.expect(201);
    let token = last_token(&app, &invited.id).await;
    let page_path = format!("/console/care-team-invitations?token={token}");

    let mut b = crate::console::Browser::new(&app);
    let res = b.get(&format!("/care-team-invitations?token={token}")).await.expect(303);
    assert_eq!(res.header("location").as_deref(), Some(page_path.as_str()));
    let res = b.get(&page_path).await.expect(303);
    let back = res.header("location").unwrap();
    assert!(back.starts_with("/console/sign-in?next="), "{back}");

    // Another account sees a refusal and nothing of the invitation; it is audited.
    let mut someone = crate::console::signed_in(&app, &other).await;
    let refused = someone.get(&page_path).await.expect(403);
    assert!(
        !refused.text.contains("訪問看護師")
            && !refused.text.contains("action=\"/console/care-team-invitations/accept\"")
    );
    let csrf = crate::console::csrf_of(&someone.get("/console").await.expect(200).text);
    let form = [("csrf", csrf.as_str()), ("token", token.as_str())];
    someone.post("/console/care-team-invitations/accept", &form).await.expect(403);
    assert_eq!(denied_events(&app, &other.id, "care_team_invitation").await, 2);

    // The invitee: the role and the answers, nothing of the patient.
    let mut b = crate::console::signed_in(&app, &invited).await;
    let page = b.get(&page_path).await.expect(200);
    assert!(page.text.contains("ケアチームへの招待") && page.text.contains("訪問看護"), "{}", page.text);
    assert!(!page.text.contains("川崎"), "no patient data before joining: {}", page.text);
    let csrf = crate::console::csrf_of(&page.text);
    b.post("/console/care-team-invitations/accept", &[("token", token.as_str())]).await.expect(403);
    let answer = [("csrf", csrf.as_str()), ("token", token.as_str())];
    let joined = b.post("/console/care-team-invitations/accept", &answer).await.expect(303);
    assert_eq!(joined.header("location"), Some(format!("/console/patients/{pid}")));
    b.get(&format!("/console/patients/{pid}")).await.expect(200);
    app.get(&format!("/api/v1/patients/{pid}"), &invited.token).await.expect(200);
    // Answered: no answer is offered again, and a second accept changes nothing.
    let again = b.get(&page_path).await.expect(200);
    assert!(!again.text.contains("action=\"/console/care-team-invitations/accept\""), "{}", again.text);
    assert!(again.text.contains("承諾済"), "{}", again.text);
    b.post("/console/care-team-invitations/accept", &[("csrf", csrf.as_str()), ("token", token.as_str())])
        .await
        .expect(409);

    // Declining, from the console too.
    let second = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    invite(&app, &t.care_manager, &pid, json!({"user_id": second.id, "role": "visiting_nurse"})).await.expect(201);
    let token = last_token(&app, &second.id).await;
    let mut c = crate::console::signed_in(&app, &second).await;
    let page = c.get(&format!("/console/care-team-invitations?token={token}")).await.expect(200);
    let csrf = crate::console::csrf_of(&page.text);
    let answer = [("csrf", csrf.as_str()), ("token", token.as_str())];
    let res = c.post("/console/care-team-invitations/decline", &answer).await.expect(200);
    assert!(res.text.contains("辞退しました"));
    app.get(&format!("/api/v1/patients/{pid}"), &second.token).await.expect(404);
    // A token that is no invitation's: a page naming it, not a 500.
    c.get("/console/care-team-invitations?token=not-an-invitation").await.expect(422);
    c.get("/console/care-team-invitations").await.expect(422);
}

crate::both_backends!(
    the_emails_link_answers_in_the_console,
    invited_by_email_accepts_and_sees_the_patient,
    invitations_are_declined_expire_and_are_revoked,
    only_the_invited_account_answers,
    invitation_authorisation_matrix,
);
