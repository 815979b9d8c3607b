//! What a revoked consent stops (APPI art. 27): no new organisation receives the record until
//! consent is obtained again; those who held it keep it; emergency access stays allowed.

use chrono::Duration;
use serde_json::{json, Value};

use crate::helpers::{Person, TestApp};
use crate::patients::team;

fn days_from_today(days: i64) -> String {
    ((chrono::Utc::now() + Duration::hours(9)).date_naive() + Duration::days(days)).to_string()
}

async fn record_consent(app: &TestApp, who: &Person, patient_id: &str) -> String {
    let c = app
        .post(
            &format!("/api/v1/patients/{patient_id}/consents"),
            &who.token,
            json!({"scope": "care_team", "obtained_from": "patient", "obtained_on": days_from_today(0)}),
        )
        .await
        .expect(201);
    c.body["id"].as_str().unwrap().to_string()
}

async fn add(app: &TestApp, lead: &Person, patient_id: &str, who: &Person, role: &str) -> crate::helpers::TestResponse {
    app.post(&format!("/api/v1/patients/{patient_id}/care-team"), &lead.token, json!({"user_id": who.id, "role": role}))
        .await
}

fn case_body(patient_id: &str) -> Value {
    json!({
        "patient_id": patient_id,
        "birth_date": "1938-04-01",
        "family_name_kana": "カワサキ",
        "admitted_on": days_from_today(-1),
    })
}

async fn a_revoked_consent_stops_sharing_with_new_organisations(app: TestApp) {
    let t = team(&app, "14134").await;
    let pid = t.patient_id.clone();
    let base = format!("/api/v1/patients/{pid}");
    let pharmacy = app.organization(&t.admin, "pharmacy", "高津薬局", Some("14134")).await;
    let pharmacist = app.person(&t.admin, &pharmacy, "pharmacist", "member").await;
    let second_nurse = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    let hospital = app.organization(&t.admin, "hospital", "高津総合病院", Some("14134")).await;
    let msw = app.person(&t.admin, &hospital, "social_worker", "member").await;
    let clinic = app.organization(&t.admin, "clinic", "溝口救急クリニック", Some("14134")).await;
    let doctor = app.person(&t.admin, &clinic, "physician", "member").await;

    // Consent never recorded: the team is built as before (the fixture added a nurse already).
    let consent = record_consent(&app, &t.care_manager, &pid).await;
    app.get(&format!("{base}/fhir"), &t.nurse.token).await.expect(200);
    app.post(&format!("{base}/consents/{consent}/revoke"), &t.care_manager.token, json!({"reason": "本人の申し出"}))
        .await
        .expect(200);

    // A new organisation does not receive the record.
    let refused = add(&app, &t.care_manager, &pid, &pharmacist, "pharmacist").await.expect(409);
    assert_eq!(refused.problem_type(), "/problems/conflict");
    assert!(refused.body["detail"].as_str().unwrap().contains("同意を撤回"), "{}", refused.text);
    app.get(&base, &pharmacist.token).await.expect(404);
    // Nor a hospital that identifies the patient to open a case.
    let by_case = app.post("/api/v1/discharge-cases", &msw.token, case_body(&pid)).await.expect(409);
    assert!(by_case.body["detail"].as_str().unwrap().contains("同意を撤回"), "{}", by_case.text);
    app.get(&base, &msw.token).await.expect(404);
    // Both refusals are audited.
    let denied = app.get(&format!("/api/v1/audit-events?patient_id={pid}&outcome=denied"), &t.admin.token).await;
    let denied = denied.expect(200).body["items"].as_array().unwrap().clone();
    assert_eq!(denied.iter().filter(|e| e["detail"] == json!("consent revoked")).count(), 2, "{denied:?}");

    // Those who held it keep it, and their organisation may add its own people.
    app.get(&base, &t.nurse.token).await.expect(200);
    add(&app, &t.care_manager, &pid, &second_nurse, "visiting_nurse").await.expect(201);
    app.get(&format!("{base}/notes"), &second_nurse.token).await.expect(200);
    // The export out of the service is refused, to members too.
    let export = app.get(&format!("{base}/fhir"), &t.nurse.token).await.expect(409);
    assert_eq!(export.problem_type(), "/problems/conflict");

    // Emergency access (APPI art. 27(1)(ii)) stays allowed, and its reader may export.
    app.post(
        &format!("{base}/emergency-access"),
        &doctor.token,
        json!({"reason": "救急搬送先から服薬内容の問い合わせ"}),
    )
    .await
    .expect(201);
    app.get(&base, &doctor.token).await.expect(200);
    app.get(&format!("{base}/fhir"), &doctor.token).await.expect(200);

    // Consent obtained again: sharing resumes.
    record_consent(&app, &t.care_manager, &pid).await;
    add(&app, &t.care_manager, &pid, &pharmacist, "pharmacist").await.expect(201);
    app.get(&format!("{base}/fhir"), &t.nurse.token).await.expect(200);
    app.post("/api/v1/discharge-cases", &msw.token, case_body(&pid)).await.expect(201);
}

/// An organisation that was on the team at the revocation and whose last member left since may
/// still staff the team; one that joined after is impossible, one that left before is new.
async fn the_organisations_on_the_team_at_revocation_decide(app: TestApp) {
    let t = team(&app, "14135").await;
    let pid = t.patient_id.clone();
    let pharmacy = app.organization(&t.admin, "pharmacy", "多摩薬局", Some("14135")).await;
    let pharmacist = app.person(&t.admin, &pharmacy, "pharmacist", "member").await;
    let other_pharmacist = app.person(&t.admin, &pharmacy, "pharmacist", "member").await;
    let m = add(&app, &t.care_manager, &pid, &pharmacist, "pharmacist").await.expect(201);
    let consent = record_consent(&app, &t.care_manager, &pid).await;
    // The nurse station leaves before the revocation, the pharmacy after it.
    let nurse_path = format!("/api/v1/patients/{pid}/care-team/{}", t.nurse_member_id);
    let etag = app.get(&format!("/api/v1/patients/{pid}/care-team"), &t.care_manager.token).await.expect(200);
    let nurse_version =
        etag.body["items"].as_array().unwrap().iter().find(|i| i["id"] == json!(t.nurse_member_id)).unwrap()["version"]
            .clone();
    app.patch(
        &nurse_path,
        &t.care_manager.token,
        json!({"ended_on": days_from_today(0)}),
        Some(&format!("\"{nurse_version}\"")),
    )
    .await
    .expect(200);
    app.post(
        &format!("/api/v1/patients/{pid}/consents/{consent}/revoke"),
        &t.care_manager.token,
        json!({"reason": "家族の意向"}),
    )
    .await
    .expect(200);
    let pharmacist_path = format!("/api/v1/patients/{pid}/care-team/{}", m.body["id"].as_str().unwrap());
    app.patch(&pharmacist_path, &t.care_manager.token, json!({"ended_on": days_from_today(0)}), Some("\"1\""))
        .await
        .expect(200);
    // The pharmacy held the record at the revocation: another of its pharmacists may join.
    add(&app, &t.care_manager, &pid, &other_pharmacist, "pharmacist").await.expect(201);
    // The nurse station had left before: rejoining would be a new provision.
    let nurse_again = app.person(&t.admin, &t.nurse_station, "nurse", "member").await;
    add(&app, &t.care_manager, &pid, &nurse_again, "visiting_nurse").await.expect(409);
    add(&app, &t.care_manager, &pid, &t.nurse, "visiting_nurse").await.expect(409);
}

fn ids(res: &crate::helpers::TestResponse) -> Vec<String> {
    res.body["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
}

/// A ward coordinator assigned after the revocation is a new recipient too: the record and the
/// ward's lists leave the patient out for them; one assigned before keeps reading.
async fn a_coordinator_assigned_after_revocation_does_not_read(app: TestApp) {
    let t = team(&app, "14136").await;
    let pid = t.patient_id.clone();
    let clinic = app.organization(&t.admin, "clinic", "宮前在宅クリニック", Some("14136")).await;
    let earlier = app.person(&t.admin, &clinic, "physician", "member").await;
    let later = app.person(&t.admin, &clinic, "physician", "member").await;
    let hospital = app.organization(&t.admin, "hospital", "宮前病院", Some("14136")).await;
    let msw = app.person(&t.admin, &hospital, "social_worker", "member").await;
    // A running case, so that the case list has something to show.
    app.post("/api/v1/discharge-cases", &msw.token, case_body(&pid)).await.expect(201);
    let assign = |who: &Person| format!("/api/v1/wards/14136/coordinators/{}", who.id);
    app.call("PUT", &assign(&earlier), Some(&t.admin.token), None, &[]).await.expect(201);
    let consent = record_consent(&app, &t.care_manager, &pid).await;
    app.post(
        &format!("/api/v1/patients/{pid}/consents/{consent}/revoke"),
        &t.care_manager.token,
        json!({"reason": "本人の申し出"}),
    )
    .await
    .expect(200);
    app.call("PUT", &assign(&later), Some(&t.admin.token), None, &[]).await.expect(201);

    let record = format!("/api/v1/patients/{pid}");
    let caseload = "/api/v1/wards/14136/caseload";
    app.get(&record, &earlier.token).await.expect(200);
    assert_eq!(ids(&app.get("/api/v1/patients", &earlier.token).await.expect(200)), vec![pid.clone()]);
    assert_eq!(ids(&app.get(caseload, &earlier.token).await.expect(200)), vec![pid.clone()]);
    assert_eq!(
        app.get("/api/v1/discharge-cases", &earlier.token).await.expect(200).body["items"].as_array().unwrap().len(),
        1
    );

    let hidden = app.get(&record, &later.token).await.expect(404);
    let nothing = app.get("/api/v1/patients/01900000-0000-7000-8000-0000000000cd", &later.token).await.expect(404);
    assert_eq!(hidden.text, nothing.text);
    assert!(ids(&app.get("/api/v1/patients", &later.token).await.expect(200)).is_empty());
    assert!(ids(&app.get(caseload, &later.token).await.expect(200)).is_empty());
    assert!(app.get("/api/v1/discharge-cases", &later.token).await.expect(200).body["items"]
        .as_array()
        .unwrap()
        .is_empty());

    // Consent obtained again: the later coordinator reads too.
    record_consent(&app, &t.care_manager, &pid).await;
    app.get(&record, &later.token).await.expect(200);
    assert_eq!(ids(&app.get(caseload, &later.token).await.expect(200)), vec![pid.clone()]);
}

crate::both_backends!(
    a_revoked_consent_stops_sharing_with_new_organisations,
    the_organisations_on_the_team_at_revocation_decide,
    a_coordinator_assigned_after_revocation_does_not_read,
);
