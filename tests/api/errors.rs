//! Every error, the framework's own included, is RFC 9457 problem+json with a stable type.

use serde_json::json;

use crate::helpers::TestApp;

fn assert_problem(res: &crate::helpers::TestResponse, status: u16, slug: &str) {
    assert_eq!(res.status, status, "{}", res.text);
    assert_eq!(res.header("content-type").as_deref(), Some("application/problem+json"));
    assert_eq!(res.body["type"], json!(format!("/problems/{slug}")));
    assert_eq!(res.body["status"], json!(status));
    assert!(res.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

async fn framework_errors_are_problems(app: TestApp) {
    let admin = app.system_admin().await;
    let t = Some(admin.token.as_str());

    // Unknown route.
    assert_problem(&app.call("GET", "/api/v1/no-such-thing", t, None, &[]).await, 404, "not-found");
    assert_problem(&app.call("GET", "/nowhere", None, None, &[]).await, 404, "not-found");
    // Wrong method: 405 with Allow.
    let res = app.call("DELETE", "/api/v1/organizations", t, None, &[]).await;
    assert_problem(&res, 405, "method-not-allowed");
    assert_eq!(res.header("allow").as_deref(), Some("GET, POST"));
    // Malformed JSON.
    let url = app.url("/api/v1/organizations");
    let raw = |body: &'static str, content_type: &'static str| {
        app.client.post(&url).bearer_auth(&admin.token).header("content-type", content_type).body(body).send()
    };
    let res = raw("{\"kind\": ", "application/json").await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    // Wrong content type.
    let res = raw("kind=clinic", "application/x-www-form-urlencoded").await.unwrap();
    assert_eq!(res.status(), 415);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    // Too large.
    let big = "あ".repeat(100_000);
    let res = app.post("/api/v1/organizations", &admin.token, json!({"kind": "clinic", "name": big})).await;
    assert_problem(&res, 413, "payload-too-large");
    // Unknown field, named.
    let res = app
        .post("/api/v1/organizations", &admin.token, json!({"kind": "clinic", "name": "x", "author_id": "me"}))
        .await;
    assert_problem(&res, 422, "validation");
    assert_eq!(res.body["errors"][0]["field"], json!("author_id"));
    assert_eq!(res.body["errors"][0]["code"], json!("unknown_field"));
    // Missing field, named.
    let res = app.post("/api/v1/organizations", &admin.token, json!({"kind": "clinic"})).await;
    assert_problem(&res, 422, "validation");
    assert_eq!(res.body["errors"][0]["field"], json!("name"));
    // Bad enum value.
    let res = app.post("/api/v1/organizations", &admin.token, json!({"kind": "spaceport", "name": "x"})).await;
    assert_problem(&res, 422, "validation");
    // Bad query parameter.
    let res = app.get("/api/v1/organizations?kind=spaceport", &admin.token).await;
    assert_problem(&res, 422, "validation");
    let res = app.get("/api/v1/organizations?limit=0", &admin.token).await;
    assert_problem(&res, 422, "validation");
    let res = app.get("/api/v1/organizations?cursor=%%%", &admin.token).await;
    assert!(res.status == 422 || res.status == 400, "{}", res.text);
    // Any base64url cursor is a position, even bytes no issued cursor holds (here a NUL, which
    // PostgreSQL text cannot store).
    for cursor in ["AA", "_w", "AAAB"] {
        app.get(&format!("/api/v1/organizations?cursor={cursor}"), &admin.token).await.expect(200);
    }
    // Nothing was created by any of the above.
    let list = app.get("/api/v1/organizations", &admin.token).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1, "only the operator organisation exists");
}

async fn details_follow_accept_language(app: TestApp) {
    let ja = app.call("GET", "/api/v1/me", None, None, &[]).await;
    let en = app.call("GET", "/api/v1/me", None, None, &[("accept-language", "en-GB,en;q=0.9")]).await;
    assert_eq!(ja.status, 401);
    assert_eq!(en.status, 401);
    assert_eq!(ja.body["type"], en.body["type"]);
    assert!(ja.body["detail"].as_str().unwrap().contains("トークン"));
    assert!(en.body["detail"].as_str().unwrap().contains("token"));
    // Headers survive the re-rendering.
    assert_eq!(en.header("www-authenticate").as_deref(), Some(r#"Bearer error="invalid_token""#));
    assert_eq!(en.header("x-content-type-options").as_deref(), Some("nosniff"));
}

async fn no_internals_leak(app: TestApp) {
    let admin = app.system_admin().await;
    // A path parameter full of SQL gets a plain 404, nothing more.
    let res = app.get("/api/v1/organizations/'%20OR%201=1--", &admin.token).await.expect(404);
    for needle in ["SELECT", "diesel", "sqlite", "postgres", "panicked", ".rs:"] {
        assert!(!res.text.to_lowercase().contains(&needle.to_lowercase()), "{needle} leaked: {}", res.text);
    }
}

/// No text holds a NUL (PostgreSQL cannot even compare text with one): ids and codes with one
/// name nothing, on both backends alike.
async fn nul_characters_name_nothing(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "care_management_office", "中原ケアプランセンター", Some("14133")).await;
    let cm = app.person(&admin, &org, "care_manager", "member").await;
    for path in ["/api/v1/patients/%00", "/api/v1/users/a%00b", "/api/v1/organizations/%00/users", "/api/v1/flags/%00"]
    {
        assert_problem(&app.get(path, &cm.token).await, 404, "not-found");
    }
    for path in ["/api/v1/patients?ward=%00", "/api/v1/organizations?ward=1413%00"] {
        let res = app.get(path, &cm.token).await;
        assert_problem(&res, 422, "validation");
        assert_eq!(res.body["errors"][0]["code"], json!("invalid_query"));
    }
    let patient = json!({
        "family_name": "川崎", "given_name": "ハル", "family_name_kana": "カワサキ", "given_name_kana": "ハル",
        "birth_date": "1941-04-03", "sex": "female", "ward_code": "14133\u{0}", "care_level": "care_2"
    });
    let res = app.post("/api/v1/patients", &cm.token, patient).await;
    assert_problem(&res, 422, "validation");
    assert_eq!(res.body["errors"][0]["code"], json!("unknown_ward"));
    let res = app.login(&format!("{}\u{0}", cm.email), crate::helpers::PASSWORD, None).await;
    assert_problem(&res, 401, "unauthorized");
    let id = app
        .post(
            "/api/v1/patients",
            &cm.token,
            json!({
                "family_name": "川崎", "given_name": "ハル", "family_name_kana": "カワサキ", "given_name_kana": "ハル",
                "birth_date": "1941-04-03", "sex": "female", "ward_code": "14133", "care_level": "care_2"
            }),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .post(&format!("/api/v1/patients/{id}/care-team"), &cm.token, json!({"user_id": "\u{0}", "role": "other"}))
        .await;
    assert_problem(&res, 422, "validation");
    assert_eq!(res.body["errors"][0]["code"], json!("unknown_user"));
}

crate::both_backends!(
    framework_errors_are_problems,
    details_follow_accept_language,
    no_internals_leak,
    nul_characters_name_nothing
);
