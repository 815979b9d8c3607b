//! Organisations, their people, and wards.

use serde_json::json;

use crate::helpers::{denied_events, emails_to, TestApp, PASSWORD};
use crate::patients::team;

async fn wards_are_kawasakis_seven(app: TestApp) {
    let admin = app.system_admin().await;
    let res = app.get("/api/v1/wards", &admin.token).await.expect(200);
    let codes: Vec<&str> = res.body["items"].as_array().unwrap().iter().map(|w| w["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["14131", "14132", "14133", "14134", "14135", "14136", "14137"]);
    assert_eq!(res.body["items"][2]["name"], json!("中原区"));
}

async fn system_admin_builds_an_organisation_and_its_admin(app: TestApp) {
    let admin = app.system_admin().await;
    let created = app
        .post(
            "/api/v1/organizations",
            &admin.token,
            json!({
                "kind": "visiting_nurse_station",
                "name": "訪問看護ステーション　ｶﾜｻｷ　ＡＢＣ",
                "name_kana": "ホウモンカンゴステーション カワサキ",
                "ward_code": "14133",
                "address": "川崎市中原区小杉町１－２－３",
                "phone": "044-000-0000",
                "services": ["24h_visits", "terminal_care", "24h_visits"]
            }),
        )
        .await
        .expect(201);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.header("location").unwrap(), format!("/api/v1/organizations/{id}"));
    // Japanese text — kanji, kana, half-width and full-width forms — comes back byte for byte.
    let read = app.get(&format!("/api/v1/organizations/{id}"), &admin.token).await.expect(200);
    assert_eq!(read.body["name"], json!("訪問看護ステーション　ｶﾜｻｷ　ＡＢＣ"));
    assert_eq!(read.body["address"], json!("川崎市中原区小杉町１－２－３"));
    assert_eq!(read.body["services"], json!(["24h_visits", "terminal_care"]));
    assert_eq!(read.header("etag").as_deref(), Some("\"1\""));

    // Its first administrator, who then manages the organisation's own people.
    let org_admin = app.person(&admin, &id, "nurse", "org_admin").await;
    let nurse = app.person(&org_admin, &id, "nurse", "member").await;
    // …but not another organisation's, and never a system administrator.
    let other = app.organization(&admin, "clinic", "宮前在宅クリニック", Some("14136")).await;
    let body = json!({"email": "z@example.jp", "name": "z", "profession": "nurse", "password": PASSWORD});
    app.post(&format!("/api/v1/organizations/{other}/users"), &org_admin.token, body.clone()).await.expect(403);
    let mut sysadmin = body.clone();
    sysadmin["role"] = json!("system_admin");
    app.post(&format!("/api/v1/organizations/{id}/users"), &org_admin.token, sysadmin).await.expect(403);
    // A member cannot create accounts or organisations.
    app.post(&format!("/api/v1/organizations/{id}/users"), &nurse.token, body.clone()).await.expect(403);
    app.post("/api/v1/organizations", &nurse.token, json!({"kind": "clinic", "name": "x"})).await.expect(403);
    // The same e-mail address twice is refused.
    let mut dup = body.clone();
    dup["email"] = json!(nurse.email.to_uppercase());
    let res = app.post(&format!("/api/v1/organizations/{id}/users"), &org_admin.token, dup).await.expect(422);
    assert_eq!(res.body["errors"][0]["code"], json!("taken"));

    // Admins see e-mail addresses; colleagues see the directory view only.
    let as_admin = app.get(&format!("/api/v1/organizations/{id}/users"), &org_admin.token).await.expect(200);
    assert!(as_admin.body["items"].as_array().unwrap().iter().all(|u| u["email"].is_string()));
    let as_other = app
        .get(
            &format!("/api/v1/organizations/{id}/users"),
            &app.person(&admin, &other, "physician", "member").await.token,
        )
        .await
        .expect(200);
    assert_eq!(as_other.body["items"].as_array().unwrap().len(), 2);
    assert!(as_other.body["items"].as_array().unwrap().iter().all(|u| u.get("email").is_none()));
}

async fn org_admin_edits_own_organisation_with_versions(app: TestApp) {
    let admin = app.system_admin().await;
    let id = app.organization(&admin, "pharmacy", "多摩薬局", Some("14135")).await;
    let other = app.organization(&admin, "pharmacy", "麻生薬局", Some("14137")).await;
    let org_admin = app.person(&admin, &id, "pharmacist", "org_admin").await;
    let path = format!("/api/v1/organizations/{id}");
    let res = app
        .patch(
            &path,
            &org_admin.token,
            json!({"phone": "044-111-2222", "services": ["home_medication_management"]}),
            Some("\"1\""),
        )
        .await
        .expect(200);
    assert_eq!(res.body["version"], json!(2));
    assert_eq!(res.body["services"], json!(["home_medication_management"]));
    // Stale version.
    app.patch(&path, &org_admin.token, json!({"phone": "044-333-4444"}), Some("\"1\"")).await.expect(412);
    // Another organisation.
    app.patch(&format!("/api/v1/organizations/{other}"), &org_admin.token, json!({"phone": "044-333-4444"}), None)
        .await
        .expect(403);
    // Validation.
    let res = app.patch(&path, &org_admin.token, json!({"ward_code": "14150"}), None).await.expect(422);
    assert_eq!(res.body["errors"][0]["code"], json!("unknown_ward"));
    let res = app.patch(&path, &org_admin.token, json!({"name_kana": "多摩薬局"}), None).await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("name_kana"));
    // Nothing changed by the refused requests.
    let read = app.get(&path, &org_admin.token).await.expect(200);
    assert_eq!(read.body["phone"], json!("044-111-2222"));
    assert_eq!(read.body["ward_code"], json!("14135"));
}

async fn directory_search(app: TestApp) {
    let admin = app.system_admin().await;
    let a = app
        .post("/api/v1/organizations", &admin.token, json!({"kind": "clinic", "name": "川崎みなと在宅クリニック", "name_kana": "カワサキミナトザイタククリニック", "ward_code": "14131", "services": ["24h_visits", "terminal_care"]}))
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(
        "/api/v1/organizations",
        &admin.token,
        json!({"kind": "clinic", "name": "Saiwai Home Clinic", "ward_code": "14132", "services": ["24h_visits"]}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/organizations",
        &admin.token,
        json!({"kind": "pharmacy", "name": "川崎みなと薬局", "ward_code": "14131"}),
    )
    .await
    .expect(201);
    let ids = |res: &crate::helpers::TestResponse| -> Vec<String> {
        res.body["items"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap().to_string()).collect()
    };
    let t = &admin.token;
    assert_eq!(
        ids(&app.get("/api/v1/organizations?kind=clinic&ward=14131", t).await.expect(200)),
        ["川崎みなと在宅クリニック"]
    );
    assert_eq!(
        ids(&app.get("/api/v1/organizations?service=terminal_care", t).await.expect(200)),
        ["川崎みなと在宅クリニック"]
    );
    assert_eq!(ids(&app.get("/api/v1/organizations?service=24h_visits", t).await.expect(200)).len(), 2);
    assert_eq!(ids(&app.get("/api/v1/organizations?q=みなと", t).await.expect(200)).len(), 2);
    assert_eq!(ids(&app.get("/api/v1/organizations?q=saiwai", t).await.expect(200)), ["Saiwai Home Clinic"]);
    assert_eq!(
        ids(&app.get("/api/v1/organizations?q=カワサキミナト", t).await.expect(200)),
        ["川崎みなと在宅クリニック"]
    );
    assert_eq!(ids(&app.get("/api/v1/organizations?q=100%25", t).await.expect(200)).len(), 0);
    // Pagination walks every organisation once.
    let mut seen = Vec::new();
    let mut path = "/api/v1/organizations?limit=2".to_string();
    loop {
        let page = app.get(&path, t).await.expect(200);
        seen.extend(ids(&page));
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/organizations?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    let _ = a;
}

async fn users_edit_themselves_and_admins_edit_users(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "care_management_office", "高津ケアプランセンター", Some("14134")).await;
    let org_admin = app.person(&admin, &org, "care_manager", "org_admin").await;
    let cm = app.person(&org_admin, &org, "care_manager", "member").await;
    let path = format!("/api/v1/users/{}", cm.id);
    // Own profile: name and language, not role.
    let res = app.patch(&path, &cm.token, json!({"name": "佐藤 ケアマネ", "locale": "en"}), None).await.expect(200);
    assert_eq!(res.body["name"], json!("佐藤 ケアマネ"));
    assert_eq!(res.body["locale"], json!("en"));
    app.patch(&path, &cm.token, json!({"role": "org_admin"}), None).await.expect(403);
    // The organisation's admin changes the role; only a system admin grants system_admin.
    app.patch(&path, &org_admin.token, json!({"role": "org_admin"}), None).await.expect(200);
    app.patch(&path, &org_admin.token, json!({"role": "system_admin"}), None).await.expect(403);
    // Another organisation's member cannot.
    let other_org = app.organization(&admin, "clinic", "他院", None).await;
    let stranger = app.person(&admin, &other_org, "physician", "member").await;
    app.patch(&path, &stranger.token, json!({"name": "x"}), None).await.expect(403);
    // Nobody changes their own role, system administrators included; the last system
    // administrator cannot be deactivated.
    app.patch(&format!("/api/v1/users/{}", admin.id), &admin.token, json!({"role": "member"}), None).await.expect(403);
    app.patch(&format!("/api/v1/users/{}", admin.id), &admin.token, json!({"active": false}), None).await.expect(409);
    // Deactivated accounts disappear from the directory for outsiders.
    app.patch(&path, &org_admin.token, json!({"active": false}), None).await.expect(200);
    app.get(&path, &stranger.token).await.expect(404);
    app.get(&path, &org_admin.token).await.expect(200);
}

/// Nobody changes their own profession or role (audited), and professions fit the kind of the
/// organisation: a care-management office has no physicians.
async fn professions_are_not_self_asserted(app: TestApp) {
    let t = team(&app, "14135").await;
    let office_admin = app.person(&t.admin, &t.care_office, "care_manager", "org_admin").await;
    let me = format!("/api/v1/users/{}", office_admin.id);
    for body in [json!({"profession": "physician"}), json!({"role": "member"}), json!({"profession": "other"})] {
        let res = app.patch(&me, &office_admin.token, body, None).await.expect(403);
        assert_eq!(res.problem_type(), "/problems/forbidden");
    }
    assert_eq!(denied_events(&app, &office_admin.id, "user").await, 3, "each attempt is audited");
    let mine = app.get(&me, &office_admin.token).await.expect(200);
    assert_eq!(
        (mine.body["profession"].clone(), mine.body["role"].clone()),
        (json!("care_manager"), json!("org_admin"))
    );
    // Their own name and language stay theirs; resending the current values is no change.
    app.patch(&me, &office_admin.token, json!({"name": "管理 花子", "profession": "care_manager"}), None)
        .await
        .expect(200);
    // …and a care manager still cannot break the glass.
    app.post(
        &format!("/api/v1/patients/{}/emergency-access", t.patient_id),
        &office_admin.token,
        json!({"reason": "夜間に救急搬送の連絡あり、既往歴の確認のため"}),
    )
    .await
    .expect(403);
    let sysadmin = format!("/api/v1/users/{}", t.admin.id);
    app.patch(&sysadmin, &t.admin.token, json!({"profession": "physician"}), None).await.expect(403);

    // A care-management office has no physicians: not at creation, not by an edit.
    let body = json!({"email": "doc@example.jp", "name": "医師", "profession": "physician", "password": PASSWORD});
    let res = app
        .post(&format!("/api/v1/organizations/{}/users", t.care_office), &office_admin.token, body.clone())
        .await
        .expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("profession"));
    assert_eq!(res.body["errors"][0]["code"], json!("not_in_organization_kind"));
    app.post(&format!("/api/v1/organizations/{}/users", t.care_office), &t.admin.token, body).await.expect(422);
    let cm = format!("/api/v1/users/{}", t.care_manager.id);
    let res = app.patch(&cm, &office_admin.token, json!({"profession": "physician"}), None).await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("profession"));
    let res = app
        .patch(&format!("/api/v1/users/{}", t.nurse.id), &t.admin.token, json!({"profession": "pharmacist"}), None)
        .await
        .expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("profession"));
    // A profession that fits is fine.
    app.patch(&cm, &office_admin.token, json!({"profession": "other"}), None).await.expect(200);
}

/// `role` and `totp_enabled` (like `email`) are for the person and their administrators only.
async fn account_details_are_for_the_person_and_their_admins(app: TestApp) {
    let t = team(&app, "14136").await;
    let station_admin = app.person(&t.admin, &t.nurse_station, "nurse", "org_admin").await;
    let nurse = format!("/api/v1/users/{}", t.nurse.id);
    let listing = format!("/api/v1/organizations/{}/users", t.nurse_station);
    let private = ["email", "role", "totp_enabled", "flag_notifications"];
    // A colleague of another organisation sees the directory entry only.
    let seen = app.get(&nurse, &t.care_manager.token).await.expect(200);
    for field in private {
        assert!(seen.body.get(field).is_none(), "{field} shown to an outsider: {}", seen.text);
    }
    assert_eq!(seen.body["profession"], json!("nurse"));
    let listed = app.get(&listing, &t.care_manager.token).await.expect(200);
    for u in listed.body["items"].as_array().unwrap() {
        for field in private {
            assert!(u.get(field).is_none(), "{field} listed to an outsider: {u}");
        }
    }
    // A colleague of the same organisation too, except for their own entry in the listing.
    let colleague = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    let seen = app.get(&nurse, &colleague.token).await.expect(200);
    assert!(seen.body.get("role").is_none(), "role shown to a colleague: {}", seen.text);
    let listed = app.get(&listing, &colleague.token).await.expect(200);
    for u in listed.body["items"].as_array().unwrap() {
        let own = u["id"] == json!(colleague.id);
        assert_eq!(u.get("role").is_some(), own, "{u}");
        assert_eq!(u.get("totp_enabled").is_some(), own, "{u}");
    }
    // The person, their organisation's admin and system admins see everything.
    for token in [&t.nurse.token, &station_admin.token, &t.admin.token] {
        let seen = app.get(&nurse, token).await.expect(200);
        for field in private {
            assert!(seen.body.get(field).is_some(), "{field} missing: {}", seen.text);
        }
        assert_eq!(seen.body["role"], json!("member"));
        assert_eq!(seen.body["totp_enabled"], json!(false));
    }
    let listed = app.get(&listing, &station_admin.token).await.expect(200);
    assert!(listed.body["items"].as_array().unwrap().iter().all(|u| u["role"].is_string()));
}

/// Deactivating an organisation takes its people out at once: sessions, sign-in, access,
/// alerts; the lead of each team they are on is told.
async fn deactivating_an_organisation_takes_its_people_out(app: TestApp) {
    let t = team(&app, "14137").await;
    let base = format!("/api/v1/patients/{}", t.patient_id);
    let clinic = app.organization(&t.admin, "clinic", "麻生在宅クリニック", Some("14137")).await;
    let backup = app.person(&t.admin, &clinic, "physician", "member").await;
    app.post(
        &format!("{base}/care-team"),
        &t.care_manager.token,
        json!({"user_id": backup.id, "role": "backup_physician"}),
    )
    .await
    .expect(201);
    app.get(&base, &t.nurse.token).await.expect(200);
    let station = format!("/api/v1/organizations/{}", t.nurse_station);
    // Not for the organisation's own admin.
    let station_admin = app.person(&t.admin, &t.nurse_station, "nurse", "org_admin").await;
    app.patch(&station, &station_admin.token, json!({"active": false}), None).await.expect(403);

    let res = app.patch(&station, &t.admin.token, json!({"active": false}), None).await.expect(200);
    assert_eq!(res.body["active"], json!(false));
    // Sessions end at once: access and refresh tokens alike.
    app.get(&base, &t.nurse.token).await.expect(401);
    app.get("/api/v1/me", &station_admin.token).await.expect(401);
    let refresh = app
        .call("POST", "/api/v1/auth/refresh", None, Some(&json!({"refresh_token": t.nurse.refresh_token})), &[])
        .await;
    assert_eq!(refresh.status, 401, "{}", refresh.text);
    // Sign-in is refused exactly as a wrong password is.
    let refused = app.login(&t.nurse.email, PASSWORD, None).await.expect(401);
    let wrong = app.login(&t.care_manager.email, "not-the-password-at-all", None).await.expect(401);
    assert_eq!(refused.text, wrong.text);
    // The team shows the membership as not in force; the lead is told, once.
    let members = app.get(&format!("{base}/care-team"), &t.care_manager.token).await.expect(200);
    let nurse =
        members.body["items"].as_array().unwrap().iter().find(|m| m["user_id"] == json!(t.nurse.id)).unwrap().clone();
    assert_eq!((nurse["active"].clone(), nurse["organization_active"].clone()), (json!(true), json!(false)));
    let mails = emails_to(&app, &t.care_manager.id, "organization_deactivated").await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].1.contains("（訪問看護ステーション）"), "{}", mails[0].1);
    assert!(mails[0].1.contains("この事業所の 1 名"), "{}", mails[0].1);
    assert!(!mails[0].1.contains("川崎訪問看護ステーション"), "{}", mails[0].1);

    // Alerts go past them: a flag reaches the team without the nurse.
    app.post(
        &format!("{base}/flags"),
        &backup.token,
        json!({"severity": "emergency", "reason": "呼びかけへの反応が乏しい"}),
    )
    .await
    .expect(201);
    assert_eq!(emails_to(&app, &t.care_manager.id, "flag_raised").await.len(), 1);
    assert!(emails_to(&app, &t.nurse.id, "flag_raised").await.is_empty());
    // The caseload no longer counts them.
    let (size, _) = caseload_entry(&app, &t.patient_id).await;
    assert_eq!(size, 2);

    // Deactivating the clinic of the backup physician: the lead hears again; the backup hears no
    // more, and the team loses its physician in the caseload.
    app.patch(&format!("/api/v1/organizations/{clinic}"), &t.admin.token, json!({"active": false}), None)
        .await
        .expect(200);
    assert_eq!(emails_to(&app, &t.care_manager.id, "organization_deactivated").await.len(), 2);
    let (size, _) = caseload_entry(&app, &t.patient_id).await;
    assert_eq!(size, 1);

    // Back in service: they sign in again (sessions stay ended) and have their access back.
    app.patch(&station, &t.admin.token, json!({"active": true}), None).await.expect(200);
    app.get(&base, &t.nurse.token).await.expect(401);
    let tokens = app.login(&t.nurse.email, PASSWORD, None).await.expect(200);
    app.get(&base, tokens.body["access_token"].as_str().unwrap()).await.expect(200);
    assert_eq!(caseload_entry(&app, &t.patient_id).await.0, 2);

    // The organisation holding every system administrator cannot be deactivated.
    let me = app.get(&format!("/api/v1/users/{}", t.admin.id), &t.admin.token).await.expect(200);
    let own = me.body["organization_id"].as_str().unwrap().to_string();
    app.patch(&format!("/api/v1/organizations/{own}"), &t.admin.token, json!({"active": false}), None)
        .await
        .expect(409);
    app.get("/api/v1/me", &t.admin.token).await.expect(200);
}

async fn caseload_entry(app: &TestApp, patient_id: &str) -> (i32, bool) {
    use diesel::prelude::*;
    use renkei::db::schema::caseload_entries::dsl as c;
    let id = patient_id.to_string();
    app.db
        .run(move |conn| {
            Ok(c::caseload_entries.find(id).select((c::team_size, c::has_primary_physician)).first(conn)?)
        })
        .await
        .unwrap()
}

crate::both_backends!(
    professions_are_not_self_asserted,
    account_details_are_for_the_person_and_their_admins,
    deactivating_an_organisation_takes_its_people_out,
    wards_are_kawasakis_seven,
    system_admin_builds_an_organisation_and_its_admin,
    org_admin_edits_own_organisation_with_versions,
    directory_search,
    users_edit_themselves_and_admins_edit_users,
);
