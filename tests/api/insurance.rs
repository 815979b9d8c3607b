//! A hospital finds the patient it admitted: the care manager records the numbers on the
//! patient's insurance cards, a hospital opens a discharge case with the number, birth date and
//! kana (throttled like identification by id), and a duplicate registration is merged by the
//! care manager without moving anything.

use chrono::Duration;
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{Person, TestApp, TestResponse};
use crate::patients::{patient_body, team};

fn yesterday() -> String {
    ((chrono::Utc::now() + Duration::hours(9)).date_naive() - Duration::days(1)).to_string()
}

async fn msw(app: &TestApp, admin: &Person, name: &str) -> Person {
    let org = app.organization(admin, "hospital", name, Some("14131")).await;
    app.person(admin, &org, "social_worker", "member").await
}

async fn put_insurance(app: &TestApp, who: &Person, patient_id: &str, body: Value) -> TestResponse {
    app.call("PUT", &format!("/api/v1/patients/{patient_id}/insurance"), Some(&who.token), Some(&body), &[]).await
}

const LTC: &str = "141309";
const INSURED: &str = "0012345678";

fn ltc_number() -> Value {
    json!({"long_term_care": {"insurer_number": LTC, "insured_number": INSURED}})
}

/// A case body finding the patient by an insurance number (born 1938-04-01, カワサキ).
fn by_number(number: Value, birth_date: &str, kana: &str) -> Value {
    json!({
        "insurance_number": number,
        "birth_date": birth_date,
        "family_name_kana": kana,
        "admitted_on": yesterday(),
    })
}

async fn open(app: &TestApp, who: &Person, body: Value) -> TestResponse {
    app.post("/api/v1/discharge-cases", &who.token, body).await
}

async fn a_hospital_finds_the_patient_by_insurance_number(app: TestApp) {
    let t = team(&app, "14131").await;
    let cm = &t.care_manager;
    // The care manager records both cards; full-width digits from the card are kept as digits.
    let recorded = put_insurance(
        &app,
        cm,
        &t.patient_id,
        json!({
            "long_term_care": {"insurer_number": LTC, "insured_number": "００１２３４５６７８"},
            "medical": {"insurer_number": "01040013", "symbol": "川崎", "number": "１２３", "branch": "01"}
        }),
    )
    .await
    .expect(200);
    assert_eq!(recorded.body["long_term_care"]["insured_number"], json!(INSURED));
    assert_eq!(recorded.body["medical"]["number"], json!("123"));
    let read = app.get(&format!("/api/v1/patients/{}/insurance", t.patient_id), &t.nurse.token).await.expect(200);
    assert_eq!(read.body["medical"]["symbol"], json!("川崎"));

    // Bad numbers: 422 naming the field, Japanese first, and nothing changed.
    for (body, field, code) in [
        (json!({"medical": {"insurer_number": "01040012", "number": "1"}}), "medical.insurer_number", "check_digit"),
        (
            json!({"medical": {"insurer_number": "0104001", "number": "1"}}),
            "medical.insurer_number",
            "invalid_insurer_number",
        ),
        (
            json!({"long_term_care": {"insurer_number": LTC, "insured_number": "12345"}}),
            "long_term_care.insured_number",
            "invalid_insured_number",
        ),
        (
            json!({"long_term_care": {"insurer_number": "14130", "insured_number": INSURED}}),
            "long_term_care.insurer_number",
            "invalid_insurer_number",
        ),
        (
            json!({"medical": {"insurer_number": "01040013", "symbol": "12 3", "number": "1"}}),
            "medical.symbol",
            "invalid_characters",
        ),
        (json!({"medical": {"insurer_number": "01040013", "number": "=1+1"}}), "medical.number", "invalid_characters"),
    ] {
        let res = put_insurance(&app, cm, &t.patient_id, body).await.expect(422);
        assert_eq!(res.body["errors"][0]["field"], json!(field), "{}", res.text);
        assert_eq!(res.body["errors"][0]["code"], json!(code), "{}", res.text);
        let detail = res.body["errors"][0]["detail"].as_str().unwrap();
        assert!(detail.contains(field) && !detail.is_ascii(), "Japanese first, naming the field: {detail}");
    }
    let en = app
        .call(
            "PUT",
            &format!("/api/v1/patients/{}/insurance", t.patient_id),
            Some(&cm.token),
            Some(&json!({"medical": {"insurer_number": "01040012", "number": "1"}})),
            &[("accept-language", "en")],
        )
        .await
        .expect(422);
    assert!(en.body["errors"][0]["detail"].as_str().unwrap().contains("check digit"), "{}", en.text);
    let still = app.get(&format!("/api/v1/patients/{}/insurance", t.patient_id), &cm.token).await.expect(200);
    assert_eq!(still.body["medical"]["number"], json!("123"));

    // A hospital that admitted the patient finds her by the 介護保険 numbers, birth date and kana.
    let nurse_of_hospital = msw(&app, &t.admin, "川崎総合病院").await;
    let case = open(&app, &nurse_of_hospital, by_number(ltc_number(), "1938-04-01", "カワサキ")).await.expect(201);
    assert_eq!(case.body["patient_id"], json!(t.patient_id));
    // Another hospital by the 医療保険 card, typed with full-width digits (枝番 not needed).
    let other = msw(&app, &t.admin, "幸病院").await;
    let medical = json!({"medical": {"insurer_number": "０１０４００１３", "symbol": "川崎", "number": "123"}});
    let res = open(&app, &other, by_number(medical, "1938-04-01", "かわさき")).await;
    // The patient has a running case now: found, then refused as a second case (409), not 404.
    assert_eq!(res.status, 409, "{}", res.text);

    // A wrong birth date, a wrong symbol and a number nobody has: the very same 404.
    let third = msw(&app, &t.admin, "中原病院").await;
    let ghost = open(
        &app,
        &third,
        by_number(
            json!({"long_term_care": {"insurer_number": LTC, "insured_number": "9999999999"}}),
            "1938-04-01",
            "カワサキ",
        ),
    )
    .await
    .expect(404);
    let wrong_birth = open(&app, &third, by_number(ltc_number(), "1938-04-02", "カワサキ")).await.expect(404);
    assert_eq!(wrong_birth.text, ghost.text);
    let wrong_symbol = json!({"medical": {"insurer_number": "01040013", "symbol": "幸", "number": "123"}});
    let res = open(&app, &third, by_number(wrong_symbol, "1938-04-01", "カワサキ")).await.expect(404);
    assert_eq!(res.text, ghost.text);

    // The number alone finds nobody: birth date and kana are required with it.
    let res =
        open(&app, &third, json!({"insurance_number": ltc_number(), "admitted_on": yesterday()})).await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("family_name_kana"), "{}", res.text);
    let both = json!({"long_term_care": {"insurer_number": LTC, "insured_number": INSURED}, "medical": {"insurer_number": "01040013", "number": "1"}});
    let res = open(&app, &third, by_number(both, "1938-04-01", "カワサキ")).await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("insurance_number"), "{}", res.text);
    let res = open(
        &app,
        &third,
        json!({"patient_id": t.patient_id, "insurance_number": ltc_number(), "birth_date": "1938-04-01", "family_name_kana": "カワサキ", "admitted_on": yesterday()}),
    )
    .await
    .expect(422);
    assert_eq!(res.body["errors"][0]["code"], json!("one_of"), "{}", res.text);
}

async fn identification_by_number_is_throttled(app: TestApp) {
    let t = team(&app, "14132").await;
    put_insurance(&app, &t.care_manager, &t.patient_id, ltc_number()).await.expect(200);
    let guesser = msw(&app, &t.admin, "高津病院").await;
    for n in 0..5 {
        let birth = (chrono::NaiveDate::from_ymd_opt(1940, 1, 1).unwrap() + Duration::days(n)).to_string();
        open(&app, &guesser, by_number(ltc_number(), &birth, "カワサキ")).await.expect(404);
    }
    // Past the caller's budget: 429 with Retry-After, the right birth date too.
    let res = open(&app, &guesser, by_number(ltc_number(), "1938-04-01", "カワサキ")).await.expect(429);
    assert!(res.header("retry-after").is_some());
    // The number's own budget across callers: ten failures in a day, then 429 for anyone.
    // (The guesser's five misses count for the number too; a throttled attempt does not.)
    let h = msw(&app, &t.admin, "宮前病院").await;
    for n in 0..5 {
        let birth = (chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap() + Duration::days(n)).to_string();
        open(&app, &h, by_number(ltc_number(), &birth, "カワサキ")).await.expect(404);
    }
    let fresh = msw(&app, &t.admin, "多摩病院").await;
    let res = open(&app, &fresh, by_number(ltc_number(), "1938-04-01", "カワサキ")).await.expect(429);
    let secs: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!(secs > 23 * 3600, "{secs}");
    // The same number typed with full-width digits has the same budget.
    let wide = json!({"long_term_care": {"insurer_number": "１４１３０９", "insured_number": "００１２３４５６７８"}});
    open(&app, &fresh, by_number(wide, "1938-04-01", "カワサキ")).await.expect(429);
}

async fn a_duplicate_is_merged_by_the_care_manager(app: TestApp) {
    let t = team(&app, "14133").await;
    let cm = &t.care_manager;
    let original = t.patient_id.clone();
    // The same person registered twice (a typo in the kana), the second with the card's number.
    let mut body = patient_body("川崎", "カワサギ", "14133");
    body["given_name"] = json!("花子");
    let duplicate =
        app.post("/api/v1/patients", &cm.token, body).await.expect(201).body["id"].as_str().unwrap().to_string();
    put_insurance(&app, cm, &duplicate, ltc_number()).await.expect(200);
    app.post(
        &format!("/api/v1/patients/{duplicate}/notes"),
        &cm.token,
        json!({"kind": "visit", "occurred_at": chrono::Utc::now().to_rfc3339(), "text": "初回訪問"}),
    )
    .await
    .expect(201);
    // The number is on both registrations; the kana given tells them apart.
    put_insurance(&app, cm, &original, ltc_number()).await.expect(200);
    let hospital = msw(&app, &t.admin, "川崎総合病院").await;
    let dup_kana = by_number(ltc_number(), "1938-04-01", "カワサギ");
    let res = open(&app, &hospital, by_number(ltc_number(), "1938-04-01", "カワサキ")).await;
    assert_eq!(res.status, 201, "only the original has this kana: {}", res.text);
    assert_eq!(res.body["patient_id"], json!(original));

    // The nurse (on the original's team only) cannot merge; different birth dates are refused.
    let res = app.post(&format!("/api/v1/patients/{duplicate}/merge"), &t.nurse.token, json!({"into": original})).await;
    assert_eq!(res.status, 404, "{}", res.text);
    let mut other = patient_body("川崎", "カワサキ", "14133");
    other["birth_date"] = json!("1939-04-01");
    let other =
        app.post("/api/v1/patients", &cm.token, other).await.expect(201).body["id"].as_str().unwrap().to_string();
    let res =
        app.post(&format!("/api/v1/patients/{duplicate}/merge"), &cm.token, json!({"into": other})).await.expect(422);
    assert_eq!(res.body["errors"][0]["code"], json!("different_birth_date"));
    let res = app
        .post(&format!("/api/v1/patients/{duplicate}/merge"), &cm.token, json!({"into": duplicate}))
        .await
        .expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("into"));

    // The care manager merges the duplicate into the original.
    let merged = app
        .post(&format!("/api/v1/patients/{duplicate}/merge"), &cm.token, json!({"into": original}))
        .await
        .expect(200);
    assert_eq!(merged.body, json!({"id": duplicate, "superseded_by": original}));
    app.post(&format!("/api/v1/patients/{duplicate}/merge"), &cm.token, json!({"into": original})).await.expect(409);

    // The duplicate leaves lists and searches, and the caseload projection.
    let list = app.get("/api/v1/patients?q=川崎", &cm.token).await.expect(200);
    let ids: Vec<&str> = list.body["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&original.as_str()) && !ids.contains(&duplicate.as_str()), "{ids:?}");
    let dup = duplicate.clone();
    let entry: i64 = app
        .db
        .run(move |conn| {
            use renkei::db::schema::caseload_entries as c;
            Ok(c::table.filter(c::patient_id.eq(dup)).count().get_result(conn)?)
        })
        .await
        .unwrap();
    assert_eq!(entry, 0);
    // Its record stays readable as it was, pointing at the patient that stays; its note was
    // not moved.
    let read = app.get(&format!("/api/v1/patients/{duplicate}"), &cm.token).await.expect(200);
    assert_eq!(read.body["superseded_by"], json!(original));
    assert_eq!(read.body["family_name_kana"], json!("カワサギ"));
    let notes = app.get(&format!("/api/v1/patients/{duplicate}/notes"), &cm.token).await.expect(200);
    assert_eq!(notes.body["items"].as_array().unwrap().len(), 1);
    let notes = app.get(&format!("/api/v1/patients/{original}/notes"), &cm.token).await.expect(200);
    assert!(notes.body["items"].as_array().unwrap().is_empty());
    // Both audit trails record the merge, as a change by the care manager.
    let (a, b, who) = (original.clone(), duplicate.clone(), cm.id.clone());
    let details: Vec<(Option<String>, Option<String>)> = app
        .db
        .run(move |conn| {
            use renkei::db::schema::audit_events as e;
            Ok(e::table
                .filter(e::patient_id.eq_any([a, b]))
                .filter(e::actor_id.eq(who))
                .filter(e::action.eq("U"))
                .select((e::patient_id, e::detail))
                .load(conn)?)
        })
        .await
        .unwrap();
    assert!(details.contains(&(Some(original.clone()), Some(format!("merged from {duplicate}")))), "{details:?}");
    assert!(details.contains(&(Some(duplicate.clone()), Some(format!("merged into {original}")))), "{details:?}");

    // A number recorded on the duplicate, with the duplicate's own kana, finds the patient that
    // stays; so does the duplicate's id.
    let other_hospital = msw(&app, &t.admin, "幸病院").await;
    let res = open(&app, &other_hospital, dup_kana).await;
    assert_eq!(res.status, 409, "the original's running case, so found: {}", res.text);
    let third = msw(&app, &t.admin, "中原病院").await;
    let by_id = json!({"patient_id": duplicate, "birth_date": "1938-04-01", "family_name_kana": "カワサギ", "admitted_on": yesterday()});
    let res = open(&app, &third, by_id).await;
    assert_eq!(res.status, 409, "found as the original, which has a running case: {}", res.text);
}

async fn duplicates_not_merged_are_ambiguous(app: TestApp) {
    let t = team(&app, "14134").await;
    let cm = &t.care_manager;
    let second = app.post("/api/v1/patients", &cm.token, patient_body("川崎", "カワサキ", "14134")).await.expect(201);
    let second = second.body["id"].as_str().unwrap().to_string();
    put_insurance(&app, cm, &t.patient_id, ltc_number()).await.expect(200);
    put_insurance(&app, cm, &second, ltc_number()).await.expect(200);
    let hospital = msw(&app, &t.admin, "川崎総合病院").await;
    let res = open(&app, &hospital, by_number(ltc_number(), "1938-04-01", "カワサキ")).await.expect(409);
    assert!(res.body["detail"].as_str().unwrap().contains("統合"), "{}", res.text);
    // Once merged, the same request opens the case for the patient that stays.
    app.post(&format!("/api/v1/patients/{second}/merge"), &cm.token, json!({"into": t.patient_id})).await.expect(200);
    let res = open(&app, &hospital, by_number(ltc_number(), "1938-04-01", "カワサキ")).await.expect(201);
    assert_eq!(res.body["patient_id"], json!(t.patient_id));
}

async fn a_merged_duplicate_takes_no_writes_and_a_running_case_holds_the_merge(app: TestApp) {
    let t = team(&app, "14135").await;
    let cm = &t.care_manager;
    let duplicate =
        app.post("/api/v1/patients", &cm.token, patient_body("川崎", "カワサキ", "14135")).await.expect(201);
    let duplicate = duplicate.body["id"].as_str().unwrap().to_string();
    // A hospital opened its case on the duplicate: merging now would strand the case's tasks.
    let hospital = msw(&app, &t.admin, "井田病院").await;
    let by_id = json!({"patient_id": duplicate, "birth_date": "1938-04-01", "family_name_kana": "カワサキ", "admitted_on": yesterday()});
    let case = open(&app, &hospital, by_id).await.expect(201);
    let merge = format!("/api/v1/patients/{duplicate}/merge");
    let res = app.post(&merge, &cm.token, json!({"into": t.patient_id})).await.expect(409);
    assert!(res.body["detail"].as_str().unwrap().contains("入退院調整"), "{}", res.text);
    let read = app.get(&format!("/api/v1/patients/{duplicate}"), &cm.token).await.expect(200);
    assert_eq!(read.body["superseded_by"], Value::Null, "nothing changed");
    // Cancelled, the merge goes through.
    let case_path = format!("/api/v1/discharge-cases/{}", case.body["id"].as_str().unwrap());
    app.post(&format!("{case_path}/cancel"), &hospital.token, json!({"reason": "重複登録のため"})).await.expect(200);
    app.post(&merge, &cm.token, json!({"into": t.patient_id})).await.expect(200);

    // The duplicate's record stays as it was: a note, a flag or a change to it is refused and
    // points at the patient that stays; reading it still works.
    let note = json!({"kind": "visit", "occurred_at": chrono::Utc::now().to_rfc3339(), "text": "訪問"});
    let res = app.post(&format!("/api/v1/patients/{duplicate}/notes"), &cm.token, note.clone()).await.expect(409);
    assert!(res.body["detail"].as_str().unwrap().contains(&t.patient_id), "{}", res.text);
    let res = app.get(&format!("/api/v1/patients/{duplicate}/notes"), &cm.token).await.expect(200);
    assert!(res.body["items"].as_array().unwrap().is_empty());
    app.post(&format!("/api/v1/patients/{}/notes", t.patient_id), &cm.token, note).await.expect(201);
    let flag = json!({"severity": "urgent", "reason": "発熱"});
    app.post(&format!("/api/v1/patients/{duplicate}/flags"), &cm.token, flag).await.expect(409);
    let etag = app.get(&format!("/api/v1/patients/{duplicate}"), &cm.token).await.expect(200).header("etag").unwrap();
    let res = app
        .patch(&format!("/api/v1/patients/{duplicate}"), &cm.token, json!({"care_level": "care_4"}), Some(&etag))
        .await;
    assert_eq!(res.status, 409, "{}", res.text);
    // An outsider still gets the same 404 as for a missing patient.
    let outsider_org = app.organization(&t.admin, "clinic", "外部クリニック", Some("14135")).await;
    let outsider = app.person(&t.admin, &outsider_org, "physician", "member").await;
    let res = app
        .post(
            &format!("/api/v1/patients/{duplicate}/notes"),
            &outsider.token,
            json!({"kind": "visit", "occurred_at": chrono::Utc::now().to_rfc3339(), "text": "x"}),
        )
        .await;
    assert_eq!(res.status, 404, "{}", res.text);
}

/// How many registrations carry this kana family name, whoever may see them.
async fn registered(app: &TestApp, kana: &'static str) -> i64 {
    app.db
        .run(move |conn| {
            use renkei::db::schema::patients as p;
            Ok(p::table.filter(p::family_name_kana.eq(kana)).count().get_result::<i64>(conn)?)
        })
        .await
        .unwrap()
}

async fn a_hospital_registering_a_patient_on_scale_2_must_be_a_clinician(app: TestApp) {
    let t = team(&app, "14136").await;
    let social_worker = msw(&app, &t.admin, "市立病院").await;
    let mut newcomer = patient_body("幸", "サイワイ", "14136");
    newcomer["spo2_target_88_92"] = json!(true);
    let res = open(&app, &social_worker, json!({"patient": newcomer, "admitted_on": yesterday()})).await.expect(403);
    assert!(res.body["detail"].as_str().unwrap().contains("88〜92%"), "{}", res.text);
    assert_eq!(registered(&app, "サイワイ").await, 0, "nothing registered");
    // The hospital's discharge nurse may.
    let org = app.organization(&t.admin, "hospital", "市立病院看護部", Some("14136")).await;
    let nurse = app.person(&t.admin, &org, "nurse", "member").await;
    let case = open(&app, &nurse, json!({"patient": newcomer, "admitted_on": yesterday()})).await.expect(201);
    let patient = app
        .get(&format!("/api/v1/patients/{}", case.body["patient_id"].as_str().unwrap()), &nurse.token)
        .await
        .expect(200);
    assert_eq!(patient.body["spo2_target_88_92"], json!(true));
    assert_eq!(registered(&app, "サイワイ").await, 1);
}

async fn numbers_recorded_twice_name_the_version_they_replace(app: TestApp) {
    let t = team(&app, "14137").await;
    let path = format!("/api/v1/patients/{}/insurance", t.patient_id);
    let read = app.get(&path, &t.nurse.token).await.expect(200);
    assert_eq!(read.header("etag").as_deref(), Some("\"0\""));
    // The first recording needs no If-Match.
    let first = put_insurance(&app, &t.care_manager, &t.patient_id, ltc_number()).await.expect(200);
    assert_eq!(first.header("etag").as_deref(), Some("\"1\""));
    // The nurse, with another card in hand, must say which version she replaces.
    let medical = json!({"medical": {"insurer_number": "01040013", "number": "１２３４５"}});
    put_insurance(&app, &t.nurse, &t.patient_id, medical.clone()).await.expect(428);
    let second =
        app.call("PUT", &path, Some(&t.nurse.token), Some(&medical), &[("If-Match", "\"1\"")]).await.expect(200);
    assert_eq!(second.header("etag").as_deref(), Some("\"2\""));
    assert_eq!(second.body["medical"]["number"], json!("12345"));
    assert_eq!(second.body["long_term_care"], Value::Null, "replaced as a whole");
    // The care manager's view was version 1: stale, refused, nothing changed.
    let res = app
        .call("PUT", &path, Some(&t.care_manager.token), Some(&ltc_number()), &[("If-Match", "\"1\"")])
        .await
        .expect(412);
    assert_eq!(res.body["status"], json!(412));
    let read = app.get(&path, &t.care_manager.token).await.expect(200);
    assert_eq!(read.body["medical"]["number"], json!("12345"));
    assert_eq!(read.header("etag").as_deref(), Some("\"2\""));
}

crate::both_backends!(
    a_hospital_finds_the_patient_by_insurance_number,
    identification_by_number_is_throttled,
    a_duplicate_is_merged_by_the_care_manager,
    duplicates_not_merged_are_ambiguous,
    a_merged_duplicate_takes_no_writes_and_a_running_case_holds_the_merge,
    a_hospital_registering_a_patient_on_scale_2_must_be_a_clinician,
    numbers_recorded_twice_name_the_version_they_replace,
);
