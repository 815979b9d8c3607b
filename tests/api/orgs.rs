//! Organisations, their people, and wards.

use serde_json::json;

use crate::helpers::{TestApp, PASSWORD};

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
    let res = app.patch(&path, &org_admin.token, json!({"name_kana": "ﾀﾏﾔｯｷｮｸ"}), None).await.expect(422);
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
    // The last system administrator cannot be demoted.
    app.patch(&format!("/api/v1/users/{}", admin.id), &admin.token, json!({"role": "member"}), None).await.expect(409);
    // Deactivated accounts disappear from the directory for outsiders.
    app.patch(&path, &org_admin.token, json!({"active": false}), None).await.expect(200);
    app.get(&path, &stranger.token).await.expect(404);
    app.get(&path, &org_admin.token).await.expect(200);
}

crate::both_backends!(
    wards_are_kawasakis_seven,
    system_admin_builds_an_organisation_and_its_admin,
    org_admin_edits_own_organisation_with_versions,
    directory_search,
    users_edit_themselves_and_admins_edit_users,
);
