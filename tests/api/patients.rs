//! Patients, consent, care teams, ward coordinators, emergency access, the access policy and
//! the audit trail.

use serde_json::{json, Value};

use crate::helpers::{denied_events, emails_to, Person, TestApp, TestResponse};

pub fn patient_body(family: &str, kana: &str, ward: &str) -> Value {
    json!({
        "family_name": family,
        "given_name": "花子",
        "family_name_kana": kana,
        "given_name_kana": "ハナコ",
        "birth_date": "1938-04-01",
        "sex": "female",
        "ward_code": ward,
        "address": "川崎市川崎区宮本町１番地　ｶﾜｻｷﾊｲﾂ１０１",
        "phone": "044-200-0000",
        "care_level": "care_3",
        "emergency_contact": {"name": "川崎 一郎", "relationship": "長男", "phone": "090-0000-0000"}
    })
}

/// A care team around one patient: a care manager (lead) and a visiting nurse.
pub struct Team {
    pub admin: Person,
    pub care_manager: Person,
    pub nurse: Person,
    pub nurse_member_id: String,
    pub patient_id: String,
    pub care_office: String,
    pub nurse_station: String,
}

pub async fn team(app: &TestApp, ward: &str) -> Team {
    let admin = app.system_admin().await;
    let care_office = app.organization(&admin, "care_management_office", "川崎ケアプランセンター", Some(ward)).await;
    let nurse_station =
        app.organization(&admin, "visiting_nurse_station", "川崎訪問看護ステーション", Some(ward)).await;
    let care_manager = app.person(&admin, &care_office, "care_manager", "member").await;
    let nurse = app.person(&admin, &nurse_station, "nurse", "member").await;
    let p = app.post("/api/v1/patients", &care_manager.token, patient_body("川崎", "カワサキ", ward)).await.expect(201);
    let patient_id = p.body["id"].as_str().unwrap().to_string();
    let m = app
        .post(
            &format!("/api/v1/patients/{patient_id}/care-team"),
            &care_manager.token,
            json!({"user_id": nurse.id, "role": "visiting_nurse"}),
        )
        .await
        .expect(201);
    let nurse_member_id = m.body["id"].as_str().unwrap().to_string();
    Team { admin, care_manager, nurse, nurse_member_id, patient_id, care_office, nurse_station }
}

async fn register_read_update(app: TestApp) {
    let t = team(&app, "14131").await;
    let path = format!("/api/v1/patients/{}", t.patient_id);
    let read = app.get(&path, &t.nurse.token).await.expect(200);
    // Japanese text round-trips byte for byte, half-width and full-width forms included.
    assert_eq!(read.body["address"], json!("川崎市川崎区宮本町１番地　ｶﾜｻｷﾊｲﾂ１０１"));
    assert_eq!(read.body["family_name_kana"], json!("カワサキ"));
    assert_eq!(read.body["consent"]["state"], json!("none"));
    assert_eq!(read.body["consent"]["missing"], json!(true));
    assert_eq!(read.header("etag").as_deref(), Some("\"1\""));

    // Validation: kana must be kana (katakana, hiragana or half-width katakana), birth date plausible.
    let mut bad = patient_body("山田", "山田", "14131");
    bad["given_name_kana"] = json!("Hanako");
    bad["birth_date"] = json!("2999-01-01");
    let res = app.post("/api/v1/patients", &t.care_manager.token, bad).await.expect(422);
    let fields: Vec<&str> =
        res.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["family_name_kana", "given_name_kana", "birth_date"]);
    // Only care managers and hospital staff register patients.
    app.post("/api/v1/patients", &t.nurse.token, patient_body("山田", "ヤマダ", "14131")).await.expect(403);

    // Versions: 428 without If-Match, 412 when stale, 200 and a new ETag when current.
    app.patch(&path, &t.nurse.token, json!({"care_level": "care_4"}), None).await.expect(428);
    let ok = app.patch(&path, &t.nurse.token, json!({"care_level": "care_4"}), Some("\"1\"")).await.expect(200);
    assert_eq!(ok.header("etag").as_deref(), Some("\"2\""));
    app.patch(&path, &t.nurse.token, json!({"care_level": "care_5"}), Some("\"1\"")).await.expect(412);
    // Status moves are validated.
    app.patch(&path, &t.nurse.token, json!({"status": "closed"}), Some("\"2\"")).await.expect(200);
    let res = app.patch(&path, &t.nurse.token, json!({"status": "home"}), Some("\"3\"")).await.expect(409);
    assert_eq!(res.problem_type(), "/problems/conflict");
    let after = app.get(&path, &t.nurse.token).await.expect(200);
    assert_eq!(after.body["status"], json!("closed"));
    assert_eq!(after.body["care_level"], json!("care_4"));
}

async fn consent_is_recorded_and_revoked(app: TestApp) {
    let t = team(&app, "14132").await;
    let base = format!("/api/v1/patients/{}", t.patient_id);
    let c = app
        .post(&format!("{base}/consents"), &t.care_manager.token, json!({"scope": "care_team", "obtained_from": "patient", "obtained_on": "2026-11-01", "note": "自宅で本人より口頭と書面で同意"}))
        .await
        .expect(201);
    let consent_id = c.body["id"].as_str().unwrap();
    let p = app.get(&base, &t.nurse.token).await.expect(200);
    assert_eq!(p.body["consent"]["state"], json!("active"));
    assert_eq!(p.body["consent"]["missing"], json!(false));
    app.post(
        &format!("{base}/consents/{consent_id}/revoke"),
        &t.nurse.token,
        json!({"reason": "本人の申し出により撤回"}),
    )
    .await
    .expect(200);
    app.post(&format!("{base}/consents/{consent_id}/revoke"), &t.nurse.token, json!({"reason": "again"}))
        .await
        .expect(409);
    let p = app.get(&base, &t.nurse.token).await.expect(200);
    assert_eq!(p.body["consent"]["state"], json!("revoked"));
    assert_eq!(p.body["consent"]["missing"], json!(true));
    let list = app.get(&format!("{base}/consents"), &t.nurse.token).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    // And in lists too.
    let listed = app.get("/api/v1/patients?scope=team", &t.nurse.token).await.expect(200);
    assert_eq!(listed.body["items"][0]["consent"]["missing"], json!(true));
    // A scope the list does not know is named, with the ones it does.
    let res = app.get("/api/v1/patients?scope=ward", &t.nurse.token).await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("scope"), "{}", res.body);
    assert!(res.body["errors"][0]["detail"].as_str().unwrap().contains("team, all"), "{}", res.body);
}

async fn care_team_changes_take_effect_at_once(app: TestApp) {
    let t = team(&app, "14133").await;
    let base = format!("/api/v1/patients/{}", t.patient_id);
    let team_list = app.get(&format!("{base}/care-team"), &t.nurse.token).await.expect(200);
    let items = team_list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["is_lead"], json!(true));
    assert_eq!(items[0]["role"], json!("care_manager"));
    assert_eq!(items[1]["organization_name"], json!("川崎訪問看護ステーション"));

    // The nurse (not lead) cannot change the team; an org admin of her station can.
    let pharmacy = app.organization(&t.admin, "pharmacy", "中原薬局", Some("14133")).await;
    let pharmacist = app.person(&t.admin, &pharmacy, "pharmacist", "member").await;
    let add = json!({"user_id": pharmacist.id, "role": "pharmacist"});
    app.post(&format!("{base}/care-team"), &t.nurse.token, add.clone()).await.expect(403);
    let station_admin = app.person(&t.admin, &t.nurse_station, "nurse", "org_admin").await;
    // An organisation's administrator staffs the team from their own people only, never themselves.
    app.post(&format!("{base}/care-team"), &station_admin.token, add.clone()).await.expect(403);
    app.post(
        &format!("{base}/care-team"),
        &station_admin.token,
        json!({"user_id": station_admin.id, "role": "visiting_nurse"}),
    )
    .await
    .expect(403);
    let second_nurse = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    app.post(
        &format!("{base}/care-team"),
        &station_admin.token,
        json!({"user_id": second_nurse.id, "role": "visiting_nurse"}),
    )
    .await
    .expect(201);
    app.post(&format!("{base}/care-team"), &t.care_manager.token, add.clone()).await.expect(201);
    app.post(&format!("{base}/care-team"), &t.care_manager.token, add.clone()).await.expect(409);
    app.get(&base, &pharmacist.token).await.expect(200);
    // …but the org admin still cannot read the patient's record.
    app.get(&base, &station_admin.token).await.expect(404);

    // Ending the nurse's membership ends her access on the very next request.
    app.get(&base, &t.nurse.token).await.expect(200);
    let res = app
        .patch(
            &format!("{base}/care-team/{}", t.nurse_member_id),
            &t.care_manager.token,
            json!({"ended_on": "2999-01-01"}),
            None,
        )
        .await
        .expect(422);
    assert_eq!(res.body["errors"][0]["code"], json!("in_future"));
    let today = (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive().to_string();
    app.patch(
        &format!("{base}/care-team/{}", t.nurse_member_id),
        &t.care_manager.token,
        json!({"ended_on": today}),
        None,
    )
    .await
    .expect(200);
    app.get(&base, &t.nurse.token).await.expect(404);
    let current = app.get(&format!("{base}/care-team"), &t.care_manager.token).await.expect(200);
    assert_eq!(current.body["items"].as_array().unwrap().len(), 3);
    let history = app.get(&format!("{base}/care-team?include_past=true"), &t.care_manager.token).await.expect(200);
    let ended: Vec<&Value> =
        history.body["items"].as_array().unwrap().iter().filter(|m| m["active"] == json!(false)).collect();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["ended_on"], json!(today));

    // Handing over the lead.
    let pharmacist_member =
        current.body["items"].as_array().unwrap().iter().find(|m| m["user_id"] == json!(pharmacist.id)).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
    app.patch(&format!("{base}/care-team/{pharmacist_member}"), &t.care_manager.token, json!({"is_lead": true}), None)
        .await
        .expect(200);
    let leads: Vec<Value> = app.get(&format!("{base}/care-team"), &pharmacist.token).await.expect(200).body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["is_lead"] == json!(true))
        .cloned()
        .collect();
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["user_id"], json!(pharmacist.id));
    // "My patients" across teams.
    let mine = app.get("/api/v1/patients?scope=team", &pharmacist.token).await.expect(200);
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1);
}

fn today() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive().to_string()
}

async fn member_id_of(app: &TestApp, t: &Team, user_id: &str) -> String {
    let list =
        app.get(&format!("/api/v1/patients/{}/care-team", t.patient_id), &t.care_manager.token).await.expect(200);
    list.body["items"].as_array().unwrap().iter().find(|m| m["user_id"] == json!(user_id)).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An org admin with one person on a team changes only their own organisation's people: never
/// another organisation's member, never the lead, never a role or `is_lead`.
async fn org_admins_change_only_their_own_people(app: TestApp) {
    let t = team(&app, "14131").await;
    let base = format!("/api/v1/patients/{}", t.patient_id);
    let pharmacy = app.organization(&t.admin, "pharmacy", "中原薬局", Some("14131")).await;
    let pharmacist = app.person(&t.admin, &pharmacy, "pharmacist", "member").await;
    app.post(
        &format!("{base}/care-team"),
        &t.care_manager.token,
        json!({"user_id": pharmacist.id, "role": "pharmacist"}),
    )
    .await
    .expect(201);
    let pharmacy_admin = app.person(&t.admin, &pharmacy, "pharmacist", "org_admin").await;
    let nurse_member = format!("{base}/care-team/{}", t.nurse_member_id);

    // Another organisation's member: neither ended nor re-roled; the nurse keeps her access.
    let res = app.patch(&nurse_member, &pharmacy_admin.token, json!({"ended_on": today()}), None).await.expect(403);
    assert_eq!(res.header("content-type").as_deref(), Some("application/problem+json"));
    assert_eq!(res.problem_type(), "/problems/forbidden");
    app.patch(&nurse_member, &pharmacy_admin.token, json!({"role": "other"}), None).await.expect(403);
    assert_eq!(denied_events(&app, &pharmacy_admin.id, "care_team_member").await, 2, "refusals are audited");
    app.get(&base, &t.nurse.token).await.expect(200);
    let nurse = app.get(&format!("{base}/care-team"), &t.care_manager.token).await.expect(200);
    let nurse =
        nurse.body["items"].as_array().unwrap().iter().find(|m| m["user_id"] == json!(t.nurse.id)).unwrap().clone();
    assert_eq!((nurse["role"].clone(), nurse["active"].clone()), (json!("visiting_nurse"), json!(true)));

    // A fresh account of its own is added, but never as lead nor as the care manager.
    let fresh = app.person(&pharmacy_admin, &pharmacy, "pharmacist", "member").await;
    let team_path = format!("{base}/care-team");
    let add = |body: Value| app.post(&team_path, &pharmacy_admin.token, body);
    add(json!({"user_id": fresh.id, "role": "pharmacist", "is_lead": true})).await.expect(403);
    add(json!({"user_id": fresh.id, "role": "care_manager"})).await.expect(403);
    app.get(&base, &fresh.token).await.expect(404);
    let added = add(json!({"user_id": fresh.id, "role": "pharmacist"})).await.expect(201);
    let fresh_member = format!("{base}/care-team/{}", added.body["id"].as_str().unwrap());
    assert_eq!(added.body["is_lead"], json!(false));
    // …and then neither made lead nor re-roled, only ended.
    app.patch(&fresh_member, &pharmacy_admin.token, json!({"is_lead": true}), None).await.expect(403);
    app.patch(&fresh_member, &pharmacy_admin.token, json!({"role": "other"}), None).await.expect(403);
    app.patch(&fresh_member, &pharmacy_admin.token, json!({"ended_on": today()}), None).await.expect(200);
    app.get(&base, &fresh.token).await.expect(404);
    let leads: Vec<Value> = app.get(&format!("{base}/care-team"), &t.care_manager.token).await.expect(200).body
        ["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["is_lead"] == json!(true))
        .cloned()
        .collect();
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["user_id"], json!(t.care_manager.id));

    // The lead's own organisation's admin cannot end the lead's membership either.
    let office_admin = app.person(&t.admin, &t.care_office, "care_manager", "org_admin").await;
    let lead_member = member_id_of(&app, &t, &t.care_manager.id).await;
    app.patch(&format!("{base}/care-team/{lead_member}"), &office_admin.token, json!({"ended_on": today()}), None)
        .await
        .expect(403);
    app.get(&base, &t.care_manager.token).await.expect(200);
}

/// The lead hears of every change someone else makes, by profession and organisation kind only;
/// a care manager who is not the lead changes the team too (DESIGN.md §5), lead included.
async fn the_lead_is_told_of_changes_not_theirs(app: TestApp) {
    let t = team(&app, "14132").await;
    let base = format!("/api/v1/patients/{}", t.patient_id);
    // The lead's own changes are not e-mailed to the lead.
    assert!(emails_to(&app, &t.care_manager.id, "team_changed").await.is_empty());
    let station_admin = app.person(&t.admin, &t.nurse_station, "nurse", "org_admin").await;
    let second = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    app.post(
        &format!("{base}/care-team"),
        &station_admin.token,
        json!({"user_id": second.id, "role": "visiting_nurse"}),
    )
    .await
    .expect(201);
    let mails = emails_to(&app, &t.care_manager.id, "team_changed").await;
    assert_eq!(mails.len(), 1);
    let (subject, body) = &mails[0];
    assert_eq!(subject, "ケアチームが変更されました（在宅療養連携ノート）");
    assert!(body.contains("変更の内容: チームへの追加"), "{body}");
    assert!(body.contains("対象の方: 訪問看護ステーションの看護師"), "{body}");
    assert!(body.contains("変更した方: 訪問看護ステーションの看護師"), "{body}");
    assert!(body.contains(&format!("/patients/{}/care-team", t.patient_id)), "{body}");
    assert!(!body.contains("川崎訪問看護ステーション"), "no organisation name typed by anyone: {body}");

    // Another care manager on the team, not the lead, hands the lead over.
    let other_office = app.organization(&t.admin, "care_management_office", "幸ケアプラン", Some("14132")).await;
    let cm2 = app.person(&t.admin, &other_office, "care_manager", "member").await;
    app.post(&format!("{base}/care-team"), &t.care_manager.token, json!({"user_id": cm2.id, "role": "care_manager"}))
        .await
        .expect(201);
    assert_eq!(emails_to(&app, &t.care_manager.id, "team_changed").await.len(), 1, "the lead's own change");
    app.patch(&format!("{base}/care-team/{}", t.nurse_member_id), &cm2.token, json!({"is_lead": true}), None)
        .await
        .expect(200);
    let mails = emails_to(&app, &t.care_manager.id, "team_changed").await;
    assert_eq!(mails.len(), 2);
    assert!(mails[1].1.contains("変更の内容: リーダーの交代"), "{}", mails[1].1);
    assert!(mails[1].1.contains("変更した方: 居宅介護支援事業所のケアマネジャー"), "{}", mails[1].1);
    // English for those who read English.
    app.patch(&format!("/api/v1/users/{}", t.nurse.id), &t.nurse.token, json!({"locale": "en"}), None)
        .await
        .expect(200);
    let second_member = member_id_of(&app, &t, &second.id).await;
    app.patch(&format!("{base}/care-team/{second_member}"), &station_admin.token, json!({"ended_on": today()}), None)
        .await
        .expect(200);
    let mails = emails_to(&app, &t.nurse.id, "team_changed").await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].1.contains("What changed: membership ended"), "{}", mails[0].1);
    assert!(mails[0].1.contains("Changed by: a nurse at a visiting nurse station"), "{}", mails[0].1);
}

/// Roles that carry a duty need the profession: physicians' roles get every emergency, and the
/// care manager's role changes the team.
async fn team_roles_fit_professions(app: TestApp) {
    let t = team(&app, "14133").await;
    let base = format!("/api/v1/patients/{}", t.patient_id);
    let nurse_member = format!("{base}/care-team/{}", t.nurse_member_id);
    for role in ["primary_physician", "backup_physician", "care_manager"] {
        let res = app.patch(&nurse_member, &t.care_manager.token, json!({"role": role}), None).await.expect(422);
        assert_eq!(res.body["errors"][0]["field"], json!("role"));
        assert_eq!(res.body["errors"][0]["code"], json!("profession_mismatch"));
    }
    let nurse = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    app.post(
        &format!("{base}/care-team"),
        &t.care_manager.token,
        json!({"user_id": nurse.id, "role": "primary_physician"}),
    )
    .await
    .expect(422);
    app.patch(&nurse_member, &t.care_manager.token, json!({"role": "other"}), None).await.expect(200);
}

/// Coordinating physicians are physicians, assigned by someone else; the ward's other
/// coordinators are told.
async fn coordinators_are_physicians_assigned_by_someone_else(app: TestApp) {
    let t = team(&app, "14134").await;
    let put = |user_id: String, token: String| {
        let app = &app;
        async move { app.call("PUT", &format!("/api/v1/wards/14134/coordinators/{user_id}"), Some(&token), None, &[]).await }
    };
    // Not oneself (a second system administrator who is a physician would be refused too).
    let res = put(t.admin.id.clone(), t.admin.token.clone()).await.expect(403);
    assert_eq!(res.problem_type(), "/problems/forbidden");
    assert_eq!(denied_events(&app, &t.admin.id, "ward_coordinator").await, 1);
    // Not a non-physician.
    let res = put(t.nurse.id.clone(), t.admin.token.clone()).await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("user_id"));
    assert_eq!(res.body["errors"][0]["code"], json!("not_a_physician"));
    app.get(&format!("/api/v1/patients/{}", t.patient_id), &t.nurse.token).await.expect(200);
    let listed = app.get("/api/v1/patients?ward=14134", &t.nurse.token).await.expect(200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1, "the nurse's own team only");

    let clinic = app.organization(&t.admin, "clinic", "高津在宅クリニック", Some("14134")).await;
    let first = app.person(&t.admin, &clinic, "physician", "member").await;
    let second = app.person(&t.admin, &clinic, "physician", "member").await;
    put(first.id.clone(), t.admin.token.clone()).await.expect(201);
    assert!(emails_to(&app, &first.id, "coordinator_assigned").await.is_empty(), "nobody else to tell");
    put(second.id.clone(), t.admin.token.clone()).await.expect(201);
    put(second.id.clone(), t.admin.token.clone()).await.expect(204);
    let mails = emails_to(&app, &first.id, "coordinator_assigned").await;
    assert_eq!(mails.len(), 1, "told once, not again for the repeated PUT");
    assert!(mails[0].1.contains("高津区"), "{}", mails[0].1);
    assert!(mails[0].1.contains("（診療所の医師）"), "{}", mails[0].1);
    assert!(!mails[0].1.contains("高津在宅クリニック"), "{}", mails[0].1);
    assert!(emails_to(&app, &second.id, "coordinator_assigned").await.is_empty());
    app.get(&format!("/api/v1/patients/{}", t.patient_id), &second.token).await.expect(200);

    // A coordinator whose profession is changed stops coordinating.
    app.patch(&format!("/api/v1/users/{}", second.id), &t.admin.token, json!({"profession": "other"}), None)
        .await
        .expect(200);
    app.get(&format!("/api/v1/patients/{}", t.patient_id), &second.token).await.expect(404);
    app.get(&format!("/api/v1/patients/{}", t.patient_id), &first.token).await.expect(200);
}

async fn search_stays_in_scope(app: TestApp) {
    let t = team(&app, "14134").await;
    // Another care manager's patient with the same reading, in the same ward.
    let other_office = app.organization(&t.admin, "care_management_office", "高津ケアプラン", Some("14134")).await;
    let other_cm = app.person(&t.admin, &other_office, "care_manager", "member").await;
    app.post("/api/v1/patients", &other_cm.token, patient_body("河崎", "カワサキ", "14134")).await.expect(201);
    let mut second = patient_body("佐藤", "サトウ", "14134");
    second["care_level"] = json!("support_1");
    app.post("/api/v1/patients", &t.care_manager.token, second).await.expect(201);
    let names = |r: &TestResponse| -> Vec<String> {
        r.body["items"].as_array().unwrap().iter().map(|p| p["family_name"].as_str().unwrap().to_string()).collect()
    };
    let cm = &t.care_manager.token;
    assert_eq!(names(&app.get("/api/v1/patients?kana=カワ", cm).await.expect(200)), ["川崎"]);
    assert_eq!(names(&app.get("/api/v1/patients?kana=カワサキハナ", cm).await.expect(200)), ["川崎"]);
    assert_eq!(names(&app.get("/api/v1/patients?q=崎", cm).await.expect(200)), ["川崎"]);
    assert_eq!(names(&app.get("/api/v1/patients?care_level=support_1", cm).await.expect(200)), ["佐藤"]);
    assert_eq!(names(&app.get("/api/v1/patients?ward=14134&status=home", cm).await.expect(200)), ["佐藤", "川崎"]);
    assert_eq!(names(&app.get("/api/v1/patients?ward=14131", cm).await.expect(200)).len(), 0);
    assert_eq!(names(&app.get("/api/v1/patients?limit=1", cm).await.expect(200)), ["佐藤"]);
    // The other care manager's search never reveals ours.
    assert_eq!(names(&app.get("/api/v1/patients?kana=カワサキ", &other_cm.token).await.expect(200)), ["河崎"]);
    app.get("/api/v1/patients?status=sleeping", cm).await.expect(422);
}

/// Kana and the Japanese words for codes are taken as people type them; the reading is kept as
/// typed and found in any of its forms.
async fn people_type_kana_and_words_as_they_know_them(app: TestApp) {
    let t = team(&app, "14133").await;
    let cm = &t.care_manager.token;
    let mut body = patient_body("川崎", "かわさき", "14133");
    body["given_name_kana"] = json!("ﾊﾅｺ");
    body["sex"] = json!("女");
    body["care_level"] = json!("要介護3");
    let p = app.post("/api/v1/patients", cm, body).await.expect(201);
    let id = p.body["id"].as_str().unwrap().to_string();
    let read = app.get(&format!("/api/v1/patients/{id}"), cm).await.expect(200);
    assert_eq!(read.body["family_name_kana"], json!("かわさき"));
    assert_eq!(read.body["given_name_kana"], json!("ﾊﾅｺ"));
    assert_eq!(read.body["sex"], json!("female"));
    assert_eq!(read.body["care_level"], json!("care_3"));
    let found = |r: &TestResponse| r.body["items"].as_array().unwrap().iter().any(|p| p["id"] == json!(id));
    for kana in ["カワサキ", "かわさきはな", "ｶﾜｻｷﾊﾅｺ", "カワサキ　ハナコ"] {
        let res = app.get(&format!("/api/v1/patients?kana={kana}"), cm).await.expect(200);
        assert!(found(&res), "{kana}");
    }
    assert!(found(&app.get("/api/v1/patients?q=かわさき", cm).await.expect(200)));
    assert!(found(&app.get("/api/v1/patients?care_level=要介護3", cm).await.expect(200)));
}

/// The authorisation matrix: every patient-scoped route × every relationship.
async fn authorisation_matrix(app: TestApp) {
    let t = team(&app, "14135").await;
    let pid = t.patient_id.clone();
    let admin = &t.admin;
    // Relationships.
    let nurse_station_admin = app.person(admin, &t.nurse_station, "nurse", "org_admin").await;
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
        let today = (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive().to_string();
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
    // Offboarded when leaving the station (POST /users/{id}/offboard), later taken back into
    // service: the memberships the offboarding ended stay ended.
    let offboarded = {
        let p = app.person(admin, &t.nurse_station, "nurse", "member").await;
        app.post(
            &format!("/api/v1/patients/{pid}/care-team"),
            &t.care_manager.token,
            json!({"user_id": p.id, "role": "visiting_nurse"}),
        )
        .await
        .expect(201);
        let path = format!("/api/v1/users/{}", p.id);
        app.post(&format!("{path}/offboard"), &nurse_station_admin.token, json!({"reason": "退職"})).await.expect(200);
        app.patch(&path, &nurse_station_admin.token, json!({"active": true}), None).await.expect(200);
        let tokens = app.login(&p.email, crate::helpers::PASSWORD, None).await.expect(200);
        Person { token: tokens.body["access_token"].as_str().unwrap().to_string(), ..p }
    };
    let other_office = app.organization(admin, "care_management_office", "多摩ケアプラン", Some("14135")).await;
    let other_team = app.person(admin, &other_office, "care_manager", "member").await;
    app.post("/api/v1/patients", &other_team.token, patient_body("多摩", "タマ", "14135")).await.expect(201);
    let clinic = app.organization(admin, "clinic", "多摩在宅クリニック", Some("14135")).await;
    let coordinator = app.person(admin, &clinic, "physician", "member").await;
    let other_coordinator = app.person(admin, &clinic, "physician", "member").await;
    app.call("PUT", &format!("/api/v1/wards/14135/coordinators/{}", coordinator.id), Some(&admin.token), None, &[])
        .await
        .expect(201);
    app.call(
        "PUT",
        &format!("/api/v1/wards/14136/coordinators/{}", other_coordinator.id),
        Some(&admin.token),
        None,
        &[],
    )
    .await
    .expect(201);
    let emergency = app.person(admin, &clinic, "physician", "member").await;
    app.post(
        &format!("/api/v1/patients/{pid}/emergency-access"),
        &emergency.token,
        json!({"reason": "夜間に救急搬送の連絡あり、既往歴の確認のため"}),
    )
    .await
    .expect(201);
    // An org admin of another organisation with one person on the team (a pharmacy).
    let pharmacy = app.organization(admin, "pharmacy", "多摩薬局", Some("14135")).await;
    let pharmacist = app.person(admin, &pharmacy, "pharmacist", "member").await;
    app.post(
        &format!("/api/v1/patients/{pid}/care-team"),
        &t.care_manager.token,
        json!({"user_id": pharmacist.id, "role": "pharmacist"}),
    )
    .await
    .expect(201);
    let pharmacy_admin = app.person(admin, &pharmacy, "pharmacist", "org_admin").await;
    let expired = app.person(admin, &clinic, "physician", "member").await;
    app.post(
        &format!("/api/v1/patients/{pid}/emergency-access"),
        &expired.token,
        json!({"reason": "夜間に救急搬送の連絡あり、既往歴の確認のため"}),
    )
    .await
    .expect(201);
    expire_emergency_access(&app, &expired.id).await;
    // A visit note by the nurse with one photo, for the attachment routes.
    let note_id = crate::attachments::visit_note(&app, &t.nurse, &pid, "創部の写真").await;
    let photo = crate::attachments::jpeg_like(2_000);
    let shared = crate::attachments::upload(
        &app,
        &t.nurse,
        &format!("/api/v1/notes/{note_id}/attachments"),
        "創部.jpg",
        &photo,
        &[],
    )
    .await
    .expect(201);
    let files = Files { note_id, attachment_id: shared.body["id"].as_str().unwrap().to_string() };

    // Routes: R1 GET patient, R2 PATCH patient, R3 GET consents, R4 POST consent, R5 revoke,
    // R6 GET team, R7 POST team, R8 PATCH member, R9 GET access log, R10 GET insurance,
    // R11 PUT insurance, R12 POST merge (into a patient of the lead's with another birth date:
    // 422 once allowed, so nothing is merged). Attachments of the nurse's note: A1 GET the
    // note's files, A2 GET a file's content, A3 POST a file to the note (its author only), A4 mark
    // a fresh file of the nurse's entered in error (its uploader or the lead). Invitations: I1
    // invite a person, I2 list the invitations, I3 revoke a pending one (the lead or the care
    // manager only). Then listed by search, then POST emergency access (last: it grants access).
    #[rustfmt::skip]
    let rows: Vec<(&str, &Person, [u16; 19], bool, u16)> = vec![
        //                                                 R1   R2   R3   R4   R5   R6   R7   R8   R9   R10  R11  R12  A1   A2   A3   A4   I1   I2   I3
        ("lead care manager",       &t.care_manager,      [200, 200, 200, 201, 200, 200, 201, 200, 200, 200, 200, 422, 200, 200, 403, 201, 201, 200, 200], true,  403),
        // Writes, but merges only as the care manager of both registrations.
        ("active member (nurse)",   &t.nurse,             [200, 200, 200, 201, 200, 200, 403, 403, 403, 200, 200, 404, 200, 200, 201, 201, 403, 403, 403], true,  409),
        ("former member",           &former,              [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404], false, 201),
        ("offboarded, taken back",  &offboarded,          [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404], false, 201),
        ("another patient's team",  &other_team,          [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404], false, 403),
        ("coordinator of the ward", &coordinator,         [200, 403, 200, 403, 403, 200, 403, 403, 403, 200, 403, 403, 200, 200, 403, 403, 403, 403, 403], true,  201),
        ("coordinator of another",  &other_coordinator,   [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404], false, 201),
        // Adds its own people (R7) but never re-roles anyone (R8), not even its own.
        ("org admin of a member",   &nurse_station_admin, [404, 404, 404, 404, 404, 200, 201, 403, 404, 404, 404, 404, 404, 404, 404, 404, 403, 403, 403], false, 201),
        // Another organisation's people are not its own to add (R7) or change (R8).
        ("org admin of another org",&pharmacy_admin,      [404, 404, 404, 404, 404, 200, 403, 403, 404, 404, 404, 404, 404, 404, 404, 404, 403, 403, 403], false, 201),
        ("system admin",            admin,                [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404], false, 403),
        ("emergency access",        &emergency,           [200, 403, 200, 403, 403, 200, 403, 403, 403, 200, 403, 403, 200, 200, 403, 403, 403, 403, 403], false, 201),
        ("emergency access expired",&expired,             [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404], false, 201),
    ];
    let missing = "01900000-0000-7000-8000-000000000000";
    for (name, person, expected, listed, break_glass) in rows {
        for (i, want) in expected.iter().enumerate() {
            let res = matrix_call(&app, &t, &files, i, &pid, person).await;
            assert_eq!(res.status, *want, "{name}: route R{} answered {}: {}", i + 1, res.status, res.text);
            if *want == 404 {
                // Identical to a patient that does not exist: status, headers and body.
                let ghost = matrix_call(&app, &t, &files, i, missing, person).await;
                assert_eq!(res.status, ghost.status, "{name} R{}", i + 1);
                assert_eq!(res.text, ghost.text, "{name} R{}: body differs from a missing patient", i + 1);
                for h in ["content-type", "content-length", "cache-control", "www-authenticate"] {
                    assert_eq!(res.header(h), ghost.header(h), "{name} R{}: header {h}", i + 1);
                }
            }
        }
        let search = app.get("/api/v1/patients?kana=カワサキ", &person.token).await.expect(200);
        let found = search.body["items"].as_array().unwrap().iter().any(|p| p["id"] == json!(pid));
        assert_eq!(found, listed, "{name}: search");
        let res = app
            .post(
                &format!("/api/v1/patients/{pid}/emergency-access"),
                &person.token,
                json!({"reason": "救急外来から問い合わせがあったため確認"}),
            )
            .await;
        assert_eq!(res.status, break_glass, "{name}: emergency access: {}", res.text);
    }
}

/// The note and the file the matrix's attachment routes name.
struct Files {
    note_id: String,
    attachment_id: String,
}

async fn matrix_call(app: &TestApp, t: &Team, files: &Files, route: usize, pid: &str, person: &Person) -> TestResponse {
    let base = format!("/api/v1/patients/{pid}");
    // For the patient that does not exist, a note and a file that do not exist either.
    let (note_id, attachment_id) = if pid == t.patient_id {
        (files.note_id.as_str(), files.attachment_id.as_str())
    } else {
        ("01900000-0000-7000-8000-0000000000aa", "01900000-0000-7000-8000-0000000000ab")
    };
    let token = &person.token;
    match route {
        0 => app.get(&base, token).await,
        1 => {
            let etag = app
                .get(&format!("/api/v1/patients/{}", t.patient_id), &t.care_manager.token)
                .await
                .header("etag")
                .unwrap();
            app.patch(&base, token, json!({"phone": "044-999-0000"}), Some(&etag)).await
        }
        2 => app.get(&format!("{base}/consents"), token).await,
        3 => {
            app.post(
                &format!("{base}/consents"),
                token,
                json!({"scope": "care_team", "obtained_from": "family", "obtained_on": "2026-10-01"}),
            )
            .await
        }
        4 => {
            let c = app
                .post(
                    &format!("/api/v1/patients/{}/consents", t.patient_id),
                    &t.care_manager.token,
                    json!({"scope": "care_team", "obtained_from": "patient", "obtained_on": "2026-10-01"}),
                )
                .await
                .expect(201);
            app.post(
                &format!("{base}/consents/{}/revoke", c.body["id"].as_str().unwrap()),
                token,
                json!({"reason": "撤回"}),
            )
            .await
        }
        5 => app.get(&format!("{base}/care-team"), token).await,
        6 => {
            let newcomer = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
            app.post(&format!("{base}/care-team"), token, json!({"user_id": newcomer.id, "role": "visiting_nurse"}))
                .await
        }
        7 => {
            app.patch(
                &format!("{base}/care-team/{}", t.nurse_member_id),
                token,
                json!({"role": "visiting_nurse"}),
                None,
            )
            .await
        }
        8 => app.get(&format!("{base}/access-log"), token).await,
        9 => app.get(&format!("{base}/insurance"), token).await,
        10 => {
            let numbers = json!({"long_term_care": {"insurer_number": "141309", "insured_number": "0000012345"}});
            // Recorded numbers are versioned: the PUT names the version it replaces.
            // (A missing patient has none; any version does.)
            let current = app.get(&format!("{base}/insurance"), &t.care_manager.token).await;
            let etag = current.header("etag").unwrap_or_else(|| "\"0\"".into());
            app.call("PUT", &format!("{base}/insurance"), Some(token), Some(&numbers), &[("If-Match", &etag)]).await
        }
        11 => {
            let mut other = patient_body("別人", "ベツジン", "14135");
            other["birth_date"] = json!("1940-05-05");
            let other = app.post("/api/v1/patients", &t.care_manager.token, other).await.expect(201);
            app.post(&format!("{base}/merge"), token, json!({"into": other.body["id"]})).await
        }
        12 => app.get(&format!("/api/v1/notes/{note_id}/attachments"), token).await,
        13 => {
            let path = format!("/api/v1/attachments/{attachment_id}/content");
            crate::attachments::download(app, person, &path, &[]).await.0
        }
        14 => {
            let path = format!("/api/v1/notes/{note_id}/attachments");
            crate::attachments::upload(app, person, &path, "追加.jpg", &crate::attachments::jpeg_like(500), &[]).await
        }
        15 => {
            // A fresh file of the nurse's, on a note of its own (a marked file is gone).
            let id = if pid == t.patient_id {
                let note_id = crate::attachments::visit_note(app, &t.nurse, pid, "誤添付の確認").await;
                let path = format!("/api/v1/notes/{note_id}/attachments");
                let jpeg = crate::attachments::jpeg_like(500);
                let res = crate::attachments::upload(app, &t.nurse, &path, "誤.jpg", &jpeg, &[]).await.expect(201);
                res.body["id"].as_str().unwrap().to_string()
            } else {
                attachment_id.to_string()
            };
            crate::attachments::mark_in_error(app, person, &id, "誤って添付", &[]).await
        }
        16 => {
            let newcomer = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
            let body = json!({"user_id": newcomer.id, "role": "visiting_nurse"});
            app.post(&format!("{base}/care-team/invitations"), token, body).await
        }
        17 => app.get(&format!("{base}/care-team/invitations"), token).await,
        18 => {
            let id = if pid == t.patient_id {
                let newcomer = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
                let body = json!({"user_id": newcomer.id, "role": "visiting_nurse"});
                let res = app.post(&format!("{base}/care-team/invitations"), &t.care_manager.token, body).await;
                res.expect(201).body["id"].as_str().unwrap().to_string()
            } else {
                "01900000-0000-7000-8000-0000000000ac".to_string()
            };
            app.post(&format!("{base}/care-team/invitations/{id}/revoke"), token, json!({})).await
        }
        _ => unreachable!(),
    }
}

pub async fn expire_emergency_access(app: &TestApp, user_id: &str) {
    use diesel::prelude::*;
    use renkei::db::schema::emergency_access;
    let user_id = user_id.to_string();
    app.db
        .run(move |conn| {
            diesel::update(emergency_access::table.filter(emergency_access::user_id.eq(&user_id)))
                .set(emergency_access::expires_at.eq(renkei::db::now() - chrono::Duration::seconds(1)))
                .execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
}

async fn emergency_access_is_audited_and_expires(app: TestApp) {
    let t = team(&app, "14136").await;
    let base = format!("/api/v1/patients/{}", t.patient_id);
    let clinic = app.organization(&t.admin, "clinic", "宮前救急クリニック", Some("14136")).await;
    let doctor = app.person(&t.admin, &clinic, "physician", "member").await;
    app.get(&base, &doctor.token).await.expect(404);
    app.post(&format!("{base}/emergency-access"), &doctor.token, json!({"reason": "短い"})).await.expect(422);
    let g = app
        .post(
            &format!("{base}/emergency-access"),
            &doctor.token,
            json!({"reason": "救急搬送先から服薬内容の問い合わせ"}),
        )
        .await
        .expect(201);
    let granted = chrono::DateTime::parse_from_rfc3339(g.body["granted_at"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(g.body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - granted).num_minutes(), 60);
    app.get(&base, &doctor.token).await.expect(200);
    app.patch(&base, &doctor.token, json!({"phone": "044-1"}), Some("\"1\"")).await.expect(403);
    // The lead sees it in the access log, with high priority.
    let log = app.get(&format!("{base}/access-log"), &t.care_manager.token).await.expect(200);
    let entries = log.body["items"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["resource_type"] == json!("emergency_access")
        && e["priority"] == json!("high")
        && e["actor_id"] == json!(doctor.id)));
    assert!(
        entries.iter().any(|e| e["actor_id"] == json!(doctor.id) && e["outcome"] == json!("denied")),
        "the refused read is logged"
    );
    // After expiry, nothing.
    expire_emergency_access(&app, &doctor.id).await;
    app.get(&base, &doctor.token).await.expect(404);
}

async fn coordinators_are_assigned_by_system_admins(app: TestApp) {
    let t = team(&app, "14137").await;
    let clinic = app.organization(&t.admin, "clinic", "麻生在宅クリニック", Some("14137")).await;
    let doctor = app.person(&t.admin, &clinic, "physician", "member").await;
    let path = format!("/api/v1/wards/14137/coordinators/{}", doctor.id);
    app.call("PUT", &path, Some(&t.care_manager.token), None, &[]).await.expect(403);
    app.call("PUT", &path, Some(&t.admin.token), None, &[]).await.expect(201);
    app.call("PUT", &path, Some(&t.admin.token), None, &[]).await.expect(204);
    let listed = app.get("/api/v1/patients", &doctor.token).await.expect(200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.get("/api/v1/patients?scope=team", &doctor.token).await.expect(200).body["items"].as_array().unwrap().len(),
        0
    );
    app.call("DELETE", &path, Some(&t.admin.token), None, &[]).await.expect(204);
    app.call("DELETE", &path, Some(&t.admin.token), None, &[]).await.expect(404);
    app.get(&format!("/api/v1/patients/{}", t.patient_id), &doctor.token).await.expect(404);
    app.call("PUT", "/api/v1/wards/99999/coordinators/x", Some(&t.admin.token), None, &[]).await.expect(404);
}

async fn audit_trail_records_and_detects_tampering(app: TestApp) {
    let t = team(&app, "14131").await;
    let base = format!("/api/v1/patients/{}", t.patient_id);
    app.get(&base, &t.nurse.token).await.expect(200);
    app.get(&base, &t.nurse.token).await.expect(200);
    let stranger = app.person(&t.admin, &t.care_office, "care_manager", "member").await;
    app.get(&base, &stranger.token).await.expect(404);

    // System admins query the trail; others cannot.
    app.get("/api/v1/audit-events", &t.nurse.token).await.expect(403);
    let events = app
        .get(&format!("/api/v1/audit-events?patient_id={}&actor_id={}", t.patient_id, t.nurse.id), &t.admin.token)
        .await
        .expect(200);
    let reads = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == json!("R") && e["resource_type"] == json!("patient"))
        .count();
    assert_eq!(reads, 2);
    let denied = app
        .get(&format!("/api/v1/audit-events?outcome=denied&actor_id={}", stranger.id), &t.admin.token)
        .await
        .expect(200);
    assert_eq!(denied.body["items"].as_array().unwrap().len(), 1);

    // The chain verifies; a changed byte and a deleted row are each detected.
    let report = app.db.run(renkei::audit::verify).await.unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert!(report.events >= 5, "{}", report.events);
    let pid = t.patient_id.clone();
    tamper(&app, &pid, "UPDATE audit_events SET detail = 'x' WHERE chain_key = '{pid}' AND chain_seq = 2").await;
    let report = app.db.run(renkei::audit::verify).await.unwrap();
    let broken = report.broken.expect("changed row detected");
    assert_eq!(
        (broken.chain_key.as_str(), broken.chain_seq, broken.reason),
        (pid.as_str(), 2, "its content was changed")
    );
    tamper(&app, &pid, "UPDATE audit_events SET detail = NULL WHERE chain_key = '{pid}' AND chain_seq = 2").await;
    assert!(app.db.run(renkei::audit::verify).await.unwrap().broken.is_none());
    tamper(&app, &pid, "DELETE FROM audit_events WHERE chain_key = '{pid}' AND chain_seq = 3").await;
    let broken = app.db.run(renkei::audit::verify).await.unwrap().broken.expect("deleted row detected");
    assert_eq!((broken.chain_seq, broken.reason), (3, "a row is missing before this one"));

    // The command an operator runs says the same and fails.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_renkei"))
        .args(["audit", "verify"])
        .env("DATABASE_URL", &app.database_url)
        .env("RENKEI_DATA_DIR", app.data_dir.path())
        .env("RENKEI_JWT_SECRET", crate::helpers::JWT_SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("chain {pid} at sequence 3")), "{stderr}");
}

/// Edits the trail as someone with database access would, bypassing the append-only trigger.
async fn tamper(app: &TestApp, pid: &str, sql: &str) {
    use diesel::connection::SimpleConnection;
    let sql = sql.replace("{pid}", pid);
    app.db
        .run(move |conn| {
            let (off, on) = match conn {
                renkei::db::DbConn::Sqlite(_) => (
                    "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;",
                    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END; \
                     CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;",
                ),
                renkei::db::DbConn::Postgres(_) => (
                    "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update;",
                    "ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update;",
                ),
            };
            conn.batch_execute(off).unwrap();
            conn.batch_execute(&sql).unwrap();
            conn.batch_execute(on).unwrap();
            Ok(())
        })
        .await
        .unwrap();
}

async fn audit_trail_is_append_only(app: TestApp) {
    use diesel::connection::SimpleConnection;
    let t = team(&app, "14132").await;
    app.get(&format!("/api/v1/patients/{}", t.patient_id), &t.nurse.token).await.expect(200);
    let mut conn = app.db.get().unwrap();
    assert!(conn.batch_execute("UPDATE audit_events SET detail = 'x'").is_err(), "UPDATE refused by the database");
    assert!(conn.batch_execute("DELETE FROM audit_events").is_err(), "DELETE refused by the database");
}

/// The authorisation matrix of the care records (medications, allergies, the emergency card):
/// every route × every relationship; a 404 is byte-identical to that of a missing patient or record.
async fn care_authorisation_matrix(app: TestApp) {
    let t = team(&app, "14134").await;
    let pid = t.patient_id.clone();
    let admin = &t.admin;
    let base = format!("/api/v1/patients/{pid}");
    let join = |p: &Person, role: &'static str| {
        let (app, base, token, id) = (&app, base.clone(), t.care_manager.token.clone(), p.id.clone());
        async move { app.post(&format!("{base}/care-team"), &token, json!({"user_id": id, "role": role})).await.expect(201) }
    };
    let pharmacy = app.organization(admin, "pharmacy", "高津薬局", Some("14134")).await;
    let pharmacist = app.person(admin, &pharmacy, "pharmacist", "member").await;
    join(&pharmacist, "pharmacist").await;
    let former = app.person(admin, &t.nurse_station, "nurse", "member").await;
    let m = join(&former, "visiting_nurse").await;
    let today = (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive().to_string();
    app.patch(
        &format!("{base}/care-team/{}", m.body["id"].as_str().unwrap()),
        &t.care_manager.token,
        json!({"ended_on": today}),
        None,
    )
    .await
    .expect(200);
    let other_office = app.organization(admin, "care_management_office", "高津ケアプラン", Some("14134")).await;
    let other_team = app.person(admin, &other_office, "care_manager", "member").await;
    app.post("/api/v1/patients", &other_team.token, patient_body("高津", "タカツ", "14134")).await.expect(201);
    let clinic = app.organization(admin, "clinic", "高津在宅クリニック", Some("14134")).await;
    let coordinator = app.person(admin, &clinic, "physician", "member").await;
    let other_coordinator = app.person(admin, &clinic, "physician", "member").await;
    for (ward, who) in [("14134", &coordinator), ("14135", &other_coordinator)] {
        let path = format!("/api/v1/wards/{ward}/coordinators/{}", who.id);
        app.call("PUT", &path, Some(&admin.token), None, &[]).await.expect(201);
    }
    let nurse_station_admin = app.person(admin, &t.nurse_station, "nurse", "org_admin").await;
    let reason = json!({"reason": "夜間に救急搬送の連絡あり、急変時の意向の確認のため"});
    let emergency = app.person(admin, &clinic, "physician", "member").await;
    app.post(&format!("{base}/emergency-access"), &emergency.token, reason.clone()).await.expect(201);
    let expired = app.person(admin, &clinic, "physician", "member").await;
    app.post(&format!("{base}/emergency-access"), &expired.token, reason).await.expect(201);
    expire_emergency_access(&app, &expired.id).await;
    // One medication, one allergy and a card to name.
    let drug = json!({"drug_name": "アムロジピン錠5mg", "dose": "1錠", "source": "pharmacy"});
    let allergy = json!({"substance": "ペニシリン", "category": "medication"});
    let medication_id =
        app.post(&format!("{base}/medications"), &t.care_manager.token, drug.clone()).await.expect(201).body["id"]
            .as_str()
            .unwrap()
            .to_string();
    let allergy_id =
        app.post(&format!("{base}/allergies"), &t.care_manager.token, allergy.clone()).await.expect(201).body["id"]
            .as_str()
            .unwrap()
            .to_string();
    let card = json!({"place_of_care": "自宅", "diagnoses": ["慢性心不全"]});
    app.call(
        "PUT",
        &format!("{base}/emergency-card"),
        Some(&t.care_manager.token),
        Some(&card),
        &[("if-match", "\"0\"")],
    )
    .await
    .expect(201);
    let ids = CareIds { medication_id, allergy_id, drug, allergy, card };

    // C1 GET medications, C2 POST medication, C3 GET medication, C4 PUT medication, C5 GET its
    // versions, C6 mark it entered in error, C7 POST reconciliation, C8 GET allergies, C9 POST
    // allergy, C10 GET allergy, C11 PUT allergy, C12 GET its versions, C13 mark it entered in
    // error, C14 GET emergency card, C15 PUT emergency card, C16 GET its versions, C17 GET print.
    #[rustfmt::skip]
    let rows: Vec<(&str, &Person, [u16; 17])> = vec![
        //                                                 C1   C2   C3   C4   C5   C6   C7   C8   C9   C10  C11  C12  C13  C14  C15  C16  C17
        ("lead care manager",       &t.care_manager,      [200, 201, 200, 200, 200, 200, 403, 200, 201, 200, 200, 200, 200, 200, 200, 200, 200]),
        ("active member (nurse)",   &t.nurse,             [200, 201, 200, 200, 200, 200, 403, 200, 201, 200, 200, 200, 200, 200, 200, 200, 200]),
        // The reconciliation is a pharmacist's.
        ("active member (pharmacist)", &pharmacist,       [200, 201, 200, 200, 200, 200, 201, 200, 201, 200, 200, 200, 200, 200, 200, 200, 200]),
        ("former member",           &former,              [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
        ("another patient's team",  &other_team,          [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
        ("coordinator of the ward", &coordinator,         [200, 403, 200, 403, 200, 403, 403, 200, 403, 200, 403, 200, 403, 200, 403, 200, 200]),
        ("coordinator of another",  &other_coordinator,   [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
        ("org admin of a member",   &nurse_station_admin, [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
        ("system admin",            admin,                [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
        // Break-glass reads the whole card, writes nothing.
        ("emergency access",        &emergency,           [200, 403, 200, 403, 200, 403, 403, 200, 403, 200, 403, 200, 403, 200, 403, 200, 200]),
        ("emergency access expired",&expired,             [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
    ];
    let missing = "01900000-0000-7000-8000-000000000000";
    for (name, person, expected) in rows {
        for (i, want) in expected.iter().enumerate() {
            let res = care_call(&app, &t, &ids, i, &pid, person).await;
            assert_eq!(res.status, *want, "{name}: route C{} answered {}: {}", i + 1, res.status, res.text);
            if *want == 404 {
                let ghost = care_call(&app, &t, &ids, i, missing, person).await;
                assert_eq!(res.status, ghost.status, "{name} C{}", i + 1);
                assert_eq!(res.text, ghost.text, "{name} C{}: body differs from a missing patient", i + 1);
                for h in ["content-type", "content-length", "cache-control", "www-authenticate"] {
                    assert_eq!(res.header(h), ghost.header(h), "{name} C{}: header {h}", i + 1);
                }
            }
        }
    }
}

/// What the care matrix's routes name.
struct CareIds {
    medication_id: String,
    allergy_id: String,
    drug: Value,
    allergy: Value,
    card: Value,
}

async fn care_call(app: &TestApp, t: &Team, ids: &CareIds, route: usize, pid: &str, person: &Person) -> TestResponse {
    let real = pid == t.patient_id;
    let base = format!("/api/v1/patients/{pid}");
    let lead = &t.care_manager.token;
    // For the patient that does not exist, records that do not exist either.
    let (medication, allergy) = if real {
        (ids.medication_id.clone(), ids.allergy_id.clone())
    } else {
        ("01900000-0000-7000-8000-0000000000ac".to_string(), "01900000-0000-7000-8000-0000000000ad".to_string())
    };
    let etag = |path: String| async move { app.get(&path, lead).await.header("etag").unwrap() };
    // A fresh record of the real patient to mark entered in error.
    let fresh = |kind: &'static str, body: Value| async move {
        if real {
            let res = app.post(&format!("/api/v1/patients/{}/{kind}", t.patient_id), lead, body).await.expect(201);
            res.body["id"].as_str().unwrap().to_string()
        } else {
            "01900000-0000-7000-8000-0000000000ae".to_string()
        }
    };
    let token = &person.token;
    let put = |path: String, body: Value, if_match: String| async move {
        app.call("PUT", &path, Some(token), Some(&body), &[("if-match", &if_match)]).await
    };
    let error = json!({"reason": "別の患者の記録"});
    match route {
        0 => app.get(&format!("{base}/medications"), token).await,
        1 => app.post(&format!("{base}/medications"), token, ids.drug.clone()).await,
        2 => app.get(&format!("/api/v1/medications/{medication}"), token).await,
        3 => {
            let e = etag(format!("/api/v1/medications/{}", ids.medication_id)).await;
            put(format!("/api/v1/medications/{medication}"), ids.drug.clone(), e).await
        }
        4 => app.get(&format!("/api/v1/medications/{medication}/versions"), token).await,
        5 => {
            let id = fresh("medications", ids.drug.clone()).await;
            app.post(&format!("/api/v1/medications/{id}/entered-in-error"), token, error).await
        }
        6 => {
            let today = (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive().to_string();
            app.post(&format!("{base}/medication-reconciliations"), token, json!({"checked_on": today})).await
        }
        7 => app.get(&format!("{base}/allergies"), token).await,
        8 => app.post(&format!("{base}/allergies"), token, ids.allergy.clone()).await,
        9 => app.get(&format!("/api/v1/allergies/{allergy}"), token).await,
        10 => {
            let e = etag(format!("/api/v1/allergies/{}", ids.allergy_id)).await;
            put(format!("/api/v1/allergies/{allergy}"), ids.allergy.clone(), e).await
        }
        11 => app.get(&format!("/api/v1/allergies/{allergy}/versions"), token).await,
        12 => {
            let id = fresh("allergies", ids.allergy.clone()).await;
            app.post(&format!("/api/v1/allergies/{id}/entered-in-error"), token, error).await
        }
        13 => app.get(&format!("{base}/emergency-card"), token).await,
        14 => {
            let e = etag(format!("/api/v1/patients/{}/emergency-card", t.patient_id)).await;
            put(format!("{base}/emergency-card"), ids.card.clone(), e).await
        }
        15 => app.get(&format!("{base}/emergency-card/versions"), token).await,
        16 => app.get(&format!("{base}/emergency-card/print"), token).await,
        _ => unreachable!(),
    }
}

crate::both_backends!(
    org_admins_change_only_their_own_people,
    the_lead_is_told_of_changes_not_theirs,
    team_roles_fit_professions,
    coordinators_are_physicians_assigned_by_someone_else,
    register_read_update,
    consent_is_recorded_and_revoked,
    care_team_changes_take_effect_at_once,
    search_stays_in_scope,
    people_type_kana_and_words_as_they_know_them,
    authorisation_matrix,
    care_authorisation_matrix,
    emergency_access_is_audited_and_expires,
    coordinators_are_assigned_by_system_admins,
    audit_trail_records_and_detects_tampering,
    audit_trail_is_append_only,
);
