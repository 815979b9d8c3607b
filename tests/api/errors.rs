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
    // The body is an object: an array of the fields in order is refused and creates nothing.
    let array = json!(["clinic", "配列の診療所", null, null, null, null, []]);
    let res = app.post("/api/v1/organizations", &admin.token, array).await;
    assert_problem(&res, 422, "validation");
    assert_eq!(res.body["errors"][0]["field"], json!("body"));
    let listed = app.get("/api/v1/organizations?q=配列の診療所", &admin.token).await.expect(200);
    assert_eq!(listed.body["items"], json!([]));
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
    assert_eq!(res.body["errors"][0]["field"], json!("user_id"));
    assert_eq!(res.body["errors"][0]["code"], json!("invalid_id"));
}

/// Every id of a body, query and path is parsed as a UUID before anything reaches SQL: in a body
/// or query a malformed one is refused naming the field; in a path it is the 404 of an id that
/// names nothing, byte for byte.
async fn malformed_ids_are_refused_at_the_edge(app: TestApp) {
    let t = crate::patients::team(&app, "14136").await;
    let hospital = app.organization(&t.admin, "hospital", "高津総合病院", Some("14136")).await;
    let msw = app.person(&t.admin, &hospital, "social_worker", "member").await;
    let garbage =
        ["\u{0}", "a\u{0}b", "not-a-uuid", "'; DROP TABLE patients; --", "0193a3f2-7c4e-7d2a-9b1f-3c5d7e9f1a2", ""];
    for bad in garbage {
        let body = json!({"patient_id": bad, "birth_date": "1938-04-01", "family_name_kana": "カワサキ", "admitted_on": "2026-11-20"});
        let res = app.post("/api/v1/discharge-cases", &msw.token, body).await;
        assert_problem(&res, 422, "validation");
        assert_eq!(res.body["errors"][0]["field"], json!("patient_id"), "{bad:?}: {}", res.text);
        assert_eq!(res.body["errors"][0]["code"], json!("invalid_id"));
    }
    let case = app
        .post(
            "/api/v1/discharge-cases",
            &msw.token,
            json!({"patient_id": t.patient_id, "birth_date": "1938-04-01", "family_name_kana": "カワサキ", "admitted_on": "2026-11-20"}),
        )
        .await
        .expect(201);
    let case_id = case.body["id"].as_str().unwrap().to_string();
    let task = app
        .post(
            &format!("/api/v1/discharge-cases/{case_id}/tasks"),
            &msw.token,
            json!({"title": "連絡", "profession": "nurse"}),
        )
        .await
        .expect(201);
    let task_id = task.body["id"].as_str().unwrap().to_string();
    for bad in garbage {
        let res = app
            .post(
                &format!("/api/v1/discharge-cases/{case_id}/tasks"),
                &msw.token,
                json!({"title": "連絡", "assignee_id": bad}),
            )
            .await;
        assert_problem(&res, 422, "validation");
        assert_eq!(res.body["errors"][0]["field"], json!("assignee_id"), "{bad:?}: {}", res.text);
        assert_eq!(res.body["errors"][0]["code"], json!("invalid_id"));
        let res = app
            .patch(&format!("/api/v1/tasks/{task_id}"), &msw.token, json!({"assignee_id": bad}), Some("\"1\""))
            .await;
        assert_problem(&res, 422, "validation");
        assert_eq!(res.body["errors"][0]["field"], json!("assignee_id"), "{bad:?}: {}", res.text);
        // In a query too (a NUL there is refused before any route, as `query`).
        let field = if bad.contains('\u{0}') { "query" } else { "actor_id" };
        let res = app.get(&format!("/api/v1/audit-events?actor_id={}", urlencode(bad)), &t.admin.token).await;
        assert_problem(&res, 422, "validation");
        assert_eq!(res.body["errors"][0]["field"], json!(field), "{bad:?}: {}", res.text);
        let field = if bad.contains('\u{0}') { "query" } else { "author_id" };
        let res = app
            .get(&format!("/api/v1/patients/{}/notes?author_id={}", t.patient_id, urlencode(bad)), &t.nurse.token)
            .await;
        assert_problem(&res, 422, "validation");
        assert_eq!(res.body["errors"][0]["field"], json!(field), "{bad:?}: {}", res.text);
    }
    // Nothing changed: the task kept its version.
    let still = app.get(&format!("/api/v1/tasks/{task_id}"), &msw.token).await.expect(200);
    assert_eq!(still.body["version"], json!(1));

    // In a path: the same bytes as a well-formed id that names nothing.
    let missing = "01900000-0000-7000-8000-000000000000";
    let paths = [
        "/api/v1/patients/{}",
        "/api/v1/patients/{}/notes",
        "/api/v1/patients/{}/care-team",
        "/api/v1/notes/{}",
        "/api/v1/flags/{}",
        "/api/v1/discharge-cases/{}",
        "/api/v1/discharge-cases/{}/tasks",
        "/api/v1/tasks/{}",
        "/api/v1/users/{}",
        "/api/v1/organizations/{}",
    ];
    for path in paths {
        let expected = app.get(&path.replace("{}", missing), &t.nurse.token).await.expect(404);
        for bad in ["not-a-uuid", "%00", "a%00b", "%27%3B%20DROP", "0193A3F2-7C4E-7D2A-9B1F-3C5D7E9F1A2"] {
            let res = app.get(&path.replace("{}", bad), &t.nurse.token).await.expect(404);
            assert_eq!(res.text, expected.text, "{path} with {bad}");
        }
    }
    // A well-formed id in capitals names the same record.
    let upper = t.patient_id.to_uppercase();
    app.get(&format!("/api/v1/patients/{upper}"), &t.nurse.token).await.expect(200);
}

/// Bidirectional controls and zero-width characters (Unicode Cf) are refused in names and
/// one-line fields, naming the field; Japanese text with full-width and half-width forms is kept
/// byte for byte.
async fn format_characters_are_refused(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "care_management_office", "幸ケアプランセンター", Some("14132")).await;
    let cm = app.person(&admin, &org, "care_manager", "member").await;
    for spoof in ["山田\u{202E}子花", "山田\u{200B}花子", "\u{2066}山田\u{2069}", "\u{FEFF}山田"] {
        let res = app.patch(&format!("/api/v1/users/{}", cm.id), &cm.token, json!({"name": spoof}), None).await;
        assert_problem(&res, 422, "validation");
        assert_eq!(res.body["errors"][0]["field"], json!("name"), "{spoof:?}");
        assert_eq!(res.body["errors"][0]["code"], json!("format_character"));
        let mut patient = crate::patients::patient_body(spoof, "カワサキ", "14132");
        patient["address"] = json!(format!("川崎市{spoof}"));
        let res = app.post("/api/v1/patients", &cm.token, patient).await;
        assert_problem(&res, 422, "validation");
        let fields: Vec<&str> =
            res.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["family_name", "address"], "{}", res.text);
        let res = app
            .post("/api/v1/organizations", &admin.token, json!({"kind": "clinic", "name": format!("診療所{spoof}")}))
            .await;
        assert_problem(&res, 422, "validation");
        assert_eq!(res.body["errors"][0]["field"], json!("name"));
    }
    let name = "髙﨑 ＡＢＣ ｶﾜｻｷ〜ー・";
    let ok = app.patch(&format!("/api/v1/users/{}", cm.id), &cm.token, json!({"name": name}), None).await.expect(200);
    assert_eq!(ok.body["name"].as_str().unwrap().as_bytes(), name.as_bytes());
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'-' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// A value in the wrong format names its field by path and says what was expected, Japanese first;
/// an enumeration lists its codes.
async fn format_mistakes_name_the_field_and_the_format(app: TestApp) {
    let t = crate::patients::team(&app, "14131").await;
    let cm = &t.care_manager.token;
    let field = |res: &crate::helpers::TestResponse| {
        let e = &res.body["errors"][0];
        (e["field"].as_str().unwrap_or_default().to_string(), e["code"].as_str().unwrap_or_default().to_string())
    };
    for date in ["1938/03/15", "2026年12月1日", "昭和13年3月15日", ""] {
        let mut body = crate::patients::patient_body("山田", "ヤマダ", "14131");
        body["birth_date"] = json!(date);
        let res = app.post("/api/v1/patients", cm, body).await.expect(422);
        assert_eq!(field(&res), ("birth_date".into(), "invalid_value".into()), "{date}: {}", res.text);
        let detail = res.body["errors"][0]["detail"].as_str().unwrap();
        assert!(detail.starts_with("birth_date の値が正しくありません") && detail.contains("YYYY-MM-DD"), "{detail}");
    }
    // An enumeration typo lists the codes.
    let mut body = crate::patients::patient_body("山田", "ヤマダ", "14131");
    body["care_level"] = json!("kaigo_3");
    let res = app.post("/api/v1/patients", cm, body).await.expect(422);
    assert_eq!(field(&res).0, "care_level");
    assert!(res.body["errors"][0]["detail"].as_str().unwrap().contains("care_1, care_2, care_3"), "{}", res.text);
    // A nested field is named by its path.
    let mut body = crate::patients::patient_body("山田", "ヤマダ", "14131");
    body["emergency_contact"]["phone"] = json!(9000000000u64);
    let res = app.post("/api/v1/patients", cm, body).await.expect(422);
    assert_eq!(field(&res).0, "emergency_contact.phone");
    let mut body = crate::patients::patient_body("山田", "ヤマダ", "14131");
    body["emergency_contact"]["nickname"] = json!("いっちゃん");
    let res = app.post("/api/v1/patients", cm, body).await.expect(422);
    assert_eq!(field(&res), ("emergency_contact.nickname".into(), "unknown_field".into()), "{}", res.text);
    // Vital signs and times in a note.
    let notes = format!("/api/v1/patients/{}/notes", t.patient_id);
    let res = app
        .post(&notes, &t.nurse.token, json!({"kind": "visit", "occurred_at": "2026-12-01T09:00:00Z", "text": "訪問", "vitals": {"pulse": "速い"}}))
        .await
        .expect(422);
    assert_eq!(field(&res).0, "vitals.pulse");
    assert!(res.body["errors"][0]["detail"].as_str().unwrap().contains("数値"), "{}", res.text);
    let res = app
        .post(&notes, &t.nurse.token, json!({"kind": "visit", "occurred_at": "2026-12-01T09:00:00", "text": "訪問"}))
        .await
        .expect(422);
    assert_eq!(field(&res).0, "occurred_at");
    assert!(res.body["errors"][0]["detail"].as_str().unwrap().contains("RFC 3339"), "{}", res.text);
    // English for those who prefer it.
    let res = app
        .call(
            "POST",
            &notes,
            Some(&t.nurse.token),
            Some(&json!({"kind": "visit", "occurred_at": "yesterday", "text": "x"})),
            &[("accept-language", "en")],
        )
        .await;
    assert_eq!(res.status, 422);
    assert!(res.body["errors"][0]["detail"].as_str().unwrap().starts_with("occurred_at is not valid"), "{}", res.text);
}

/// A query parameter that does not fit is named, with what it expects, like a body field.
async fn query_mistakes_name_the_parameter(app: TestApp) {
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "care_management_office", "高津ケアプランセンター", Some("14135")).await;
    let cm = app.person(&admin, &org, "care_manager", "member").await;
    let cases = [
        ("/api/v1/patients?limit=ten", "limit", "数値"),
        ("/api/v1/patients?status=gone", "status", "次の"),
        ("/api/v1/patients?care_level=%E8%A6%81%E4%BB%8B%E8%AD%B79", "care_level", "次の"),
        ("/api/v1/patients?colour=red", "colour", "colour"),
    ];
    for (path, field, says) in cases {
        let res = app.get(path, &cm.token).await;
        assert_problem(&res, 422, "validation");
        assert_eq!(res.body["errors"][0]["field"], json!(field), "{path}: {}", res.body);
        assert_eq!(res.body["errors"][0]["code"], json!("invalid_query"));
        assert!(res.body["errors"][0]["detail"].as_str().unwrap().contains(says), "{path}: {}", res.body);
    }
}

crate::both_backends!(
    query_mistakes_name_the_parameter,
    format_mistakes_name_the_field_and_the_format,
    framework_errors_are_problems,
    details_follow_accept_language,
    no_internals_leak,
    nul_characters_name_nothing,
    malformed_ids_are_refused_at_the_edge,
    format_characters_are_refused
);
