//! Discharge coordination as practice does it: who on the team does each task, the caseload after
//! discharge, the screening and joint-guidance deadlines the fees are paid by, and FHIR Task's
//! twelve statuses (docs/domain.md).

use chrono::{Duration, NaiveDate};
use serde_json::{json, Value};

use crate::helpers::{Person, TestApp};
use crate::patients::team;

fn today_jst() -> NaiveDate {
    (chrono::Utc::now() + Duration::hours(9)).date_naive()
}

fn days_from_today(days: i64) -> String {
    (today_jst() + Duration::days(days)).to_string()
}

fn end_of_jst_day(date: &str) -> String {
    format!("{date}T14:59:59.999999Z")
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn etag_of(v: &Value) -> String {
    format!("\"{}\"", v["version"])
}

/// A case opened by `who` for the patient of `patients::team` (カワサキ, born 1938-04-01).
async fn open_case(app: &TestApp, who: &Person, patient_id: &str, admission: Value) -> Value {
    let mut body = json!({"patient_id": patient_id, "birth_date": "1938-04-01", "family_name_kana": "カワサキ"});
    for (k, v) in admission.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.post("/api/v1/discharge-cases", &who.token, body).await.expect(201).body
}

/// A case's tasks by template key (ad-hoc ones by id).
async fn case_tasks(app: &TestApp, token: &str, case_id: &str) -> std::collections::HashMap<String, Value> {
    let res = app.get(&format!("/api/v1/discharge-cases/{case_id}/tasks"), token).await.expect(200);
    res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["template_key"].as_str().map(str::to_string).unwrap_or_else(|| id_of(t)), t.clone()))
        .collect()
}

async fn my_tasks(app: &TestApp, who: &Person) -> Vec<Value> {
    app.get("/api/v1/me/tasks?limit=200", &who.token).await.expect(200).body["items"].as_array().unwrap().clone()
}

fn has(list: &[Value], task: &Value) -> bool {
    list.iter().any(|t| t["id"] == task["id"])
}

async fn discharge(app: &TestApp, who: &Person, case_id: &str, on: &str) -> Value {
    app.post(&format!("/api/v1/discharge-cases/{case_id}/discharge"), &who.token, json!({"discharged_on": on}))
        .await
        .expect(200)
        .body
}

/// Moves a task through these statuses, each from the version the last answer gave.
async fn advance(app: &TestApp, who: &Person, task: &Value, statuses: &[&str]) -> Value {
    let mut task = task.clone();
    for status in statuses {
        task = app
            .patch(
                &format!("/api/v1/tasks/{}", id_of(&task)),
                &who.token,
                json!({"status": status}),
                Some(&etag_of(&task)),
            )
            .await
            .expect(200)
            .body;
        assert_eq!(task["status"], json!(status));
    }
    task
}

/// FHIR Task's twelve statuses: a request is received before it is accepted, an accepted task is
/// made ready, work in progress can fail, and a task that should never have existed is marked
/// entered in error; the final ones stay final, and the FHIR export writes each code with `-`.
async fn a_task_speaks_all_twelve_fhir_statuses(app: TestApp) {
    let t = team(&app, "14135").await;
    let cm = &t.care_manager;
    let hospital = app.organization(&t.admin, "hospital", "多摩病院", Some("14135")).await;
    let msw = app.person(&t.admin, &hospital, "social_worker", "member").await;
    let case = open_case(&app, &msw, &t.patient_id, json!({"admitted_on": days_from_today(-1)})).await;
    let tasks = case_tasks(&app, &cm.token, &id_of(&case)).await;

    // 入院時情報提供: received, accepted, made ready, started, then the fax line fails.
    let failed =
        advance(&app, cm, &tasks["admission_info"], &["received", "accepted", "ready", "in_progress", "failed"]).await;
    // A failed task is final; the care manager adds a new task to try again.
    let refused = app
        .patch(
            &format!("/api/v1/tasks/{}", id_of(&failed)),
            &cm.token,
            json!({"status": "in_progress"}),
            Some(&etag_of(&failed)),
        )
        .await
        .expect(409);
    assert!(refused.body["detail"].as_str().unwrap().contains("failed"));
    // The special order was created for the wrong patient's needs: entered in error, and final.
    let wrong = advance(&app, cm, &tasks["special_home_nursing_order"], &["entered_in_error"]).await;
    for next in ["requested", "cancelled", "completed"] {
        app.patch(
            &format!("/api/v1/tasks/{}", id_of(&wrong)),
            &cm.token,
            json!({"status": next}),
            Some(&etag_of(&wrong)),
        )
        .await
        .expect(409);
    }
    // A received request may still be rejected; on hold work resumes.
    advance(&app, &msw, &tasks["multidisciplinary_conference"], &["received", "rejected"]).await;
    advance(&app, &msw, &tasks["patient_family_interview"], &["accepted", "on_hold", "in_progress", "completed"]).await;
    // An unknown status is refused naming the field.
    let bad = &tasks["care_plan"];
    let res = app
        .patch(&format!("/api/v1/tasks/{}", id_of(bad)), &cm.token, json!({"status": "done"}), Some(&etag_of(bad)))
        .await
        .expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("status"));

    // Final tasks leave the lists and the open count; open ones stay.
    let case = app.get(&format!("/api/v1/discharge-cases/{}", id_of(&case)), &cm.token).await.expect(200).body;
    assert_eq!(case["open_tasks"], json!(12 - 4));
    let mine = my_tasks(&app, cm).await;
    assert!(!has(&mine, &failed) && !has(&mine, &wrong));

    // The FHIR export writes the codes as FHIR spells them.
    let bundle = app.get(&format!("/api/v1/patients/{}/fhir", t.patient_id), &cm.token).await.expect(200).body;
    let statuses: Vec<String> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["resourceType"] == json!("Task"))
        .map(|e| e["resource"]["status"].as_str().unwrap().to_string())
        .collect();
    for code in ["failed", "entered-in-error", "rejected", "completed", "requested"] {
        assert!(statuses.iter().any(|s| s == code), "{code} in {statuses:?}");
    }
}

/// A hospital that claims 入退院支援加算2 switches its screening to the 加算2 row: since the 2020
/// revision that is within 3 days of admission too, as for 加算1 (it was 7 days before).
async fn a_hospital_on_addon_2_screens_within_three_days(app: TestApp) {
    use diesel::prelude::*;
    use renkei::db::schema::discharge_task_templates as templates;
    let t = team(&app, "14136").await;
    let hospital = app.organization(&t.admin, "hospital", "宮前病院", Some("14136")).await;
    let nurse = app.person(&t.admin, &hospital, "nurse", "member").await;
    app.db
        .run(|conn| {
            for (key, active) in [("discharge_screening", false), ("discharge_screening_addon2", true)] {
                diesel::update(templates::table.filter(templates::key.eq(key)))
                    .set(templates::active.eq(active))
                    .execute(conn)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let listed = app.get("/api/v1/discharge-task-templates", &nurse.token).await.expect(200).body;
    let addon2 = listed["items"].as_array().unwrap().iter().find(|t| t["key"] == json!("discharge_screening_addon2"));
    let addon2 = addon2.unwrap();
    assert_eq!((addon2["offset_days"].clone(), addon2["active"].clone()), (json!(3), json!(true)));
    assert!(addon2["source"].as_str().unwrap().contains("2020"), "{addon2}");

    // Admitted on Monday 2 February 2026: screened by the end of Thursday 5 February, not Monday 9.
    let case = open_case(&app, &nurse, &t.patient_id, json!({"admitted_at": "2026-02-02T10:00:00+09:00"})).await;
    let tasks = case_tasks(&app, &nurse.token, &id_of(&case)).await;
    assert!(!tasks.contains_key("discharge_screening"));
    assert_eq!(tasks["discharge_screening_addon2"]["due_at"], json!(end_of_jst_day("2026-02-05")));
    assert_eq!(tasks["discharge_screening_addon2"]["overdue"], json!(true));
}

/// 退院時共同指導 may be held on the day of discharge itself: the joint discharge conference is due
/// by the end of the discharge day — the planned one, then the day the patient actually leaves —
/// while the care plan must be ready the day before.
async fn joint_discharge_guidance_is_due_by_the_end_of_the_discharge_day(app: TestApp) {
    let t = team(&app, "14137").await;
    let cm = &t.care_manager;
    let hospital = app.organization(&t.admin, "hospital", "麻生総合病院", Some("14137")).await;
    let msw = app.person(&t.admin, &hospital, "social_worker", "member").await;

    // A patient leaving hospital today: the guidance can still be given today, the care plan is late.
    let today = days_from_today(0);
    let case = open_case(
        &app,
        &msw,
        &t.patient_id,
        json!({"admitted_on": days_from_today(-20), "planned_discharge_on": today}),
    )
    .await;
    let case_id = id_of(&case);
    let tasks = case_tasks(&app, &cm.token, &case_id).await;
    let joint = &tasks["joint_discharge_conference"];
    assert_eq!(joint["due_at"], json!(end_of_jst_day(&today)));
    assert_eq!(joint["overdue"], json!(false), "due at the end of the discharge day, not before it");
    assert_eq!(tasks["care_plan"]["due_at"], json!(end_of_jst_day(&days_from_today(-1))));
    assert_eq!(tasks["care_plan"]["overdue"], json!(true));
    let templates = app.get("/api/v1/discharge-task-templates", &cm.token).await.expect(200).body;
    let row = templates["items"].as_array().unwrap().iter().find(|t| t["key"] == json!("joint_discharge_conference"));
    let row = row.unwrap();
    assert_eq!((row["anchor"].clone(), row["due_rule"].clone()), (json!("discharge_day"), json!("end_of_day")));

    // The hospital moves the discharge to tomorrow: the guidance moves with it.
    let current = app.get(&format!("/api/v1/discharge-cases/{case_id}"), &msw.token).await.expect(200);
    let tomorrow = days_from_today(1);
    app.patch(
        &format!("/api/v1/discharge-cases/{case_id}"),
        &msw.token,
        json!({"planned_discharge_on": tomorrow}),
        Some(&current.header("etag").unwrap()),
    )
    .await
    .expect(200);
    let tasks = case_tasks(&app, &cm.token, &case_id).await;
    assert_eq!(tasks["joint_discharge_conference"]["due_at"], json!(end_of_jst_day(&tomorrow)));

    // The patient actually leaves today after all: the actual discharge day counts.
    discharge(&app, &msw, &case_id, &today).await;
    let tasks = case_tasks(&app, &cm.token, &case_id).await;
    assert_eq!(tasks["joint_discharge_conference"]["due_at"], json!(end_of_jst_day(&today)));
    // Held on the day of discharge, this morning: recording it completes the task.
    let held_at = format!("{today}T00:00:00+09:00");
    app.post(
        &format!("/api/v1/discharge-cases/{case_id}/conferences"),
        &msw.token,
        json!({
            "held_at": held_at,
            "place": "病棟 面談室",
            "attendees": [{"name": "麻生 花子", "profession": "care_manager", "organization": "川崎ケアプランセンター"}],
            "content": "退院当日に共同指導。訪問看護は明日から開始。"
        }),
    )
    .await
    .expect(201);
    let tasks = case_tasks(&app, &cm.token, &case_id).await;
    assert_eq!(tasks["joint_discharge_conference"]["status"], json!("completed"));
}


crate::both_backends!(
    a_task_speaks_all_twelve_fhir_statuses,
    a_hospital_on_addon_2_screens_within_three_days,
    joint_discharge_guidance_is_due_by_the_end_of_the_discharge_day,
);
