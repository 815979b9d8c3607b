//! Sign-in and tokens: RFC 8725 access tokens, rotating refresh tokens, lockout, TOTP.

use base64::Engine;
use serde_json::json;

use crate::helpers::{totp_code, TestApp, JWT_SECRET, PASSWORD};

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn sign(header: &serde_json::Value, claims: &serde_json::Value, secret: &str) -> String {
    let header: jsonwebtoken::Header = serde_json::from_value(header.clone()).unwrap();
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// Asserts the answer to a bad bearer token: 401, `WWW-Authenticate: Bearer error="invalid_token"`.
async fn assert_invalid_token(app: &TestApp, token: &str) {
    let res = app.get("/api/v1/me", token).await.expect(401);
    assert_eq!(res.header("www-authenticate").as_deref(), Some(r#"Bearer error="invalid_token""#));
    assert_eq!(res.problem_type(), "/problems/invalid-token");
}

async fn bad_tokens_are_refused(app: TestApp) {
    let admin = app.system_admin().await;
    app.get("/api/v1/me", &admin.token).await.expect(200);
    // Claims of a real session, to show that only the token's form is at fault.
    let claims = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&admin.token).unwrap().claims;
    let now = chrono::Utc::now().timestamp();

    assert_invalid_token(&app, "not-a-token").await;
    // Wrong key.
    assert_invalid_token(&app, &sign(&json!({"alg": "HS256"}), &claims, "another-secret-another-secret-another")).await;
    // Expired a minute ago.
    let mut expired = claims.clone();
    expired["iat"] = json!(now - 1000);
    expired["exp"] = json!(now - 60);
    assert_invalid_token(&app, &sign(&json!({"alg": "HS256"}), &expired, JWT_SECRET)).await;
    // alg: none.
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims));
    assert_invalid_token(&app, &none).await;
    // Another HMAC algorithm with the right key is still refused: one algorithm only.
    assert_invalid_token(&app, &sign(&json!({"alg": "HS512"}), &claims, JWT_SECRET)).await;
    // Wrong audience, wrong issuer, wrong purpose, missing expiry.
    for (field, value) in [("aud", json!("someone-else")), ("iss", json!("evil")), ("typ", json!("refresh"))] {
        let mut c = claims.clone();
        c[field] = value;
        assert_invalid_token(&app, &sign(&json!({"alg": "HS256"}), &c, JWT_SECRET)).await;
    }
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_invalid_token(&app, &sign(&json!({"alg": "HS256"}), &no_exp, JWT_SECRET)).await;
    // No token at all.
    let res = app.call("GET", "/api/v1/me", None, None, &[]).await.expect(401);
    assert!(res.header("www-authenticate").is_some());
}

async fn access_token_carries_identity_only(app: TestApp) {
    let admin = app.system_admin().await;
    let claims = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&admin.token).unwrap().claims;
    let keys: Vec<&String> = claims.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["aud", "exp", "iat", "iss", "jti", "sid", "sub", "typ"]);
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 900);
}

async fn refresh_rotates_and_reuse_revokes_the_family(app: TestApp) {
    let admin = app.system_admin().await;
    let first = admin.refresh_token.clone();
    let res =
        app.call("POST", "/api/v1/auth/refresh", None, Some(&json!({"refresh_token": first})), &[]).await.expect(200);
    let second = res.body["refresh_token"].as_str().unwrap().to_string();
    let access = res.body["access_token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    app.get("/api/v1/me", &access).await.expect(200);

    // The first token comes back (stolen copy): refused, and the whole family is revoked.
    app.call("POST", "/api/v1/auth/refresh", None, Some(&json!({"refresh_token": first})), &[]).await.expect(401);
    app.call("POST", "/api/v1/auth/refresh", None, Some(&json!({"refresh_token": second})), &[]).await.expect(401);
    assert_invalid_token(&app, &access).await;
    assert_invalid_token(&app, &admin.token).await;
    // An unknown refresh token.
    app.call("POST", "/api/v1/auth/refresh", None, Some(&json!({"refresh_token": "nope"})), &[]).await.expect(401);
}

async fn failed_sign_ins_look_alike_and_lock(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "visiting_nurse_station", "川崎訪問看護ステーション", Some("14131")).await;
    let nurse = app.person(&admin, &org, "nurse", "member").await;

    let wrong = app.login(&nurse.email, "wrong-password-123", None).await.expect(401);
    let unknown = app.login("nobody@example.jp", "wrong-password-123", None).await.expect(401);
    assert_eq!(wrong.text, unknown.text, "unknown user and wrong password answer alike");
    app.login(&nurse.email, "wrong-password-456", None).await.expect(401);
    app.login(&nurse.email, "wrong-password-789", None).await.expect(401);
    // The fourth attempt, even with the right password, waits.
    let locked = app.login(&nurse.email, PASSWORD, None).await.expect(429);
    let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    // An unknown address that failed as often is locked the same way.
    for _ in 0..3 {
        app.login("nobody@example.jp", "wrong-password-123", None).await;
    }
    let unknown_locked = app.login("nobody@example.jp", "wrong-password-123", None).await.expect(429);
    assert_eq!(unknown_locked.body["type"], locked.body["type"]);
    // The existing session is untouched: a stranger slows sign-in down, not the signed-in nurse.
    app.get("/api/v1/me", &nurse.token).await.expect(200);
}

async fn logout_password_change_and_deactivation_end_tokens(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "clinic", "中原在宅クリニック", Some("14133")).await;
    let doctor = app.person(&admin, &org, "physician", "member").await;

    // Logout ends that session's access and refresh tokens.
    app.call("POST", "/api/v1/auth/logout", Some(&doctor.token), None, &[]).await.expect(204);
    assert_invalid_token(&app, &doctor.token).await;
    app.call("POST", "/api/v1/auth/refresh", None, Some(&json!({"refresh_token": doctor.refresh_token})), &[])
        .await
        .expect(401);

    // Password change ends every session and hands back a new one.
    let a = app.login(&doctor.email, PASSWORD, None).await.expect(200);
    let b = app.login(&doctor.email, PASSWORD, None).await.expect(200);
    let token_a = a.body["access_token"].as_str().unwrap();
    let token_b = b.body["access_token"].as_str().unwrap();
    app.post(
        "/api/v1/me/password",
        token_a,
        json!({"current_password": "wrong-one-123456", "new_password": "morning-river-cedar-tall"}),
    )
    .await
    .expect(422);
    app.post("/api/v1/me/password", token_a, json!({"current_password": PASSWORD, "new_password": "password1234"}))
        .await
        .expect(422);
    let changed = app
        .post(
            "/api/v1/me/password",
            token_a,
            json!({"current_password": PASSWORD, "new_password": "morning-river-cedar-tall"}),
        )
        .await
        .expect(200);
    assert_invalid_token(&app, token_a).await;
    assert_invalid_token(&app, token_b).await;
    app.get("/api/v1/me", changed.body["access_token"].as_str().unwrap()).await.expect(200);
    app.login(&doctor.email, PASSWORD, None).await.expect(401);
    let c = app.login(&doctor.email, "morning-river-cedar-tall", None).await.expect(200);

    // Deactivation by an administrator ends the sessions at once.
    let token_c = c.body["access_token"].as_str().unwrap().to_string();
    app.patch(&format!("/api/v1/users/{}", doctor.id), &admin.token, json!({"active": false}), None).await.expect(200);
    assert_invalid_token(&app, &token_c).await;
    app.login(&doctor.email, "morning-river-cedar-tall", None).await.expect(401);
}

async fn totp_enrol_confirm_sign_in_and_replay(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "pharmacy", "幸調剤薬局", Some("14132")).await;
    let pharmacist = app.person(&admin, &org, "pharmacist", "member").await;

    app.post("/api/v1/me/totp", &pharmacist.token, json!({"password": "wrong-password-123"})).await.expect(422);
    let enrol = app.post("/api/v1/me/totp", &pharmacist.token, json!({"password": PASSWORD})).await.expect(200);
    let secret = enrol.body["secret"].as_str().unwrap().to_string();
    assert!(enrol.body["otpauth_url"].as_str().unwrap().starts_with("otpauth://totp/"));
    app.post("/api/v1/me/totp/confirm", &pharmacist.token, json!({"code": "000000"})).await.expect(422);
    let code = totp_code(&secret, 0);
    let me = app.post("/api/v1/me/totp/confirm", &pharmacist.token, json!({"code": code})).await.expect(200);
    assert_eq!(me.body["totp_enabled"], json!(true));

    // Password alone no longer signs in; the same code cannot be used twice.
    app.login(&pharmacist.email, PASSWORD, None).await.expect(401);
    app.login(&pharmacist.email, PASSWORD, Some(&code)).await.expect(401);
    let next = totp_code(&secret, 1);
    let signed_in = app.login(&pharmacist.email, PASSWORD, Some(&next)).await.expect(200);
    let token = signed_in.body["access_token"].as_str().unwrap();
    // Turning it off needs a fresh code, and the used one is refused.
    let res = app.call("DELETE", "/api/v1/me/totp", Some(token), Some(&json!({"code": next})), &[]).await;
    assert_eq!(res.status, 422);
}

async fn system_admin_must_enrol_totp(app: TestApp) {
    // An administrator made by the CLI path, without two-factor sign-in yet.
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "city_ward_office", "川崎区役所", Some("14131")).await;
    let res = app
        .post(
            &format!("/api/v1/organizations/{org}/users"),
            &admin.token,
            json!({"email": "second-admin@example.jp", "name": "第二管理者", "profession": "other", "role": "system_admin", "password": PASSWORD}),
        )
        .await
        .expect(201);
    let second_id = res.body["id"].as_str().unwrap().to_string();
    let token = app.login("second-admin@example.jp", PASSWORD, None).await.expect(200).body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = app.get("/api/v1/organizations", &token).await.expect(403);
    assert_eq!(refused.problem_type(), "/problems/two-factor-required");
    app.get("/api/v1/me", &token).await.expect(200);
    let enrol = app.post("/api/v1/me/totp", &token, json!({"password": PASSWORD})).await.expect(200);
    let secret = enrol.body["secret"].as_str().unwrap();
    app.post("/api/v1/me/totp/confirm", &token, json!({"code": totp_code(secret, 0)})).await.expect(200);
    app.get("/api/v1/organizations", &token).await.expect(200);
    // And cannot switch it off again.
    let res =
        app.call("DELETE", "/api/v1/me/totp", Some(&token), Some(&json!({"code": totp_code(secret, 1)})), &[]).await;
    assert_eq!(res.status, 403);
    let me = app.get(&format!("/api/v1/users/{second_id}"), &admin.token).await.expect(200);
    assert_eq!(me.body["totp_enabled"], json!(true));
}

async fn password_rules(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "clinic", "高津ホームクリニック", Some("14134")).await;
    for (password, code) in
        [("short-pass", "too_short"), ("password1234", "too_common"), ("QWERTY123456", "too_common")]
    {
        let res = app
            .post(
                &format!("/api/v1/organizations/{org}/users"),
                &admin.token,
                json!({"email": "x@example.jp", "name": "x", "profession": "nurse", "password": password}),
            )
            .await
            .expect(422);
        assert_eq!(res.body["errors"][0]["field"], json!("password"));
        assert_eq!(res.body["errors"][0]["code"], json!(code));
    }
    // No composition rules: a long Japanese passphrase is fine.
    app.post(
        &format!("/api/v1/organizations/{org}/users"),
        &admin.token,
        json!({"email": "y@example.jp", "name": "y", "profession": "nurse", "password": "かわさきの在宅ケアをつなぐ"}),
    )
    .await
    .expect(201);
    app.login("y@example.jp", "かわさきの在宅ケアをつなぐ", None).await.expect(200);
}

crate::both_backends!(
    bad_tokens_are_refused,
    access_token_carries_identity_only,
    refresh_rotates_and_reuse_revokes_the_family,
    failed_sign_ins_look_alike_and_lock,
    logout_password_change_and_deactivation_end_tokens,
    totp_enrol_confirm_sign_in_and_replay,
    system_admin_must_enrol_totp,
    password_rules,
);
