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
    let res = app.post("/api/v1/organizations", &admin.token, json!({"kind": "clinic", "name": "x", "author_id": "me"})).await;
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

crate::both_backends!(framework_errors_are_problems, details_follow_accept_language, no_internals_leak);
