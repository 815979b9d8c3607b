//! The patient, the family and the key person in the circle: the care manager invites them by
//! e-mail, they make an account of no organisation, the key person approves who joins the team,
//! the family channel (a message that raises a flag), and everything else of the record answers
//! them the 404 of a missing patient, byte for byte.

use serde_json::{json, Value};

use crate::attachments::visit_note;
use crate::helpers::{emails_to, emails_to_address, Person, TestApp, TestResponse, PASSWORD};
use crate::patients::{team, Team};

const MISSING: &str = "01900000-0000-7000-8000-000000000000";

/// Invites `role` by a fresh address, takes the e-mailed invitation up with a new account and
/// signs in: the person, and their participant id.
async fn participant(app: &TestApp, t: &Team, role: &str, name: &str) -> (Person, String) {
    let email = format!("{role}-{}@example.jp", crate::helpers::short_id());
    let pid = &t.patient_id;
    let invited = app
        .post(
            &format!("/api/v1/patients/{pid}/participants"),
            &t.care_manager.token,
            json!({"email": email, "role": role, "relationship": "長女"}),
        )
        .await
        .expect(201);
    assert_eq!(invited.body["status"], json!("invited"));
    let mails = emails_to_address(app, &email, "participant_invitation").await;
    assert_eq!(mails.len(), 1, "one invitation e-mail");
    let (subject, body) = &mails[0];
    assert_eq!(subject, "在宅療養連携ノートへのご招待");
    assert!(!body.contains("川崎") && !body.contains("長女"), "no patient name, nothing typed: {body}");
    let token = crate::helpers::link_token(body, "/participant-invitations");
    let registered = app
        .call(
            "POST",
            "/api/v1/participant-invitations/register",
            None,
            Some(&json!({"token": token, "name": name, "password": PASSWORD})),
            &[],
        )
        .await
        .expect(201);
    assert_eq!(registered.body["participant"]["status"], json!("active"));
    assert_eq!(registered.body["participant"]["name"], json!(name));
    // The link works once.
    let again = app
        .call(
            "POST",
            "/api/v1/participant-invitations/register",
            None,
            Some(&json!({"token": token, "name": name, "password": PASSWORD})),
            &[],
        )
        .await
        .expect(422);
    assert_eq!(again.body["errors"][0]["field"], json!("token"));
    let tokens = app.login(&email, PASSWORD, None).await.expect(200);
    let person = Person {
        id: registered.body["user_id"].as_str().unwrap().to_string(),
        email,
        organization_id: None,
        token: tokens.body["access_token"].as_str().unwrap().to_string(),
        refresh_token: tokens.body["refresh_token"].as_str().unwrap().to_string(),
        totp_secret: None,
    };
    (person, invited.body["id"].as_str().unwrap().to_string())
}

/// The details of the account's successful updates of one kind of record, oldest first.
async fn audit_details(app: &TestApp, actor_id: &str, resource_type: &str) -> Vec<String> {
    use diesel::prelude::*;
    use renkei::db::schema::audit_events::dsl as a;
    let (actor_id, resource_type) = (actor_id.to_string(), resource_type.to_string());
    app.db
        .run(move |conn| {
            let rows: Vec<Option<String>> = a::audit_events
                .filter(a::actor_id.eq(actor_id))
                .filter(a::resource_type.eq(resource_type))
                .filter(a::outcome.eq("success"))
                .filter(a::action.eq("U"))
                .order(a::occurred_at.asc())
                .select(a::detail)
                .load(conn)?;
            Ok(rows.into_iter().flatten().collect())
        })
        .await
        .expect("read the audit trail")
}

fn same_404(what: &str, got: &TestResponse, missing: &TestResponse) {
    assert_eq!(got.status, 404, "{what}: {}", got.text);
    assert_eq!(got.text, missing.text, "{what}: differs from a patient that does not exist");
    for h in ["content-type", "content-length"] {
        assert_eq!(got.header(h), missing.header(h), "{what}: header {h}");
    }
}

/// The walk-through of the issue, on each backend.
async fn a_daughter_approves_the_nurse_and_asks_the_team_to_look(app: TestApp) {
    let t = team(&app, "14136").await;
    let pid = t.patient_id.clone();

    // The care manager invites the daughter as key person; she makes her account.
    let (daughter, _) = participant(&app, &t, "key_person", "川崎 由美").await;
    let me = app.get("/api/v1/me", &daughter.token).await.expect(200);
    assert_eq!(me.body["organization_id"], json!(null));
    assert_eq!(me.body["profession"], json!("layperson"));
    assert_eq!(me.body["name"], json!("川崎 由美"));
    // Her sign-in is everyone's: she may turn two-factor sign-in on.
    let enrol = app.post("/api/v1/me/totp", &daughter.token, json!({"password": PASSWORD})).await.expect(200);
    assert!(enrol.body["otpauth_url"].as_str().unwrap().starts_with("otpauth://totp/"));

    // The care manager invites a visiting nurse of another station; she accepts and waits.
    let station = app.organization(&t.admin, "visiting_nurse_station", "宮前訪問看護ステーション", Some("14136")).await;
    let station_admin = app.person(&t.admin, &station, "nurse", "org_admin").await;
    let nurse = app.person(&t.admin, &station, "nurse", "member").await;
    app.post(
        &format!("/api/v1/patients/{pid}/care-team/invitations"),
        &t.care_manager.token,
        json!({"user_id": nurse.id, "role": "visiting_nurse"}),
    )
    .await
    .expect(201);
    let mail = emails_to(&app, &nurse.id, "team_invitation").await;
    let token = crate::helpers::link_token(&mail[0].1, "/care-team-invitations");
    let waiting =
        app.post("/api/v1/care-team-invitations/accept", &nurse.token, json!({"token": token})).await.expect(202);
    assert_eq!(waiting.body["status"], json!("awaiting_approval"));
    let invitation_id = waiting.body["id"].as_str().unwrap().to_string();
    app.get(&format!("/api/v1/patients/{pid}"), &nurse.token).await.expect(404);
    let asked = emails_to(&app, &daughter.id, "joining_awaits_approval").await;
    assert_eq!(asked.len(), 1);
    assert!(asked[0].1.contains("訪問看護ステーションの看護師"), "{}", asked[0].1);
    // Nobody joins around the approval: a direct addition must be an invitation now.
    let other = app.person(&t.admin, &station, "nurse", "member").await;
    let direct = app
        .post(
            &format!("/api/v1/patients/{pid}/care-team"),
            &t.care_manager.token,
            json!({"user_id": other.id, "role": "visiting_nurse"}),
        )
        .await
        .expect(409);
    assert!(direct.body["detail"].as_str().unwrap().contains("承認"), "{}", direct.text);
    // Nor does the family: their accounts are not professionals.
    let family = app
        .post(
            &format!("/api/v1/patients/{pid}/care-team"),
            &t.care_manager.token,
            json!({"user_id": daughter.id, "role": "other"}),
        )
        .await
        .expect(422);
    assert_eq!(family.body["errors"][0]["code"], json!("not_a_professional"));

    // The daughter sees who waits, and approves; the nurse is on the team, the lead told.
    let requests = app.get(&format!("/api/v1/patients/{pid}/joining-requests"), &daughter.token).await.expect(200);
    let request = &requests.body["items"][0];
    assert_eq!(request["invitation_id"], json!(invitation_id));
    assert_eq!(request["status"], json!("awaiting_approval"));
    assert_eq!(request["organization_name"], json!("宮前訪問看護ステーション"));
    assert_eq!(request["profession"], json!("nurse"));
    let joined = app
        .post(&format!("/api/v1/patients/{pid}/joining-requests/{invitation_id}/approve"), &daughter.token, json!({}))
        .await
        .expect(201);
    assert_eq!(joined.body["user_id"], json!(nurse.id));
    app.get(&format!("/api/v1/patients/{pid}"), &nurse.token).await.expect(200);
    app.post(&format!("/api/v1/patients/{pid}/joining-requests/{invitation_id}/approve"), &daughter.token, json!({}))
        .await
        .expect(404);
    let timeline = app.get(&format!("/api/v1/patients/{pid}/timeline"), &t.care_manager.token).await.expect(200);
    let decided: Vec<&Value> =
        timeline.body["items"].as_array().unwrap().iter().filter(|i| i["type"] == json!("joining_decided")).collect();
    assert_eq!(decided.len(), 1, "{}", timeline.text);
    assert_eq!(decided[0]["actor_id"], json!(daughter.id));
    assert!(decided[0]["summary"].as_str().unwrap().contains("承認しました"));
    assert_eq!(audit_details(&app, &daughter.id, "joining_approval").await, ["approved"]);

    // The daughter writes in the family channel and asks the team to look: a flag the nurse sees.
    let text = "昨夜から熱が３８度あります。ｾｷも出ています。";
    let posted = app
        .call(
            "POST",
            &format!("/api/v1/patients/{pid}/family-messages"),
            Some(&daughter.token),
            Some(&json!({"text": text, "raise_flag": true})),
            &[("idempotency-key", "family-fever-1")],
        )
        .await
        .expect(201);
    assert_eq!(posted.body["text"], json!(text), "Japanese round-trips exactly");
    assert_eq!(posted.body["author_profession"], json!("layperson"));
    let flag_id = posted.body["flag_id"].as_str().expect("a flag").to_string();
    // A retry with the same key posts nothing more.
    let retried = app
        .call(
            "POST",
            &format!("/api/v1/patients/{pid}/family-messages"),
            Some(&daughter.token),
            Some(&json!({"text": text, "raise_flag": true})),
            &[("idempotency-key", "family-fever-1")],
        )
        .await
        .expect(201);
    assert_eq!(retried.body["id"], posted.body["id"]);
    let flags = app.get(&format!("/api/v1/patients/{pid}/flags"), &nurse.token).await.expect(200);
    let flag = flags.body["items"].as_array().unwrap().iter().find(|f| f["id"] == json!(flag_id)).expect("the flag");
    assert_eq!(flag["source"], json!("family_message"));
    assert_eq!(flag["status"], json!("active"));
    assert_eq!(flag["raised_by"], json!(daughter.id));
    let alert = emails_to(&app, &nurse.id, "flag_raised").await;
    assert_eq!(alert.len(), 1, "the nurse is alerted once");
    assert!(!alert[0].1.contains("３８度"), "no clinical text in the e-mail: {}", alert[0].1);
    // The nurse reads the channel and answers there: what she shares with the family.
    let channel = app.get(&format!("/api/v1/patients/{pid}/family-messages"), &nurse.token).await.expect(200);
    assert_eq!(channel.body["items"].as_array().unwrap().len(), 1);
    app.post(
        &format!("/api/v1/patients/{pid}/family-messages"),
        &nurse.token,
        json!({"text": "本日午後に臨時で訪問します。"}),
    )
    .await
    .expect(201);
    let channel = app.get(&format!("/api/v1/patients/{pid}/family-messages"), &daughter.token).await.expect(200);
    let texts: Vec<&str> =
        channel.body["items"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["本日午後に臨時で訪問します。", text]);
    // Each side hears of the other's message by e-mail, without its text: the daughter of the
    // nurse's answer, the lead of the daughter's message (once, although it was sent twice).
    let to_daughter = emails_to(&app, &daughter.id, "family_message").await;
    assert_eq!(to_daughter.len(), 1);
    assert!(to_daughter[0].1.contains("訪問看護ステーションの看護師"), "{}", to_daughter[0].1);
    assert!(!to_daughter[0].1.contains("臨時で訪問"), "no text in the e-mail: {}", to_daughter[0].1);
    assert!(to_daughter[0].1.contains(&format!("/patients/{pid}/family")), "{}", to_daughter[0].1);
    let to_lead = emails_to(&app, &t.care_manager.id, "family_message").await;
    assert_eq!(to_lead.len(), 1);
    assert!(to_lead[0].1.contains("ご本人・ご家族") && !to_lead[0].1.contains("３８度"), "{}", to_lead[0].1);
    assert!(emails_to(&app, &nurse.id, "family_message").await.is_empty(), "not the writer, not every member");
    // A message sent by mistake is withdrawn by its writer only, and stays readable, marked.
    let message_id = posted.body["id"].as_str().unwrap().to_string();
    let withdraw = format!("/api/v1/patients/{pid}/family-messages/{message_id}/entered-in-error");
    app.post(&withdraw, &nurse.token, json!({"reason": "間違い"})).await.expect(403);
    let marked = app.post(&withdraw, &daughter.token, json!({"reason": "熱は測り間違いでした"})).await.expect(200);
    assert_eq!(marked.body["entered_in_error"], json!(true));
    assert_eq!(marked.body["text"], json!(text));
    app.post(&withdraw, &daughter.token, json!({"reason": "二度目"})).await.expect(409);
    app.post(
        &format!("/api/v1/patients/{pid}/family-messages/{MISSING}/entered-in-error"),
        &daughter.token,
        json!({"reason": "x"}),
    )
    .await
    .expect(404);
    let outsider_try = app.post(&withdraw, &t.admin.token, json!({"reason": "x"})).await;
    let missing_patient = app
        .post(
            &format!("/api/v1/patients/{MISSING}/family-messages/{message_id}/entered-in-error"),
            &t.admin.token,
            json!({"reason": "x"}),
        )
        .await;
    same_404("withdrawing as an outsider", &outsider_try, &missing_patient);
    let channel = app.get(&format!("/api/v1/patients/{pid}/family-messages"), &nurse.token).await.expect(200);
    let listed =
        channel.body["items"].as_array().unwrap().iter().find(|m| m["id"] == json!(message_id)).unwrap().clone();
    assert_eq!(listed["entered_in_error"], json!(true));
    assert_eq!(listed["error_reason"], json!("熱は測り間違いでした"));
    // The team's apps hear of both messages and of the withdrawal through the change feed (one
    // change each; the retry recorded nothing).
    let feed_items = {
        use diesel::prelude::*;
        use renkei::db::schema::change_log::dsl as c;
        let pid = pid.clone();
        app.db
            .run(move |conn| {
                Ok(c::change_log
                    .filter(c::patient_id.eq(pid))
                    .filter(c::kind.eq("family_message"))
                    .count()
                    .get_result::<i64>(conn)?)
            })
            .await
            .unwrap()
    };
    assert_eq!(feed_items, 3);

    // The daughter cannot read the nurse's visit note: the 404 of a patient that does not exist.
    let note_id = visit_note(&app, &nurse, &pid, "発熱あり、解熱剤を使用").await;
    let missing_note = app.get(&format!("/api/v1/notes/{MISSING}"), &daughter.token).await;
    same_404("note", &app.get(&format!("/api/v1/notes/{note_id}"), &daughter.token).await, &missing_note);
    for route in ["", "/notes", "/timeline", "/vitals", "/flags", "/fhir"] {
        let got = app.get(&format!("/api/v1/patients/{pid}{route}"), &daughter.token).await;
        let missing = app.get(&format!("/api/v1/patients/{MISSING}{route}"), &daughter.token).await;
        same_404(route, &got, &missing);
    }

    // She reads who opened the record, in plain words.
    let log = app.get(&format!("/api/v1/patients/{pid}/access-log"), &daughter.token).await.expect(200);
    let summaries: Vec<&str> =
        log.body["items"].as_array().unwrap().iter().map(|e| e["summary"].as_str().unwrap()).collect();
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("山田 花子さん（看護師、宮前訪問看護ステーション）が記録（連絡ノート）を登録しました")),
        "{summaries:?}"
    );
    assert!(
        summaries.iter().any(|s| s
            .contains("川崎 由美さん（ご本人・ご家族）が記録（連絡ノート）を見ようとしましたが、許可されませんでした")),
        "{summaries:?}"
    );

    // The nurse leaves her station: access ends everywhere at once, and the lead is told.
    app.post(&format!("/api/v1/users/{}/offboard", nurse.id), &station_admin.token, json!({"reason": "退職"}))
        .await
        .expect(200);
    app.get(&format!("/api/v1/patients/{pid}"), &nurse.token).await.expect(401);
    assert_eq!(emails_to(&app, &t.care_manager.id, "member_offboarded").await.len(), 1);
    let team_now = app.get(&format!("/api/v1/patients/{pid}/care-team"), &daughter.token).await.expect(200);
    let active: Vec<&Value> = team_now.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["user_id"] == json!(nurse.id) && m["active"] == json!(true))
        .collect();
    assert!(active.is_empty(), "{}", team_now.text);
}

/// The key person refuses; a patient who cannot approve has the care manager decide.
async fn a_refusal_and_a_care_manager_who_decides(app: TestApp) {
    let t = team(&app, "14137").await;
    let pid = t.patient_id.clone();
    let (daughter, _) = participant(&app, &t, "key_person", "麻生 由美").await;
    let station = app.organization(&t.admin, "visiting_nurse_station", "麻生訪問看護", Some("14137")).await;
    let nurse = app.person(&t.admin, &station, "nurse", "member").await;
    let invitations = format!("/api/v1/patients/{pid}/care-team/invitations");
    let invite = |who: &Person| {
        app.post(&invitations, &t.care_manager.token, json!({"user_id": who.id, "role": "visiting_nurse"}))
    };
    invite(&nurse).await.expect(201);
    let token =
        crate::helpers::link_token(&emails_to(&app, &nurse.id, "team_invitation").await[0].1, "/care-team-invitations");
    let waiting =
        app.post("/api/v1/care-team-invitations/accept", &nurse.token, json!({"token": token})).await.expect(202);
    let id = waiting.body["id"].as_str().unwrap();
    // While she waits, she is not invited twice.
    invite(&nurse).await.expect(409);
    // Only the patient and the key person decide: the lead is refused, audited.
    app.post(&format!("/api/v1/patients/{pid}/joining-requests/{id}/approve"), &t.care_manager.token, json!({}))
        .await
        .expect(403);
    let refused = app
        .post(&format!("/api/v1/patients/{pid}/joining-requests/{id}/refuse"), &daughter.token, json!({}))
        .await
        .expect(200);
    assert_eq!(refused.body["status"], json!("refused"));
    app.get(&format!("/api/v1/patients/{pid}"), &nurse.token).await.expect(404);
    let told = emails_to(&app, &t.care_manager.id, "joining_refused").await;
    assert_eq!(told.len(), 1);
    assert!(told[0].0.contains("承認されませんでした"), "{}", told[0].0);
    // The refusal is audited and on the timeline.
    assert_eq!(audit_details(&app, &daughter.id, "joining_approval").await, ["refused"]);
    let timeline = app.get(&format!("/api/v1/patients/{pid}/timeline"), &t.care_manager.token).await.expect(200);
    let refusal = timeline.body["items"].as_array().unwrap().iter().find(|i| i["type"] == json!("joining_decided"));
    assert!(refusal.expect("on the timeline")["summary"].as_str().unwrap().contains("承認しませんでした"));

    // A body that forgets the reason changes nothing.
    let forgot = app
        .call(
            "PUT",
            &format!("/api/v1/patients/{pid}/joining-approval"),
            Some(&t.care_manager.token),
            Some(&json!({})),
            &[],
        )
        .await
        .expect(422);
    assert_eq!(forgot.body["errors"][0]["field"], json!("reason"), "{}", forgot.text);
    // The care manager records that the patient cannot approve: her invitation stands.
    let set = app
        .call(
            "PUT",
            &format!("/api/v1/patients/{pid}/joining-approval"),
            Some(&t.care_manager.token),
            Some(&json!({"reason": "認知症のため本人の判断が難しい"})),
            &[],
        )
        .await
        .expect(200);
    assert_eq!(set.body["decided_by"], json!("care_manager"));
    assert_eq!(set.body["approvers"], json!([]));
    // The key person may read the setting but not change it.
    let read = app.get(&format!("/api/v1/patients/{pid}/joining-approval"), &daughter.token).await.expect(200);
    assert_eq!(read.body["reason"], json!("認知症のため本人の判断が難しい"));
    app.call(
        "PUT",
        &format!("/api/v1/patients/{pid}/joining-approval"),
        Some(&daughter.token),
        Some(&json!({"reason": null})),
        &[],
    )
    .await
    .expect(403);
    let second = app.person(&t.admin, &station, "nurse", "member").await;
    invite(&second).await.expect(201);
    let token = crate::helpers::link_token(
        &emails_to(&app, &second.id, "team_invitation").await[0].1,
        "/care-team-invitations",
    );
    app.post("/api/v1/care-team-invitations/accept", &second.token, json!({"token": token})).await.expect(201);
    app.get(&format!("/api/v1/patients/{pid}"), &second.token).await.expect(200);
}

/// Who may do what, for the new relations: each row a caller, each column a route.
async fn family_authorisation_matrix(app: TestApp) {
    let t = team(&app, "14133").await;
    let pid = t.patient_id.clone();
    let (patient, _) = participant(&app, &t, "patient", "中原 一郎").await;
    let (family, _) = participant(&app, &t, "family", "中原 次郎").await;
    let (key_person, _) = participant(&app, &t, "key_person", "中原 花子").await;
    let (former, former_id) = participant(&app, &t, "family", "中原 三郎").await;
    app.post(&format!("/api/v1/patients/{pid}/participants/{former_id}/end"), &t.care_manager.token, json!({}))
        .await
        .expect(200);
    let outsider_office = app.organization(&t.admin, "care_management_office", "他の事業所", Some("14133")).await;
    let outsider = app.person(&t.admin, &outsider_office, "care_manager", "member").await;
    let note_id = visit_note(&app, &t.nurse, &pid, "訪問").await;

    // (caller, patient, family, key person, former family, nurse (member), lead, outsider)
    let callers: Vec<(&str, &Person)> = vec![
        ("patient", &patient),
        ("family", &family),
        ("key person", &key_person),
        ("former family", &former),
        ("member nurse", &t.nurse),
        ("lead", &t.care_manager),
        ("outsider", &outsider),
    ];
    #[rustfmt::skip]
    let routes: Vec<(&str, &str, Option<Value>, [u16; 7])> = vec![
        // route                                method body                       pat  fam  key  fmr  nurse lead out
        ("",                                    "GET",  None,                     [404, 404, 404, 404, 200, 200, 404]),
        ("/notes",                              "GET",  None,                     [404, 404, 404, 404, 200, 200, 404]),
        ("/timeline",                           "GET",  None,                     [404, 404, 404, 404, 200, 200, 404]),
        ("/family-messages",                    "GET",  None,                     [200, 200, 200, 404, 200, 200, 404]),
        ("/family-messages",                    "POST", Some(json!({"text": "こんにちは"})), [201, 201, 201, 404, 201, 201, 404]),
        ("/care-team",                          "GET",  None,                     [200, 404, 200, 404, 200, 200, 404]),
        ("/consents",                           "GET",  None,                     [200, 404, 200, 404, 200, 200, 404]),
        ("/access-log",                         "GET",  None,                     [200, 404, 200, 404, 403, 200, 404]),
        ("/joining-requests",                   "GET",  None,                     [200, 404, 200, 404, 403, 403, 404]),
        ("/joining-approval",                   "GET",  None,                     [200, 404, 200, 404, 200, 200, 404]),
        ("/participants",                       "GET",  None,                     [403, 404, 403, 404, 403, 200, 404]),
        ("/joining-approval",                   "PUT",  Some(json!({"reason": null})), [403, 404, 403, 404, 403, 200, 404]),
    ];
    for (route, method, body, want) in &routes {
        for ((name, caller), want) in callers.iter().zip(want) {
            let got = app
                .call(method, &format!("/api/v1/patients/{pid}{route}"), Some(&caller.token), body.as_ref(), &[])
                .await;
            assert_eq!(got.status, *want, "{method} {route} as {name}: {}", got.text);
            if *want == 404 {
                let missing = app
                    .call(
                        method,
                        &format!("/api/v1/patients/{MISSING}{route}"),
                        Some(&caller.token),
                        body.as_ref(),
                        &[],
                    )
                    .await;
                same_404(&format!("{method} {route} as {name}"), &got, &missing);
            }
        }
    }
    // A note by id, as the others: the 404 of one that does not exist.
    for (name, caller) in &callers[..4] {
        let got = app.get(&format!("/api/v1/notes/{note_id}"), &caller.token).await;
        let missing = app.get(&format!("/api/v1/notes/{MISSING}"), &caller.token).await;
        same_404(&format!("note as {name}"), &got, &missing);
    }
    // Inviting and ending participants: the lead or the care manager only.
    for (name, caller) in &callers {
        let res = app
            .post(
                &format!("/api/v1/patients/{pid}/participants"),
                &caller.token,
                json!({"email": format!("x-{}@example.jp", crate::helpers::short_id()), "role": "family"}),
            )
            .await;
        let want = match *name {
            "lead" => 201,
            "patient" | "key person" | "member nurse" => 403,
            _ => 404,
        };
        assert_eq!(res.status, want, "invite as {name}: {}", res.text);
    }
    // A professional's address is invited to the team, not as family.
    let res = app
        .post(
            &format!("/api/v1/patients/{pid}/participants"),
            &t.care_manager.token,
            json!({"email": t.nurse.email, "role": "family"}),
        )
        .await
        .expect(422);
    assert_eq!(res.body["errors"][0]["code"], json!("professional_account"));
    // The key person may revoke the consent; the family may not.
    let consent = app
        .post(
            &format!("/api/v1/patients/{pid}/consents"),
            &t.care_manager.token,
            json!({"obtained_on": "2026-12-01", "obtained_from": "patient", "scope": "care_team"}),
        )
        .await;
    let cid = consent.expect(201).body["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/patients/{pid}/consents/{cid}/revoke");
    app.post(&path, &family.token, json!({"reason": "家族の希望"})).await.expect(404);
    let revoked = app.post(&path, &key_person.token, json!({"reason": "本人の意思で撤回します"})).await.expect(200);
    assert_eq!(revoked.body["revoked_by"], json!(key_person.id), "{}", revoked.text);
    // Offboarding is for people of an organisation.
    app.post(&format!("/api/v1/users/{}/offboard", family.id), &t.admin.token, json!({"reason": "x"}))
        .await
        .expect(409);
}

/// The same, from the console: the e-mail's link, the account form, マイページ, the family page
/// with its approval and its message form.
async fn the_family_uses_the_console(app: TestApp) {
    let t = team(&app, "14134").await;
    let pid = t.patient_id.clone();
    let email = format!("daughter-{}@example.jp", crate::helpers::short_id());
    app.post(
        &format!("/api/v1/patients/{pid}/participants"),
        &t.care_manager.token,
        json!({"email": email, "role": "key_person"}),
    )
    .await
    .expect(201);
    let mail = emails_to_address(&app, &email, "participant_invitation").await;
    let token = crate::helpers::link_token(&mail[0].1, "/participant-invitations");
    let page_path = format!("/console/participant-invitations?token={token}");

    let mut b = crate::console::Browser::new(&app);
    let res = b.get(&format!("/participant-invitations?token={token}")).await.expect(303);
    assert_eq!(res.header("location").as_deref(), Some(page_path.as_str()));
    let page = b.get(&page_path).await.expect(200);
    assert!(page.text.contains("キーパーソン") && page.text.contains("name=\"password_again\""), "{}", page.text);
    assert!(!page.text.contains("川崎"), "nothing of the patient before taking part: {}", page.text);
    let csrf = crate::console::csrf_of(&page.text);
    // A form without its token changes nothing; two passwords that differ are said on the form.
    b.post("/console/participant-invitations", &[("token", token.as_str()), ("name", "高津 由美")]).await.expect(403);
    let form = |csrf: &str, again: &'static str| {
        vec![
            ("csrf", csrf.to_string()),
            ("token", token.clone()),
            ("name", "高津 由美".to_string()),
            ("password", PASSWORD.to_string()),
            ("password_again", again.to_string()),
        ]
    };
    let pairs = form(&csrf, "another-password-entirely");
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = b.post("/console/participant-invitations", &refs).await.expect(422);
    assert!(res.text.contains("高津 由美"), "the name is kept: {}", res.text);
    // The page answered carries a fresh form token.
    let pairs = form(&crate::console::csrf_of(&res.text), PASSWORD);
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = b.post("/console/participant-invitations", &refs).await.expect(200);
    assert!(done.text.contains("参加の登録ができました"), "{}", done.text);
    // The link is used.
    b.get(&page_path).await.expect(422);

    let daughter = Person {
        id: String::new(),
        email: email.clone(),
        organization_id: None,
        token: String::new(),
        refresh_token: String::new(),
        totp_secret: None,
    };
    let mut d = crate::console::signed_in(&app, &daughter).await;
    let my_page = d.get("/console").await.expect(200);
    let family_path = format!("/console/patients/{pid}/family");
    assert!(my_page.text.contains(&format!("href=\"{family_path}\"")), "{}", my_page.text);
    // The patient page is the professionals': the 404 page.
    d.get(&format!("/console/patients/{pid}")).await.expect(404);

    // A nurse waits for her approval; she approves on the family page.
    let nurse = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    app.post(
        &format!("/api/v1/patients/{pid}/care-team/invitations"),
        &t.care_manager.token,
        json!({"user_id": nurse.id, "role": "visiting_nurse"}),
    )
    .await
    .expect(201);
    let invited =
        crate::helpers::link_token(&emails_to(&app, &nurse.id, "team_invitation").await[0].1, "/care-team-invitations");
    let waiting =
        app.post("/api/v1/care-team-invitations/accept", &nurse.token, json!({"token": invited})).await.expect(202);
    let invitation_id = waiting.body["id"].as_str().unwrap().to_string();
    let page = d.get(&family_path).await.expect(200);
    let approve = format!("/console/patients/{pid}/joining-requests/{invitation_id}/approve");
    assert!(page.text.contains(&approve), "{}", page.text);
    let csrf = crate::console::csrf_of(&page.text);
    let res = d.post(&approve, &[("csrf", csrf.as_str())]).await.expect(303);
    assert_eq!(res.header("location"), Some(family_path.clone()));
    app.get(&format!("/api/v1/patients/{pid}"), &nurse.token).await.expect(200);

    // Her message asks the team to look; pressing twice posts once.
    let page = d.get(&family_path).await.expect(200);
    let csrf = crate::console::csrf_of(&page.text);
    let key_at = page.text.find("name=\"key\" value=\"").unwrap() + "name=\"key\" value=\"".len();
    let key = page.text[key_at..].split('"').next().unwrap().to_string();
    let message = [
        ("csrf", csrf.as_str()),
        ("key", key.as_str()),
        ("text", "母が朝から食事をとりません"),
        ("raise_flag", "true"),
    ];
    let path = format!("/console/patients/{pid}/family-messages");
    d.post(&path, &message).await.expect(303);
    d.post(&path, &message).await.expect(303);
    let channel = app.get(&format!("/api/v1/patients/{pid}/family-messages"), &nurse.token).await.expect(200);
    assert_eq!(channel.body["items"].as_array().unwrap().len(), 1, "{}", channel.text);
    assert!(channel.body["items"][0]["flag_id"].is_string());
    let page = d.get(&family_path).await.expect(200);
    assert!(
        page.text.contains("母が朝から食事をとりません") && page.text.contains("チームに知らせました"),
        "{}",
        page.text
    );
    // An empty message is refused with a page naming it, and posts nothing.
    let page = d.get(&family_path).await.expect(200);
    let csrf = crate::console::csrf_of(&page.text);
    d.post(&path, &[("csrf", csrf.as_str()), ("key", "another-key-1234"), ("text", " ")]).await.expect(422);
    // A member opens the family page from the patient's page.
    let mut n = crate::console::signed_in(&app, &t.nurse).await;
    let patient_page = n.get(&format!("/console/patients/{pid}")).await.expect(200);
    assert!(patient_page.text.contains(&format!("href=\"{family_path}\"")), "{}", patient_page.text);
    n.get(&family_path).await.expect(200);
    // She withdraws her message from the page: it stays, struck through, with the reason.
    let message_id = channel.body["items"][0]["id"].as_str().unwrap().to_string();
    let page = d.get(&family_path).await.expect(200);
    let csrf = crate::console::csrf_of(&page.text);
    let withdraw = format!("/console/patients/{pid}/family-messages/{message_id}/entered-in-error");
    assert!(page.text.contains(&withdraw), "{}", page.text);
    let res = d.post(&withdraw, &[("csrf", csrf.as_str()), ("reason", "書き間違えました")]).await.expect(303);
    assert_eq!(res.header("location"), Some(family_path.clone()));
    let page = d.get(&family_path).await.expect(200);
    assert!(page.text.contains("取り消し済み") && page.text.contains("書き間違えました"), "{}", page.text);
    assert!(page.text.contains("<del>母が朝から食事をとりません</del>"), "{}", page.text);
}

crate::both_backends!(
    a_daughter_approves_the_nurse_and_asks_the_team_to_look,
    a_refusal_and_a_care_manager_who_decides,
    family_authorisation_matrix,
    the_family_uses_the_console
);
