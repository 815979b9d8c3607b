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

fn in_list(list: &[Value], tasks: &std::collections::HashMap<String, Value>, key: &str) -> bool {
    has(list, &tasks[key])
}

async fn join_team(app: &TestApp, lead: &Person, patient_id: &str, who: &Person, role: &str) -> String {
    let res = app
        .post(
            &format!("/api/v1/patients/{patient_id}/care-team"),
            &lead.token,
            json!({"user_id": who.id, "role": role}),
        )
        .await
        .expect(201);
    id_of(&res.body)
}

/// The hospital's tasks reach the hospital: a discharge nurse opens a case and finds her hospital's
/// screening, interview and conference in her own list, the medical social worker of the same
/// hospital sees them too once on the team, and the visiting nurse's first visit is not in hers.
/// A task nobody on the team can do — the pharmacist's, on a team without a pharmacist — is shown
/// as unassigned to the case's opener and the team lead, and goes to the pharmacist who joins.
async fn tasks_go_to_the_role_on_the_care_team(app: TestApp) {
    let t = team(&app, "14133").await;
    let (cm, visiting_nurse) = (&t.care_manager, &t.nurse);
    let hospital = app.organization(&t.admin, "hospital", "中原中央病院", Some("14133")).await;
    let discharge_nurse = app.person(&t.admin, &hospital, "nurse", "member").await;
    let msw = app.person(&t.admin, &hospital, "social_worker", "member").await;
    let case = open_case(
        &app,
        &discharge_nurse,
        &t.patient_id,
        json!({"admitted_on": days_from_today(-2), "planned_discharge_on": days_from_today(12)}),
    )
    .await;
    let case_id = id_of(&case);
    discharge(&app, &discharge_nurse, &case_id, &days_from_today(0)).await;
    let tasks = case_tasks(&app, &cm.token, &case_id).await;
    let hospital_tasks = [
        "discharge_screening",
        "patient_family_interview",
        "multidisciplinary_conference",
        "joint_discharge_conference",
    ];
    for key in hospital_tasks {
        assert_eq!(tasks[key]["team_role"], json!("hospital_staff"), "{key}");
        assert_eq!(tasks[key]["profession"], json!("social_worker"), "{key}: kept for older clients");
        assert_eq!(tasks[key]["unassigned"], json!(false), "{key}");
    }
    assert_eq!(tasks["first_home_visit"]["team_role"], json!("visiting_nurse"));
    assert_eq!(tasks["admission_info"]["team_role"], json!("care_manager"));
    assert_eq!(tasks["home_nursing_order"]["team_role"], json!("primary_physician"));
    assert_eq!(tasks["medication_reconciliation"]["team_role"], json!("pharmacist"));

    // The discharge nurse's own list: her hospital's tasks, not the visiting nurse's or the care manager's.
    let hers = my_tasks(&app, &discharge_nurse).await;
    for key in hospital_tasks {
        assert!(in_list(&hers, &tasks, key), "{key} in the discharge nurse's list");
    }
    assert!(!in_list(&hers, &tasks, "first_home_visit"), "the visiting nurse's task is not hers");
    assert!(!in_list(&hers, &tasks, "admission_info"));
    // The visiting nurse's list: her first visit, none of the hospital's tasks.
    let visiting = my_tasks(&app, visiting_nurse).await;
    assert!(in_list(&visiting, &tasks, "first_home_visit"));
    for key in hospital_tasks {
        assert!(!in_list(&visiting, &tasks, key), "{key} is not the visiting nurse's");
    }

    // The MSW of the same hospital joins the team: the hospital's tasks are hers too.
    assert!(!in_list(&my_tasks(&app, &msw).await, &tasks, "discharge_screening"), "not on the team yet");
    join_team(&app, cm, &t.patient_id, &msw, "hospital_staff").await;
    let msws = my_tasks(&app, &msw).await;
    for key in hospital_tasks {
        assert!(in_list(&msws, &tasks, key), "{key} in the MSW's list");
    }
    assert!(!in_list(&msws, &tasks, "first_home_visit"));

    // No pharmacist and no home physician on the team: their tasks are unassigned, in the lists of
    // the opener (the discharge nurse) and the lead (the care manager), and nobody else's.
    let tasks = case_tasks(&app, &cm.token, &case_id).await;
    for key in ["medication_reconciliation", "home_nursing_order", "special_home_nursing_order"] {
        assert_eq!(tasks[key]["unassigned"], json!(true), "{key}");
    }
    let (hers, leads, msws) =
        (my_tasks(&app, &discharge_nurse).await, my_tasks(&app, cm).await, my_tasks(&app, &msw).await);
    let unassigned = hers.iter().find(|t| t["template_key"] == json!("medication_reconciliation")).unwrap();
    assert_eq!(unassigned["unassigned"], json!(true));
    assert!(in_list(&leads, &tasks, "medication_reconciliation"), "the lead sees the unassigned task");
    assert!(in_list(&leads, &tasks, "home_nursing_order"));
    assert!(!in_list(&msws, &tasks, "medication_reconciliation"), "neither the opener nor the lead");
    assert!(!in_list(&my_tasks(&app, visiting_nurse).await, &tasks, "medication_reconciliation"));

    // A pharmacist joins: the task is hers, and leaves the opener's and the lead's lists.
    let pharmacy = app.organization(&t.admin, "pharmacy", "中原薬局", Some("14133")).await;
    let pharmacist = app.person(&t.admin, &pharmacy, "pharmacist", "member").await;
    join_team(&app, cm, &t.patient_id, &pharmacist, "pharmacist").await;
    let theirs = my_tasks(&app, &pharmacist).await;
    let found = theirs.iter().find(|t| t["template_key"] == json!("medication_reconciliation")).unwrap();
    assert_eq!(found["unassigned"], json!(false));
    assert!(!in_list(&my_tasks(&app, &discharge_nurse).await, &tasks, "medication_reconciliation"));
    assert!(!in_list(&my_tasks(&app, cm).await, &tasks, "medication_reconciliation"));

    // The visiting nurse leaves the team: her first visit is nobody's, so the lead sees it.
    app.patch(
        &format!("/api/v1/patients/{}/care-team/{}", t.patient_id, t.nurse_member_id),
        &cm.token,
        json!({"ended_on": days_from_today(0)}),
        None,
    )
    .await
    .expect(200);
    let leads = my_tasks(&app, cm).await;
    let visit = leads.iter().find(|t| t["template_key"] == json!("first_home_visit")).unwrap();
    assert_eq!(visit["unassigned"], json!(true));
    assert!(in_list(&my_tasks(&app, &discharge_nurse).await, &tasks, "first_home_visit"), "and the opener");

    // Ad-hoc tasks name a role; an older client's profession names one too.
    let path = format!("/api/v1/discharge-cases/{case_id}/tasks");
    let by_role = app
        .post(&path, &cm.token, json!({"title": "退院時サマリーの送付", "team_role": "hospital_staff"}))
        .await
        .expect(201)
        .body;
    let by_profession = app
        .post(&path, &cm.token, json!({"title": "地域連携室への連絡", "profession": "social_worker"}))
        .await
        .expect(201);
    assert_eq!(by_profession.body["team_role"], json!("hospital_staff"));
    let by_assignee = app
        .post(&path, &cm.token, json!({"title": "服薬カレンダーの準備", "assignee_id": pharmacist.id}))
        .await
        .expect(201);
    assert_eq!(by_assignee.body["team_role"], json!("pharmacist"), "the assignee's role on the team");
    let msws = my_tasks(&app, &msw).await;
    assert!(has(&msws, &by_role) && has(&msws, &by_profession.body));
    assert!(has(&my_tasks(&app, &discharge_nurse).await, &by_role));
    let none = app.post(&path, &cm.token, json!({"title": "誰の仕事?"})).await.expect(422);
    assert_eq!(none.body["errors"][0]["field"], json!("team_role"));
    assert_eq!(none.body["errors"][0]["code"], json!("assignment_required"));
    // A task moved to another role follows it.
    let moved = app
        .patch(
            &format!("/api/v1/tasks/{}", id_of(&by_role)),
            &cm.token,
            json!({"team_role": "care_manager"}),
            Some(&etag_of(&by_role)),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(moved["team_role"], json!("care_manager"));
    assert!(!has(&my_tasks(&app, &msw).await, &moved));
    assert!(has(&my_tasks(&app, cm).await, &moved));
}

async fn caseload_row(app: &TestApp, coordinator: &Person, ward: &str, patient_id: &str) -> Value {
    let res = app.get(&format!("/api/v1/wards/{ward}/caseload?limit=100"), &coordinator.token).await.expect(200);
    res.body["items"].as_array().unwrap().iter().find(|r| r["id"] == json!(patient_id)).unwrap().clone()
}

/// After discharge the caseload still shows the case — its overdue first-visit task and the
/// earliest open deadline — until the case is closed.
async fn the_caseload_keeps_a_discharged_case_until_it_is_closed(app: TestApp) {
    let ward = "14131";
    let t = team(&app, ward).await;
    let cm = &t.care_manager;
    let clinic = app.organization(&t.admin, "clinic", "川崎在宅クリニック", Some(ward)).await;
    let coordinator = app.person(&t.admin, &clinic, "physician", "member").await;
    app.call("PUT", &format!("/api/v1/wards/{ward}/coordinators/{}", coordinator.id), Some(&t.admin.token), None, &[])
        .await
        .expect(201);
    let hospital = app.organization(&t.admin, "hospital", "川崎中央病院", Some(ward)).await;
    let msw = app.person(&t.admin, &hospital, "social_worker", "member").await;
    let row = || caseload_row(&app, &coordinator, ward, &t.patient_id);

    let case = open_case(&app, &msw, &t.patient_id, json!({"admitted_on": days_from_today(-20)})).await;
    let case_id = id_of(&case);
    let admitted = row().await;
    assert_eq!(admitted["open_discharge_case"]["id"], json!(case_id));
    assert_eq!(admitted["open_discharge_case"]["status"], json!("open"));
    assert!(admitted["open_discharge_case"]["next_task_due_at"].is_string(), "{admitted}");
    assert_eq!(
        admitted["open_discharge_case"]["overdue_tasks"],
        json!(4),
        "入院時情報提供, screening, interview, conference"
    );

    // Discharged five days ago; every task but the first home visit and the information
    // collection is done.
    discharge(&app, &msw, &case_id, &days_from_today(-5)).await;
    let tasks = case_tasks(&app, &cm.token, &case_id).await;
    for (key, task) in &tasks {
        if key != "first_home_visit" && key != "discharge_info_collection" {
            advance(&app, cm, task, &["accepted", "completed"]).await;
        }
    }
    // 退院後初回訪問 within 2 days of discharge: three days overdue; 退院・退所加算 within 7: still due.
    let discharged = row().await;
    let open_case = &discharged["open_discharge_case"];
    assert_eq!(discharged["status"], json!("home"));
    assert_eq!(open_case["id"], json!(case_id));
    assert_eq!(open_case["status"], json!("discharged"));
    assert_eq!(open_case["discharged_on"], json!(days_from_today(-5)));
    assert_eq!(open_case["overdue_tasks"], json!(1), "the overdue first-visit task");
    assert_eq!(open_case["next_task_due_at"], json!(end_of_jst_day(&days_from_today(-3))));
    let path = format!("/api/v1/wards/{ward}/caseload?overdue_tasks=true");
    let overdue = app.get(&path, &coordinator.token).await.expect(200).body;
    assert!(overdue["items"].as_array().unwrap().iter().any(|r| r["id"] == json!(t.patient_id)));

    // The visit is made and the information collected: nothing is overdue, and once the hospital
    // closes the case it leaves the caseload.
    for key in ["first_home_visit", "discharge_info_collection"] {
        advance(&app, &t.nurse, &tasks[key], &["accepted", "completed"]).await;
    }
    let done = row().await;
    assert_eq!(done["open_discharge_case"]["overdue_tasks"], json!(0));
    assert_eq!(done["open_discharge_case"]["next_task_due_at"], Value::Null);
    app.call("POST", &format!("/api/v1/discharge-cases/{case_id}/close"), Some(&msw.token), None, &[])
        .await
        .expect(200);
    assert_eq!(row().await["open_discharge_case"], Value::Null);
}

/// The day's digest of overdue and due-today tasks follows the same routing: the hospital's MSW is
/// told of her hospital's screening, and a task nobody on the team can do (the pharmacist's) goes
/// to the case's opener and the team lead; the visiting nurse, with nothing due, gets nothing.
async fn the_digest_reaches_the_role_and_the_lead(app: TestApp) {
    use diesel::prelude::*;
    use renkei::db::schema::email_outbox as outbox;
    let t = team(&app, "14132").await;
    let cm = &t.care_manager;
    let hospital = app.organization(&t.admin, "hospital", "幸中央病院", Some("14132")).await;
    let discharge_nurse = app.person(&t.admin, &hospital, "nurse", "member").await;
    let msw = app.person(&t.admin, &hospital, "social_worker", "member").await;
    // Admitted three days ago: the screening is due today. Leaving tomorrow: the medication
    // reconciliation, which nobody on the team can do, is due today too.
    open_case(
        &app,
        &discharge_nurse,
        &t.patient_id,
        json!({"admitted_on": days_from_today(-3), "planned_discharge_on": days_from_today(1)}),
    )
    .await;
    join_team(&app, cm, &t.patient_id, &msw, "hospital_staff").await;

    let mailer = app.mail.clone();
    let at = today_jst().and_hms_opt(9, 0, 0).unwrap() - Duration::hours(9);
    let queued = app.db.run(move |conn| renkei::discharge::digest::run(conn, &mailer, at, 8)).await.unwrap();
    let recipients: Vec<Option<String>> = app
        .db
        .run(|conn| {
            Ok(outbox::table
                .filter(outbox::kind.eq("overdue_digest"))
                .select(outbox::recipient_user_id)
                .load::<Option<String>>(conn)?)
        })
        .await
        .unwrap();
    let told = |who: &Person| recipients.iter().any(|r| r.as_deref() == Some(who.id.as_str()));
    assert!(told(&discharge_nurse), "the opener");
    assert!(told(&msw), "the MSW holds the hospital's role");
    assert!(told(cm), "the care manager: her own tasks, and as lead the unassigned one");
    assert!(!told(&t.nurse), "nothing of the visiting nurse's is due");
    assert_eq!(queued, 3, "{recipients:?}");
}

crate::both_backends!(
    the_digest_reaches_the_role_and_the_lead,
    tasks_go_to_the_role_on_the_care_team,
    the_caseload_keeps_a_discharged_case_until_it_is_closed,
    a_task_speaks_all_twelve_fhir_statuses,
    a_hospital_on_addon_2_screens_within_three_days,
    joint_discharge_guidance_is_due_by_the_end_of_the_discharge_day,
);
