//! The visit week, in the words of the people who use it: the care manager enters each member's
//! recurring visits and a service meeting, the physician's note names the next visit, each member
//! reads "my week"; and the whole scripted scenario of the care records — six drugs reconciled,
//! a penicillin allergy, the week, the resuscitation wishes, break-glass at night, the FHIR export,
//! nothing deleted.

use serde_json::{json, Value};

use crate::care::discharge_drugs;
use crate::helpers::{Person, TestApp, TestResponse};
use crate::patients::{expire_emergency_access, patient_body, team, Team};

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn put(app: &TestApp, path: &str, who: &Person, body: Value, if_match: Option<&str>) -> TestResponse {
    let headers: Vec<(&str, &str)> = if_match.map(|v| vec![("if-match", v)]).unwrap_or_default();
    app.call("PUT", path, Some(&who.token), Some(&body), &headers).await
}

fn field_of(res: &TestResponse) -> String {
    assert_eq!(res.status, 422, "{}", res.text);
    res.body["errors"][0]["field"].as_str().unwrap().to_string()
}

/// The week the scenario plans: Monday 4 January 2027 to Sunday the 10th.
const MONDAY: &str = "2027-01-04";

fn plan(user: &Person, service: &str, weekdays: &[u8], start: &str, minutes: i32) -> Value {
    json!({"user_id": user.id, "service_type": service, "weekdays": weekdays, "start_time": start,
           "duration_minutes": minutes, "valid_from": "2026-12-01", "note": "玄関の鍵はキーボックス"})
}

fn meeting(attendees: &[&Person]) -> Value {
    json!({"kind": "service_meeting", "starts_at": "2027-01-05T01:00:00Z", "ends_at": "2027-01-05T02:00:00Z",
           "place": "ご自宅(居間)", "video_url": "https://meet.example.jp/abc-defg",
           "attendees": attendees.iter().map(|p| p.id.clone()).collect::<Vec<_>>()})
}

/// (kind, date, JST time or "", label) of a week's items.
fn shape(week: &Value) -> Vec<(String, String, String, String)> {
    week["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let time = i["starts_at"].as_str().map(|t| {
                let t = chrono::DateTime::parse_from_rfc3339(t).unwrap() + chrono::Duration::hours(9);
                t.format("%H:%M").to_string()
            });
            (
                i["kind"].as_str().unwrap().to_string(),
                i["date"].as_str().unwrap().to_string(),
                time.unwrap_or_default(),
                i["label"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn row(kind: &str, date: &str, time: &str, label: &str) -> (String, String, String, String) {
    (kind.to_string(), date.to_string(), time.to_string(), label.to_string())
}

async fn the_scripted_scenario(app: TestApp) {
    let t = team(&app, "14133").await;
    let base = format!("/api/v1/patients/{}", t.patient_id);
    let pharmacy = app.organization(&t.admin, "pharmacy", "中原薬局", Some("14133")).await;
    let pharmacist = app.person(&t.admin, &pharmacy, "pharmacist", "member").await;
    let clinic = app.organization(&t.admin, "clinic", "中原在宅クリニック", Some("14133")).await;
    let physician = app.person(&t.admin, &clinic, "physician", "member").await;
    for (who, role) in [(&pharmacist, "pharmacist"), (&physician, "primary_physician")] {
        app.post(&format!("{base}/care-team"), &t.care_manager.token, json!({"user_id": who.id, "role": role}))
            .await
            .expect(201);
    }
    let (_, feed_cursor) = crate::changes::drain(&app, &t.nurse, None).await;

    // A pharmacist reconciles a list of six drugs after discharge.
    for drug in discharge_drugs() {
        app.post(&format!("{base}/medications"), &pharmacist.token, drug).await.expect(201);
    }
    let today = (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive().to_string();
    let r = app
        .post(&format!("{base}/medication-reconciliations"), &pharmacist.token, json!({"checked_on": today}))
        .await
        .expect(201);
    assert_eq!(r.body["medication_count"], json!(6));

    // A nurse records a penicillin allergy.
    let penicillin = json!({"substance": "ペニシリン系抗菌薬", "category": "medication", "reaction": "全身の発疹",
                            "severity": "severe", "verification_status": "confirmed"});
    app.post(&format!("{base}/allergies"), &t.nurse.token, penicillin).await.expect(201);

    // The care manager enters the visit week: everyone's recurring visits and a service meeting.
    let plans = format!("{base}/visit-plans");
    let cm = &t.care_manager;
    let mut bad = plan(&t.nurse, "home_nursing", &[1, 8], "10:00", 60);
    assert_eq!(field_of(&app.post(&plans, &cm.token, bad.clone()).await), "weekdays");
    bad["weekdays"] = json!([1]);
    bad["start_time"] = json!("25:00");
    assert_eq!(field_of(&app.post(&plans, &cm.token, bad.clone()).await), "start_time");
    bad["start_time"] = json!("10:00");
    bad["service_type"] = json!("massage");
    assert_eq!(field_of(&app.post(&plans, &cm.token, bad).await), "service_type");
    let stranger = app.person(&t.admin, &clinic, "physician", "member").await;
    let res = app.post(&plans, &cm.token, plan(&stranger, "home_medical_care", &[3], "14:00", 30)).await;
    assert_eq!(field_of(&res), "user_id", "only members of the team visit");

    let key = [("idempotency-key", "week-nurse-plan")];
    let nursing = plan(&t.nurse, "home_nursing", &[1, 4], "10:00", 60);
    let first = app.call("POST", &plans, Some(&cm.token), Some(&nursing), &key).await.expect(201);
    assert_eq!(first.header("etag").as_deref(), Some("\"1\""));
    assert_eq!(first.body["service_type_label"], json!("訪問看護"));
    let again = app.call("POST", &plans, Some(&cm.token), Some(&nursing), &key).await.expect(201);
    assert_eq!(id_of(&again.body), id_of(&first.body), "a retry creates nothing new");
    // The Japanese label is accepted as the code.
    let doctor_plan = json!({"user_id": physician.id, "service_type": "訪問診療", "weekdays": [3],
                             "start_time": "14:00", "duration_minutes": 30, "valid_from": "2026-12-01"});
    let doctor = app.post(&plans, &cm.token, doctor_plan).await.expect(201);
    assert_eq!(doctor.body["service_type"], json!("home_medical_care"));
    let pharmacy_plan =
        app.post(&plans, &cm.token, plan(&pharmacist, "home_pharmacy", &[5], "16:00", 30)).await.expect(201);
    // A member enters their own visits, not someone else's.
    app.post(&plans, &t.nurse.token, plan(&pharmacist, "home_pharmacy", &[2], "09:00", 30)).await.expect(403);

    let appointments = format!("{base}/appointments");
    let mut bad = meeting(&[cm, &t.nurse]);
    bad["video_url"] = json!("http://meet.example.jp/x");
    assert_eq!(field_of(&app.post(&appointments, &cm.token, bad).await), "video_url");
    let mut bad = meeting(&[cm, &t.nurse]);
    bad["ends_at"] = json!("2027-01-05T00:00:00Z");
    assert_eq!(field_of(&app.post(&appointments, &cm.token, bad).await), "ends_at");
    let meeting_res =
        app.post(&appointments, &cm.token, meeting(&[cm, &t.nurse, &physician, &pharmacist])).await.expect(201);
    assert_eq!(meeting_res.body["kind_label"], json!("サービス担当者会議"));
    let meeting_path = format!("/api/v1/appointments/{}", id_of(&meeting_res.body));

    // The physician records resuscitation wishes, and a note naming the next visit.
    let card = json!({"place_of_care": "自宅", "resuscitation_wishes": "心肺蘇生は望まない", "diagnoses": ["慢性心不全"],
                      "dnar": {"decision": "dnar", "decided_on": "2026-11-28"}});
    put(&app, &format!("{base}/emergency-card"), &physician, card, Some("\"0\"")).await.expect(201);
    let occurred = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let note = json!({"kind": "physician_info_sharing", "occurred_at": occurred, "next_visit_on": "2027-01-06",
                      "treatment_policy_changed": false, "cautions_for_team": "体重増加に注意"});
    let note = app.post(&format!("{base}/notes"), &physician.token, note).await.expect(201);

    // The week, sorted by time; the next visit first on its day (it has no hour).
    let week = app.get(&format!("{base}/week?from={MONDAY}"), &t.nurse.token).await.expect(200);
    assert_eq!((week.body["from"].clone(), week.body["until"].clone()), (json!(MONDAY), json!("2027-01-10")));
    assert_eq!(
        shape(&week.body),
        vec![
            row("visit", "2027-01-04", "10:00", "訪問看護"),
            row("appointment", "2027-01-05", "10:00", "サービス担当者会議"),
            row("next_visit", "2027-01-06", "", "次回訪問予定(医師記録)"),
            row("visit", "2027-01-06", "14:00", "訪問診療"),
            row("visit", "2027-01-07", "10:00", "訪問看護"),
            row("visit", "2027-01-08", "16:00", "訪問薬剤管理指導"),
        ]
    );
    assert_eq!(week.body["items"][2]["source_id"], json!(id_of(&note.body)));
    assert_eq!(week.body["items"][1]["video_url"], json!("https://meet.example.jp/abc-defg"));
    let bad = app.get(&format!("{base}/week?from=2027-13-01"), &t.nurse.token).await;
    assert_eq!(bad.status, 422, "{}", bad.text);

    // The nurse's own week, a page at a time.
    let mut mine = Vec::new();
    let mut path = format!("/api/v1/me/week?from={MONDAY}&limit=2");
    loop {
        let page = app.get(&path, &t.nurse.token).await.expect(200);
        mine.extend(shape(&page.body));
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/me/week?from={MONDAY}&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        mine,
        vec![
            row("visit", "2027-01-04", "10:00", "訪問看護"),
            row("appointment", "2027-01-05", "10:00", "サービス担当者会議"),
            row("visit", "2027-01-07", "10:00", "訪問看護"),
        ]
    );

    // Versioned: If-Match required, stale refused; the pharmacist's plan ends, nothing is deleted.
    let pharmacy_path = format!("/api/v1/visit-plans/{}", id_of(&pharmacy_plan.body));
    let mut ended = plan(&pharmacist, "home_pharmacy", &[5], "16:00", 30);
    ended["valid_until"] = json!("2027-01-07");
    ended["reason"] = json!("月2回に変更");
    put(&app, &pharmacy_path, &pharmacist, ended.clone(), None).await.expect(428);
    put(&app, &pharmacy_path, &t.nurse, ended.clone(), Some("\"1\"")).await.expect(403);
    let res = put(&app, &pharmacy_path, &pharmacist, ended.clone(), Some("\"1\"")).await.expect(200);
    assert_eq!(res.header("etag").as_deref(), Some("\"2\""));
    put(&app, &pharmacy_path, &pharmacist, ended, Some("\"1\"")).await.expect(412);
    let versions = app.get(&format!("{pharmacy_path}/versions"), &t.nurse.token).await.expect(200);
    assert_eq!(versions.body["items"].as_array().unwrap().len(), 2);
    // The meeting is cancelled: it stays, marked; a cancelled one is not changed again.
    let mut cancelled = meeting(&[cm, &t.nurse, &physician, &pharmacist]);
    cancelled["status"] = json!("cancelled");
    cancelled["reason"] = json!("入院のため延期");
    put(&app, &meeting_path, &t.nurse, cancelled.clone(), Some("\"1\"")).await.expect(200);
    put(&app, &meeting_path, &t.nurse, cancelled, Some("\"2\"")).await.expect(409);
    let week = app.get(&format!("{base}/week?from={MONDAY}"), &t.nurse.token).await.expect(200);
    let items = week.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "the ended plan no longer visits on Friday");
    assert_eq!(items[1]["status"], json!("cancelled"));

    // Every write reached the change feed.
    crate::changes::until(&app, &t.nurse, &feed_cursor, |items| {
        let kinds: Vec<&str> = items.iter().filter_map(|i| i["kind"].as_str()).collect();
        ["medication", "allergy", "visit_plan", "appointment", "emergency_card"].iter().all(|k| kinds.contains(k))
    })
    .await;

    // At night an emergency physician breaks the glass and gets the card in one request.
    let er = app.organization(&t.admin, "hospital", "中原救急病院", Some("14133")).await;
    let er_physician = app.person(&t.admin, &er, "physician", "member").await;
    let card_path = format!("{base}/emergency-card");
    app.get(&card_path, &er_physician.token).await.expect(404);
    app.post(
        &format!("{base}/emergency-access"),
        &er_physician.token,
        json!({"reason": "夜間救急搬送、意識レベル低下のため急変時の意向を確認"}),
    )
    .await
    .expect(201);
    let sheet = app.get(&card_path, &er_physician.token).await.expect(200);
    assert_eq!(sheet.body["card"]["dnar"]["decision"], json!("dnar"));
    assert_eq!(sheet.body["medications"].as_array().unwrap().len(), 6);
    assert_eq!(sheet.body["allergies"][0]["substance"], json!("ペニシリン系抗菌薬"));
    app.get(&format!("{base}/week?from={MONDAY}"), &er_physician.token).await.expect(200);
    app.post(&plans, &er_physician.token, plan(&t.nurse, "home_nursing", &[2], "10:00", 60)).await.expect(403);

    // The FHIR export validates, with the week as Appointments.
    let res = app.get(&format!("{base}/fhir"), &cm.token).await.expect(200);
    let appts: Vec<&Value> = res.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == json!("Appointment"))
        .collect();
    assert_eq!(appts.len(), 4, "three plans and the meeting");
    assert_eq!(appts.iter().filter(|a| a["status"] == json!("proposed")).count(), 3);
    assert!(appts
        .iter()
        .any(|a| a["status"] == json!("cancelled") && a["start"].as_str().unwrap().starts_with("2027-01-05T01:00:00")));
    crate::fhir::validate_independently(&res.body);

    // Every list is versioned and nothing can be deleted, not even with database access.
    use diesel::connection::SimpleConnection;
    let mut conn = app.db.get().unwrap();
    for sql in [
        "DELETE FROM medication_versions",
        "DELETE FROM medications",
        "DELETE FROM allergy_versions",
        "DELETE FROM emergency_card_versions",
        "DELETE FROM visit_plan_versions",
        "UPDATE visit_plan_versions SET start_minute = 0",
        "DELETE FROM visit_plans",
        "DELETE FROM appointment_versions",
        "UPDATE appointment_versions SET status = 'booked'",
        "DELETE FROM appointments",
    ] {
        assert!(conn.batch_execute(sql).is_err(), "{sql} refused by the database");
    }
}

/// The minutes of a conference are a note of the same patient; a held conference is fulfilled.
async fn conference_minutes_and_the_default_week(app: TestApp) {
    let t = team(&app, "14134").await;
    let base = format!("/api/v1/patients/{}", t.patient_id);
    let cm = &t.care_manager;
    let mut conference = meeting(&[cm, &t.nurse]);
    conference["kind"] = json!("discharge_conference");
    conference["video_url"] = Value::Null;
    conference["starts_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339());
    conference["ends_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339());
    let booked = app.post(&format!("{base}/appointments"), &t.nurse.token, conference.clone()).await.expect(201);
    let path = format!("/api/v1/appointments/{}", id_of(&booked.body));
    let note = json!({"kind": "conference", "occurred_at": chrono::Utc::now().to_rfc3339(), "text": "退院前カンファレンス議事録"});
    let note = app.post(&format!("{base}/notes"), &t.nurse.token, note).await.expect(201);
    // Another patient's note is not these minutes.
    let other = app.post("/api/v1/patients", &cm.token, patient_body("高津", "タカツ", "14134")).await.expect(201);
    let other_note = json!({"kind": "visit", "occurred_at": chrono::Utc::now().to_rfc3339(), "text": "x"});
    let other_note =
        app.post(&format!("/api/v1/patients/{}/notes", id_of(&other.body)), &cm.token, other_note).await.expect(201);
    conference["status"] = json!("fulfilled");
    conference["minutes_note_id"] = json!(id_of(&other_note.body));
    assert_eq!(field_of(&put(&app, &path, &t.nurse, conference.clone(), Some("\"1\"")).await), "minutes_note_id");
    conference["minutes_note_id"] = json!(id_of(&note.body));
    let held = put(&app, &path, &t.nurse, conference, Some("\"1\"")).await.expect(200);
    assert_eq!(held.body["status"], json!("fulfilled"));
    // Without `from`, this week (from Monday in Japan) holds it.
    let week = app.get(&format!("{base}/week"), &cm.token).await.expect(200);
    let from = chrono::NaiveDate::parse_from_str(week.body["from"].as_str().unwrap(), "%Y-%m-%d").unwrap();
    assert_eq!(chrono::Datelike::weekday(&from), chrono::Weekday::Mon);
    let res = app.get(&format!("{base}/fhir"), &cm.token).await.expect(200);
    let appt = res.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == json!("Appointment"))
        .unwrap();
    assert_eq!(appt["supportingInformation"][0]["reference"], json!(format!("urn:uuid:{}", id_of(&note.body))));
    crate::fhir::validate_independently(&res.body);
}

/// Who may do what with the week, one row per relation to the patient. W1 GET visit plans,
/// W2 POST the nurse's plan, W3 GET a plan, W4 PUT it, W5 GET its versions, W6 GET
/// appointments, W7 POST an appointment the nurse attends, W8 GET it, W9 PUT it, W10 GET its
/// versions, W11 GET the week.
async fn week_authorisation_matrix(app: TestApp) {
    let t = team(&app, "14135").await;
    let admin = &t.admin;
    let pid = t.patient_id.clone();
    let base = format!("/api/v1/patients/{pid}");
    let pharmacy = app.organization(admin, "pharmacy", "多摩薬局", Some("14135")).await;
    let pharmacist = app.person(admin, &pharmacy, "pharmacist", "member").await;
    app.post(
        &format!("{base}/care-team"),
        &t.care_manager.token,
        json!({"user_id": pharmacist.id, "role": "pharmacist"}),
    )
    .await
    .expect(201);
    let former = app.person(admin, &t.nurse_station, "nurse", "member").await;
    let m = app
        .post(
            &format!("{base}/care-team"),
            &t.care_manager.token,
            json!({"user_id": former.id, "role": "visiting_nurse"}),
        )
        .await
        .expect(201);
    let today = (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive().to_string();
    app.patch(&format!("{base}/care-team/{}", id_of(&m.body)), &t.care_manager.token, json!({"ended_on": today}), None)
        .await
        .expect(200);
    let other_office = app.organization(admin, "care_management_office", "多摩ケアプラン", Some("14135")).await;
    let other_team = app.person(admin, &other_office, "care_manager", "member").await;
    let clinic = app.organization(admin, "clinic", "多摩在宅クリニック", Some("14135")).await;
    let coordinator = app.person(admin, &clinic, "physician", "member").await;
    let other_coordinator = app.person(admin, &clinic, "physician", "member").await;
    for (ward, who) in [("14135", &coordinator), ("14136", &other_coordinator)] {
        let path = format!("/api/v1/wards/{ward}/coordinators/{}", who.id);
        app.call("PUT", &path, Some(&admin.token), None, &[]).await.expect(201);
    }
    let station_admin = app.person(admin, &t.nurse_station, "nurse", "org_admin").await;
    let reason = json!({"reason": "夜間に救急搬送の連絡あり、急変時の意向の確認のため"});
    let emergency = app.person(admin, &clinic, "physician", "member").await;
    app.post(&format!("{base}/emergency-access"), &emergency.token, reason.clone()).await.expect(201);
    let expired = app.person(admin, &clinic, "physician", "member").await;
    app.post(&format!("{base}/emergency-access"), &expired.token, reason).await.expect(201);
    expire_emergency_access(&app, &expired.id).await;
    let nursing = plan(&t.nurse, "home_nursing", &[1], "10:00", 60);
    let plan_id =
        id_of(&app.post(&format!("{base}/visit-plans"), &t.care_manager.token, nursing.clone()).await.expect(201).body);
    let visit = json!({"kind": "visit", "service_type": "home_nursing", "starts_at": "2027-01-05T01:00:00Z",
                       "ends_at": "2027-01-05T02:00:00Z", "attendees": [t.nurse.id]});
    let appointment_id =
        id_of(&app.post(&format!("{base}/appointments"), &t.care_manager.token, visit.clone()).await.expect(201).body);
    let ids = WeekIds { plan_id, appointment_id, plan: nursing, appointment: visit };

    #[rustfmt::skip]
    let rows: Vec<(&str, &Person, [u16; 11])> = vec![
        //                                                  W1   W2   W3   W4   W5   W6   W7   W8   W9   W10  W11
        ("lead care manager",        &t.care_manager,      [200, 201, 200, 200, 200, 200, 201, 200, 200, 200, 200]),
        // The nurse's own visits.
        ("active member (nurse)",    &t.nurse,             [200, 201, 200, 200, 200, 200, 201, 200, 200, 200, 200]),
        // Someone else's visits: the care manager's or the lead's to enter.
        ("active member (pharmacist)", &pharmacist,        [200, 403, 200, 403, 200, 200, 403, 200, 403, 200, 200]),
        ("former member",            &former,              [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
        ("another patient's team",   &other_team,          [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
        ("coordinator of the ward",  &coordinator,         [200, 403, 200, 403, 200, 200, 403, 200, 403, 200, 200]),
        ("coordinator of another",   &other_coordinator,   [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
        ("org admin of a member",    &station_admin,       [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
        ("system admin",             admin,                [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
        ("emergency access",         &emergency,           [200, 403, 200, 403, 200, 200, 403, 200, 403, 200, 200]),
        ("emergency access expired", &expired,             [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
    ];
    let missing = "01900000-0000-7000-8000-000000000000";
    for (name, person, expected) in rows {
        for (i, want) in expected.iter().enumerate() {
            let res = week_call(&app, &t, &ids, i, &pid, person).await;
            assert_eq!(res.status, *want, "{name}: route W{} answered {}: {}", i + 1, res.status, res.text);
            if *want == 404 {
                let ghost = week_call(&app, &t, &ids, i, missing, person).await;
                assert_eq!(res.status, ghost.status, "{name} W{}", i + 1);
                assert_eq!(res.text, ghost.text, "{name} W{}: body differs from a missing patient", i + 1);
                for h in ["content-type", "content-length", "cache-control"] {
                    assert_eq!(res.header(h), ghost.header(h), "{name} W{}: header {h}", i + 1);
                }
            }
        }
    }
    // My week shows only the patients of my teams, each read audited.
    let mine = app.get("/api/v1/me/week?from=2027-01-04", &other_team.token).await.expect(200);
    assert_eq!(mine.body["items"], json!([]));
    let mine = app.get("/api/v1/me/week?from=2027-01-04", &t.nurse.token).await.expect(200);
    let items = mine.body["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|i| i["user_ids"].as_array().unwrap().contains(&json!(t.nurse.id))), "{items:?}");
    let log = app.get(&format!("{base}/access-log"), &t.care_manager.token).await.expect(200);
    assert!(log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor_id"] == json!(t.nurse.id) && e["resource_type"] == json!("visit_plan")));
    let bad = app.get("/api/v1/me/week?cursor=%%%", &t.nurse.token).await;
    assert!(bad.status == 400 || bad.status == 422, "{}", bad.text);
}

struct WeekIds {
    plan_id: String,
    appointment_id: String,
    plan: Value,
    appointment: Value,
}

async fn week_call(app: &TestApp, t: &Team, ids: &WeekIds, route: usize, pid: &str, person: &Person) -> TestResponse {
    let real = pid == t.patient_id;
    let base = format!("/api/v1/patients/{pid}");
    let lead = &t.care_manager.token;
    let (plan, appointment) = if real {
        (ids.plan_id.clone(), ids.appointment_id.clone())
    } else {
        ("01900000-0000-7000-8000-0000000000af".to_string(), "01900000-0000-7000-8000-0000000000b0".to_string())
    };
    let etag = |path: String| async move { app.get(&path, lead).await.header("etag").unwrap() };
    let token = &person.token;
    let put = |path: String, body: Value, if_match: String| async move {
        app.call("PUT", &path, Some(token), Some(&body), &[("if-match", &if_match)]).await
    };
    match route {
        0 => app.get(&format!("{base}/visit-plans"), token).await,
        1 => app.post(&format!("{base}/visit-plans"), token, ids.plan.clone()).await,
        2 => app.get(&format!("/api/v1/visit-plans/{plan}"), token).await,
        3 => {
            let e = etag(format!("/api/v1/visit-plans/{}", ids.plan_id)).await;
            put(format!("/api/v1/visit-plans/{plan}"), ids.plan.clone(), e).await
        }
        4 => app.get(&format!("/api/v1/visit-plans/{plan}/versions"), token).await,
        5 => app.get(&format!("{base}/appointments"), token).await,
        6 => app.post(&format!("{base}/appointments"), token, ids.appointment.clone()).await,
        7 => app.get(&format!("/api/v1/appointments/{appointment}"), token).await,
        8 => {
            let e = etag(format!("/api/v1/appointments/{}", ids.appointment_id)).await;
            put(format!("/api/v1/appointments/{appointment}"), ids.appointment.clone(), e).await
        }
        9 => app.get(&format!("/api/v1/appointments/{appointment}/versions"), token).await,
        10 => app.get(&format!("{base}/week?from=2027-01-04"), token).await,
        _ => unreachable!(),
    }
}

crate::both_backends!(the_scripted_scenario, conference_minutes_and_the_default_week, week_authorisation_matrix);
