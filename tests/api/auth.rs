//! Sign-in and tokens: RFC 8725 access tokens, rotating refresh tokens, lockout, TOTP.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use diesel::prelude::*;
use futures_util::future::join_all;
use renkei::auth::throttle;
use renkei::db::schema::{email_outbox, login_throttle};
use serde_json::json;

use crate::helpers::{totp_code, Backend, TestApp, TestResponse, JWT_SECRET, PASSWORD};

const MISSING: &str = "01900000-0000-7000-8000-0000000000aa";

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

/// Recovery codes: made on asking (password first, only with two-factor sign-in on), shown once,
/// each signs in once in place of the app's code however it is typed, new ones end the old, and
/// turning two-factor sign-in off ends them all.
async fn recovery_codes_sign_in_once_each(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "visiting_nurse_station", "宮前訪問看護", Some("14136")).await;
    let nurse = app.person(&admin, &org, "nurse", "member").await;
    let path = "/api/v1/me/totp/recovery-codes";
    // Not before two-factor sign-in is on.
    app.post(path, &nurse.token, json!({"password": PASSWORD})).await.expect(409);
    let state = app.get(path, &nurse.token).await.expect(200);
    assert_eq!(state.body, json!({"remaining": 0, "created_at": null}));

    let enrol = app.post("/api/v1/me/totp", &nurse.token, json!({"password": PASSWORD})).await.expect(200);
    let secret = enrol.body["secret"].as_str().unwrap().to_string();
    app.post("/api/v1/me/totp/confirm", &nurse.token, json!({"code": totp_code(&secret, 0)})).await.expect(200);
    let wrong = app.post(path, &nurse.token, json!({"password": "not-the-password"})).await.expect(422);
    assert_eq!(wrong.body["errors"][0]["field"], json!("password"));
    let made = app.post(path, &nurse.token, json!({"password": PASSWORD})).await.expect(201);
    assert_eq!(made.header("cache-control").as_deref(), Some("no-store"));
    let codes: Vec<String> =
        made.body["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert_eq!(codes.len(), 10);
    assert_eq!(codes.iter().collect::<std::collections::BTreeSet<_>>().len(), 10, "all different");
    assert_eq!(app.get(path, &nurse.token).await.expect(200).body["remaining"], json!(10));

    // A code signs in once; typed in lower case, without hyphens, in full width: the same code.
    app.login(&nurse.email, PASSWORD, Some(&codes[0])).await.expect(200);
    app.login(&nurse.email, PASSWORD, Some(&codes[0])).await.expect(401);
    app.login(&nurse.email, PASSWORD, Some(&codes[1].replace('-', "").to_lowercase())).await.expect(200);
    let wide: String = codes[2].chars().map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap()).collect();
    app.login(&nurse.email, PASSWORD, Some(&wide)).await.expect(200);
    // Not without the password, and not someone else's.
    app.login(&nurse.email, "not-the-password", Some(&codes[3])).await.expect(401);
    let signed_in = app.login(&nurse.email, PASSWORD, Some(&codes[3])).await.expect(200);
    let token = signed_in.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(app.get(path, &token).await.expect(200).body["remaining"], json!(6));
    // The owner is told of each code used (a code used by someone else is a stolen one), with
    // what is left; a refused code is not "used".
    let told = crate::helpers::emails_to(&app, &nurse.id, "recovery_code_used").await;
    assert_eq!(told.len(), 4, "{told:?}");
    assert!(told[0].0.contains("回復コード"), "{}", told[0].0);
    assert!(told[0].1.contains("残りの回復コードは 9 個"), "{}", told[0].1);
    assert!(told[3].1.contains("残りの回復コードは 6 個"), "{}", told[3].1);

    // New codes end the old ones.
    let again = app.post(path, &token, json!({"password": PASSWORD})).await.expect(201);
    app.login(&nurse.email, PASSWORD, Some(&codes[4])).await.expect(401);
    let fresh = again.body["codes"][0].as_str().unwrap().to_string();
    assert!(!codes.contains(&fresh));
    // Turning two-factor sign-in off ends them all.
    let code = totp_code(&secret, 1);
    app.call("DELETE", "/api/v1/me/totp", Some(&token), Some(&json!({"code": code})), &[]).await.expect(204);
    assert_eq!(app.get(path, &token).await.expect(200).body, json!({"remaining": 0, "created_at": null}));
}

/// A person who lost both the phone and the recovery codes: an administrator of their
/// organisation resets their two-factor sign-in; their sessions end, they are told, and they
/// sign in with the password alone. Nobody else may, and nobody resets their own.
async fn an_administrator_resets_a_lost_second_factor(app: TestApp) {
    let system = app.system_admin().await;
    let org = app.organization(&system, "visiting_nurse_station", "高津訪問看護", Some("14134")).await;
    let admin = app.person(&system, &org, "nurse", "org_admin").await;
    let colleague = app.person(&system, &org, "nurse", "member").await;
    let nurse = app.person(&system, &org, "nurse", "member").await;
    let other_org = app.organization(&system, "visiting_nurse_station", "麻生訪問看護", Some("14137")).await;
    let other_admin = app.person(&system, &other_org, "nurse", "org_admin").await;
    let path = format!("/api/v1/users/{}/totp", nurse.id);
    let delete = |token: String| {
        let path = path.clone();
        let app = &app;
        async move { app.call("DELETE", &path, Some(&token), None, &[]).await }
    };
    // Not on yet.
    delete(admin.token.clone()).await.expect(409);
    let enrol = app.post("/api/v1/me/totp", &nurse.token, json!({"password": PASSWORD})).await.expect(200);
    let secret = enrol.body["secret"].as_str().unwrap().to_string();
    app.post("/api/v1/me/totp/confirm", &nurse.token, json!({"code": totp_code(&secret, 0)})).await.expect(200);
    app.post("/api/v1/me/totp/recovery-codes", &nurse.token, json!({"password": PASSWORD})).await.expect(201);
    app.login(&nurse.email, PASSWORD, None).await.expect(401);

    // A colleague who is no administrator: 403; another organisation's administrator: the 404 of
    // an account that does not exist; one's own: 403.
    delete(colleague.token.clone()).await.expect(403);
    let hidden = delete(other_admin.token.clone()).await.expect(404);
    let missing = app
        .call("DELETE", &format!("/api/v1/users/{MISSING}/totp"), Some(&other_admin.token), None, &[])
        .await
        .expect(404);
    assert_eq!(hidden.text, missing.text);
    app.call("DELETE", &format!("/api/v1/users/{}/totp", admin.id), Some(&admin.token), None, &[]).await.expect(403);
    app.get("/api/v1/me", &nurse.token).await.expect(200);

    delete(admin.token.clone()).await.expect(204);
    app.get("/api/v1/me", &nurse.token).await.expect(401);
    let back = app.login(&nurse.email, PASSWORD, None).await.expect(200);
    let token = back.body["access_token"].as_str().unwrap();
    let me = app.get("/api/v1/me", token).await.expect(200);
    assert_eq!(me.body["totp_enabled"], json!(false));
    let state = app.get("/api/v1/me/totp/recovery-codes", token).await.expect(200);
    assert_eq!(state.body["remaining"], json!(0));
    let told = crate::helpers::emails_to(&app, &nurse.id, "second_factor_reset").await;
    assert_eq!(told.len(), 1);
    assert!(told[0].0.contains("二要素認証がリセットされました"), "{:?}", told[0]);
    assert!(told[0].1.contains("訪問看護ステーションの看護師"), "the administrator by profession: {}", told[0].1);
    assert!(
        !told[0].1.contains(&admin.email) && !told[0].1.contains("山田"),
        "no name or address of the administrator"
    );
    // Twice: nothing left to reset.
    delete(admin.token.clone()).await.expect(409);
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

/// A sign-in from another client address (the loopback network has them all), as a stranger's
/// device would make it.
async fn login_from(app: &TestApp, ip: [u8; 4], email: &str, password: &str) -> TestResponse {
    let client = reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let body = json!({ "email": email, "password": password });
    let res = client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    let response = TestResponse { status, headers, text, body };
    crate::contract::check_response("POST", "/api/v1/auth/login", &response);
    response
}

/// Counts answers by status; panics on anything but 200, 401 and 429 (never 409 or 5xx).
fn tally(answers: &[TestResponse]) -> (usize, usize, usize) {
    for a in answers {
        assert!(matches!(a.status, 200 | 401 | 429), "sign-in answered {}: {}", a.status, a.text);
    }
    let count = |s: u16| answers.iter().filter(|a| a.status == s).count();
    (count(200), count(401), count(429))
}

const MAX: usize = throttle::MAX_FAILURES as usize;

async fn concurrent_attempts_are_compared_at_most_the_allowed_number(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "visiting_nurse_station", "宮前訪問看護ステーション", Some("14136")).await;
    let nurse = app.person(&admin, &org, "nurse", "member").await;

    // Eleven wrong passwords at once, and the right one a moment later within the same burst:
    // only three are compared, the rest (the right one included) wait.
    let wrong = (0..11).map(|i| {
        let email = nurse.email.clone();
        let app = &app;
        async move { app.login(&email, &format!("wrong-password-{i:03}"), None).await }
    });
    let right = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        app.login(&nurse.email, PASSWORD, None).await
    };
    let (mut answers, right) = tokio::join!(join_all(wrong), right);
    assert_eq!(right.status, 429, "the right password got in during the burst: {}", right.text);
    answers.push(right);
    assert_eq!(tally(&answers), (0, MAX, 12 - MAX));
    // Still locked afterwards, for the full minute: the burst did not erase its own lock.
    let after = app.login(&nurse.email, PASSWORD, None).await.expect(429);
    let retry: u64 = after.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 50, "retry-after {retry}: the lock was shortened");
    assert_eq!(after.header("content-type").as_deref(), Some("application/problem+json"));

    // An address never seen before, from a stranger's client: the twelve first failures race
    // to create its counter (PostgreSQL answered 409 here) and still only three are compared.
    let unknown = format!("nobody-{}@example.jp", crate::helpers::short_id());
    let burst = (0..12).map(|i| {
        let unknown = unknown.clone();
        let app = &app;
        async move { login_from(app, [127, 0, 0, 21], &unknown, &format!("wrong-password-{i:03}")).await }
    });
    let answers = join_all(burst).await;
    assert_eq!(tally(&answers), (0, MAX, 12 - MAX));
}

async fn a_lock_is_never_shortened(app: TestApp) {
    let key = throttle::email_key("locked-long@example.jp");
    // A lock an hour long (set by an operator, or a longer budget lock) is in force.
    let long = renkei::db::now() + chrono::Duration::hours(1);
    let k = key.clone();
    app.db
        .run(move |conn| {
            diesel::insert_into(login_throttle::table)
                .values((
                    login_throttle::email_key.eq(&k),
                    login_throttle::failures.eq(1),
                    login_throttle::lockouts.eq(0),
                    login_throttle::last_failure_at.eq(renkei::db::now()),
                    login_throttle::locked_until.eq(Some(long)),
                ))
                .execute(conn)?;
            // A failure below the limit, then one that reaches it (a one-minute lock), recorded
            // while the long lock is in force, as concurrent requests may.
            throttle::record_failure(conn, &[(k.clone(), throttle::ACCOUNT)])?;
            let locks = throttle::record_failure(conn, &[(k.clone(), throttle::ACCOUNT)])?;
            assert_eq!(locks.len(), 1);
            Ok(())
        })
        .await
        .unwrap();
    let k = key.clone();
    let until: Option<chrono::NaiveDateTime> = app
        .db
        .run(move |conn| {
            Ok(login_throttle::table
                .filter(login_throttle::email_key.eq(&k))
                .select(login_throttle::locked_until)
                .first(conn)?)
        })
        .await
        .unwrap();
    assert_eq!(until, Some(long), "the lock was shortened");
    // And sign-in answers with the long wait.
    let res = app.login("locked-long@example.jp", PASSWORD, None).await.expect(429);
    let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 3500, "retry-after {retry}");
}

/// Password spraying: one client trying many addresses, and many clients together.
async fn spraying_budgets_per_client_and_global(backend: Backend) {
    let app =
        TestApp::spawn_with(backend, &[("RENKEI_LOGIN_CLIENT_FAILURES", "5"), ("RENKEI_LOGIN_GLOBAL_FAILURES", "8")])
            .await;
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "clinic", "麻生在宅クリニック", Some("14137")).await;
    let nurse = app.person(&admin, &org, "nurse", "member").await;
    let address = |i: usize| format!("spray-{i}-{}@example.jp", crate::helpers::short_id());

    // One client, one try per address: the sixth address is refused, whichever it is.
    for i in 0..5 {
        login_from(&app, [127, 0, 0, 31], &address(i), "Summer-2026-password").await.expect(401);
    }
    let refused = login_from(&app, [127, 0, 0, 31], &address(5), "Summer-2026-password").await.expect(429);
    assert_eq!(refused.problem_type(), "/problems/too-many-requests");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 60, "retry-after {retry}");
    // Another client is not affected by that one's budget.
    login_from(&app, [127, 0, 0, 32], &address(6), "Summer-2026-password").await.expect(401);
    login_from(&app, [127, 0, 0, 32], &address(7), "Summer-2026-password").await.expect(401);
    // Eight failures of unknown clients in all: every unknown client now waits …
    login_from(&app, [127, 0, 0, 33], &address(8), "Summer-2026-password").await.expect(401);
    login_from(&app, [127, 0, 0, 34], &address(9), "Summer-2026-password").await.expect(429);
    login_from(&app, [127, 0, 0, 34], &nurse.email, PASSWORD).await.expect(429);
    // … but the owner on a client they have signed in from before still signs in.
    app.login(&nurse.email, PASSWORD, None).await.expect(200);
}

async fn the_owner_gets_through_a_strangers_lock_and_is_told(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "visiting_nurse_station", "多摩訪問看護ステーション", Some("14135")).await;
    // The person signs in once from their own client (127.0.0.1) when created.
    let nurse = app.person(&admin, &org, "nurse", "member").await;
    let stranger = [127, 0, 0, 41];
    for i in 0..MAX {
        login_from(&app, stranger, &nurse.email, &format!("guess-password-{i}")).await.expect(401);
    }
    // The stranger is locked out, even with the right password …
    login_from(&app, stranger, &nurse.email, PASSWORD).await.expect(429);
    login_from(&app, [127, 0, 0, 42], &nurse.email, PASSWORD).await.expect(429);
    // … the owner on their own client is not.
    app.login(&nurse.email, PASSWORD, None).await.expect(200);
    // The owner's own client has its own count: three wrong passwords there lock it too.
    for i in 0..MAX {
        app.login(&nurse.email, &format!("typo-password-{i}"), None).await.expect(401);
    }
    app.login(&nurse.email, PASSWORD, None).await.expect(429);

    // The owner was told, once for the run of lockouts, by an e-mail of fixed text that is
    // delivered (here: written as a file by the development transport).
    let user_id = nurse.id.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let emails = loop {
        let user_id = user_id.clone();
        let rows: Vec<(String, String, String, String)> = app
            .db
            .run(move |conn| {
                Ok(email_outbox::table
                    .filter(email_outbox::recipient_user_id.eq(&user_id))
                    .filter(email_outbox::kind.eq("account_locked"))
                    .select((
                        email_outbox::status,
                        email_outbox::subject,
                        email_outbox::body_text,
                        email_outbox::locale,
                    ))
                    .load(conn)?)
            })
            .await
            .unwrap();
        if !rows.is_empty() && rows.iter().all(|r| r.0 == "sent") {
            break rows;
        }
        assert!(Instant::now() < deadline, "lock e-mail not delivered: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!emails.is_empty() && emails.len() <= 2, "{emails:?}");
    let (_, subject, body, locale) = &emails[0];
    assert_eq!(locale, "ja");
    assert_eq!(subject, "サインインを一時的に停止しました（在宅療養連携ノート）");
    assert!(body.contains("パスワードの誤りが続いた"), "{body}");
    assert!(!body.contains(&nurse.email) && !body.contains("guess-password"), "{body}");
}

async fn wrong_current_passwords_are_throttled_and_end_the_session(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "clinic", "幸在宅クリニック", Some("14132")).await;
    let doctor = app.person(&admin, &org, "physician", "member").await;
    let change = |current: &str| json!({"current_password": current, "new_password": "morning-river-cedar-tall"});

    let first = app.post("/api/v1/me/password", &doctor.token, change("wrong-password-001")).await.expect(422);
    assert_eq!(first.body["errors"][0]["code"], json!("wrong_password"));
    // The password check of two-factor enrolment counts with it.
    app.post("/api/v1/me/totp", &doctor.token, json!({"password": "wrong-password-002"})).await.expect(422);
    // The third wrong password ends the caller's session.
    let ended = app.post("/api/v1/me/password", &doctor.token, change("wrong-password-003")).await.expect(401);
    assert_eq!(ended.problem_type(), "/problems/invalid-token");
    assert_invalid_token(&app, &doctor.token).await;
    app.call("POST", "/api/v1/auth/refresh", None, Some(&json!({"refresh_token": doctor.refresh_token})), &[])
        .await
        .expect(401);
    // And it was counted with sign-in's failures: signing in again waits too.
    app.login(&doctor.email, PASSWORD, None).await.expect(429);
}

/// Wrong current passwords hash outside the database transaction: on SQLite a transaction holds
/// the one write lock, so hashing inside it made every other request wait through argon2.
async fn password_checks_do_not_hold_up_other_requests(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "clinic", "中原ホームクリニック", Some("14133")).await;
    let mut people = Vec::new();
    for _ in 0..4 {
        people.push(app.person(&admin, &org, "nurse", "member").await);
    }
    // What one password check costs on this machine.
    let hash = renkei::auth::password::hash(PASSWORD).unwrap();
    let started = Instant::now();
    renkei::auth::password::verify("wrong-password-000", Some(&hash));
    let one_check = started.elapsed();

    // Eight wrong current passwords at once (two per person, below the limit) …
    let checks = people.iter().flat_map(|p| [p.clone(), p.clone()]).enumerate().map(|(i, p)| {
        let app = &app;
        async move {
            app.post(
                "/api/v1/me/password",
                &p.token,
                json!({"current_password": format!("wrong-password-{i:03}"), "new_password": "morning-river-cedar-tall"}),
            )
            .await
        }
    });
    // … while another person reads their account, one request after another.
    let reads = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut slowest = Duration::ZERO;
        for _ in 0..10 {
            let started = Instant::now();
            app.get("/api/v1/me", &admin.token).await.expect(200);
            slowest = slowest.max(started.elapsed());
        }
        slowest
    };
    let (answers, slowest) = tokio::join!(join_all(checks), reads);
    for a in &answers {
        assert_eq!(a.status, 422, "{}", a.text);
    }
    // Inside the transaction the eight checks queued behind the write lock, so a read waited
    // for several of them; outside, it waits for none.
    assert!(
        slowest < one_check * 3 + Duration::from_millis(250),
        "a read took {slowest:?} beside password checks (one check takes {one_check:?})"
    );
}

crate::both_backends!(by_backend: spraying_budgets_per_client_and_global);

crate::both_backends!(
    concurrent_attempts_are_compared_at_most_the_allowed_number,
    a_lock_is_never_shortened,
    the_owner_gets_through_a_strangers_lock_and_is_told,
    wrong_current_passwords_are_throttled_and_end_the_session,
    password_checks_do_not_hold_up_other_requests,
    bad_tokens_are_refused,
    access_token_carries_identity_only,
    refresh_rotates_and_reuse_revokes_the_family,
    failed_sign_ins_look_alike_and_lock,
    logout_password_change_and_deactivation_end_tokens,
    totp_enrol_confirm_sign_in_and_replay,
    recovery_codes_sign_in_once_each,
    an_administrator_resets_a_lost_second_factor,
    system_admin_must_enrol_totp,
    password_rules,
);
