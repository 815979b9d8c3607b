//! Discharge coordination through the API: cases opened by hospital staff, tasks with deadlines
//! in Asia/Tokyo as shared/DOMAIN.md states them, the discharge conference, the lifecycle, "my
//! tasks", and the access policy around all of it.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};
use serde_json::{json, Value};

use crate::helpers::{Person, TestApp, TestResponse};
use crate::patients::{patient_body, team};

const MISSING: &str = "01900000-0000-7000-8000-000000000000";

/// The deadline "by the end of this day" in Japan, as the API writes it: 23:59:59.999999 JST is
/// 14:59:59.999999 UTC the same day.
fn end_of_jst_day(date: &str) -> String {
    format!("{date}T14:59:59.999999Z")
}

fn today_jst() -> NaiveDate {
    (chrono::Utc::now() + Duration::hours(9)).date_naive()
}

fn days_from_today(days: i64) -> String {
    (today_jst() + Duration::days(days)).to_string()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn etag_of(v: &Value) -> String {
    format!("\"{}\"", v["version"])
}

/// A hospital and its discharge-support social worker (MSW).
async fn hospital(app: &TestApp, admin: &Person, name: &str, ward: &str) -> (String, Person) {
    let org = app.organization(admin, "hospital", name, Some(ward)).await;
    let msw = app.person(admin, &org, "social_worker", "member").await;
    (org, msw)
}

/// The body opening a case for a patient made by `patient_body(_, "カワサキ", _)`, identified by
/// birth date and kana.
fn open_body(patient_id: &str, admission: Value) -> Value {
    let mut body = json!({
        "patient_id": patient_id,
        "birth_date": "1938-04-01",
        "family_name_kana": "カワサキ",
        "department": "呼吸器内科",
        "hospital_ward": "5階東病棟",
        "reason": "誤嚥性肺炎",
        "contact": {"name": "幸 一郎", "phone": "044-000-1111"}
    });
    for (k, v) in admission.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn open_case(app: &TestApp, who: &Person, body: Value) -> TestResponse {
    app.post("/api/v1/discharge-cases", &who.token, body).await
}

async fn post_keyed(app: &TestApp, who: &Person, path: &str, body: &Value, key: &str) -> TestResponse {
    app.call("POST", path, Some(&who.token), Some(body), &[("idempotency-key", key)]).await
}

async fn case_tasks(app: &TestApp, token: &str, case_id: &str) -> HashMap<String, Value> {
    let res = app.get(&format!("/api/v1/discharge-cases/{case_id}/tasks"), token).await.expect(200);
    res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["template_key"].as_str().map(str::to_string).unwrap_or_else(|| id_of(t)), t.clone()))
        .collect()
}

fn due(tasks: &HashMap<String, Value>, key: &str) -> Value {
    tasks[key]["due_at"].clone()
}

/// Moves a task through these statuses, reading its current ETag first.
async fn advance(app: &TestApp, token: &str, task_id: &str, statuses: &[&str]) -> Value {
    let mut task = app.get(&format!("/api/v1/tasks/{task_id}"), token).await.expect(200).body;
    for status in statuses {
        let res = app
            .patch(&format!("/api/v1/tasks/{task_id}"), token, json!({"status": status}), Some(&etag_of(&task)))
            .await
            .expect(200);
        assert_eq!(res.header("etag"), Some(etag_of(&res.body)));
        task = res.body;
    }
    task
}

async fn complete(app: &TestApp, token: &str, task: &Value) -> Value {
    let done = advance(app, token, &id_of(task), &["accepted", "completed"]).await;
    assert_eq!(done["status"], json!("completed"));
    assert!(done["completed_at"].is_string());
    done
}

/// The notices recorded for a case, oldest first: (kind, recipient).
async fn notices(app: &TestApp, case_id: &str) -> Vec<(String, Option<String>)> {
    let case_id = case_id.to_string();
    let events = app.db.run(move |conn| renkei::discharge::notices::for_case(conn, &case_id)).await.unwrap();
    events.into_iter().map(|e| (e.kind.to_string(), e.recipient_id)).collect()
}

async fn my_task_ids(app: &TestApp, who: &Person) -> Vec<String> {
    let res = app.get("/api/v1/me/tasks?limit=200", &who.token).await.expect(200);
    res.body["items"].as_array().unwrap().iter().map(id_of).collect()
}

/// The done-when: admission, information sent by the care manager the same day,
/// conference, discharge, first home visit — every deadline as shared/DOMAIN.md states it.
async fn scripted_discharge_walkthrough(app: TestApp) {
    let t = team(&app, "14131").await;
    let cm = &t.care_manager;
    let clinic = app.organization(&t.admin, "clinic", "川崎在宅クリニック", Some("14131")).await;
    let physician = app.person(&t.admin, &clinic, "physician", "member").await;
    let pharmacy = app.organization(&t.admin, "pharmacy", "宮本薬局", Some("14131")).await;
    let pharmacist = app.person(&t.admin, &pharmacy, "pharmacist", "member").await;
    let (hospital_id, msw) = hospital(&app, &t.admin, "川崎中央病院", "14131").await;

    // The templates are data anyone signed in reads.
    let templates = app.get("/api/v1/discharge-task-templates", &t.nurse.token).await.expect(200);
    let templates = templates.body["items"].as_array().unwrap();
    assert_eq!(templates.len(), 15);
    assert_eq!(templates[0]["key"], json!("admission_info"));
    assert_eq!(templates.iter().filter(|t| t["active"] == json!(true)).count(), 12);

    // 1. Admission: Friday 30 January 2026, 10:00 in Japan, within business hours.
    let opened = open_case(&app, &msw, open_body(&t.patient_id, json!({"admitted_at": "2026-01-30T10:00:00+09:00"})))
        .await
        .expect(201);
    let case = opened.body.clone();
    let case_id = id_of(&case);
    assert_eq!(opened.header("location"), Some(format!("/api/v1/discharge-cases/{case_id}")));
    assert_eq!(opened.header("etag").as_deref(), Some("\"1\""));
    assert_eq!(case["status"], json!("open"));
    assert_eq!(case["hospital_id"], json!(hospital_id));
    assert_eq!(case["hospital_name"], json!("川崎中央病院"));
    assert_eq!(case["patient_name"], json!("川崎 花子"));
    assert_eq!(case["admitted_at"], json!("2026-01-30T01:00:00.000000Z"));
    assert_eq!(case["admitted_on"], json!("2026-01-30"));
    assert_eq!(case["planned_discharge_on"], Value::Null);
    assert_eq!(case["contact"], json!({"name": "幸 一郎", "phone": "044-000-1111"}));
    assert_eq!(case["has_home_physician"], json!(false), "no home physician on the team yet");
    assert_eq!(case["open_tasks"], json!(12));

    // The patient is in hospital; the hospital is on the team; the team was told.
    let patient_path = format!("/api/v1/patients/{}", t.patient_id);
    assert_eq!(app.get(&patient_path, &cm.token).await.expect(200).body["status"], json!("hospitalized"));
    let members = app.get(&format!("{patient_path}/care-team"), &cm.token).await.expect(200);
    let hospital_member =
        members.body["items"].as_array().unwrap().iter().find(|m| m["user_id"] == json!(msw.id)).unwrap().clone();
    assert_eq!(hospital_member["role"], json!("hospital_staff"));
    assert_eq!(notices(&app, &case_id).await, [("case_opened".to_string(), None)]);

    // One task per active template, with the deadlines of shared/DOMAIN.md.
    let tasks = case_tasks(&app, &cm.token, &case_id).await;
    assert_eq!(tasks.len(), 12);
    // 入院時情報連携加算(I): the same day.
    assert_eq!(due(&tasks, "admission_info"), json!("2026-01-30T14:59:59.999999Z"));
    // 入退院支援加算1: screening within 3 days, interview and conference within 7.
    assert_eq!(due(&tasks, "discharge_screening"), json!(end_of_jst_day("2026-02-02")));
    assert_eq!(due(&tasks, "patient_family_interview"), json!(end_of_jst_day("2026-02-06")));
    assert_eq!(due(&tasks, "multidisciplinary_conference"), json!(end_of_jst_day("2026-02-06")));
    // Nothing is known yet of the discharge dates.
    for key in [
        "joint_discharge_conference",
        "care_plan",
        "home_nursing_order",
        "special_home_nursing_order",
        "medication_reconciliation",
        "equipment_home_adaptation",
        "discharge_info_collection",
        "first_home_visit",
    ] {
        assert_eq!(due(&tasks, key), Value::Null, "{key}");
        assert_eq!(tasks[key]["overdue"], json!(false), "{key}: no deadline, never overdue");
    }
    assert_eq!(tasks["admission_info"]["profession"], json!("care_manager"));
    assert_eq!(tasks["admission_info"]["title"], json!("入院時情報提供"));
    assert_eq!(tasks["admission_info"]["status"], json!("requested"));
    assert_eq!(tasks["first_home_visit"]["profession"], json!("nurse"));

    // The home physician and the pharmacist join the team: the case now has a home physician.
    for (who, role) in [(&physician, "primary_physician"), (&pharmacist, "pharmacist")] {
        app.post(&format!("{patient_path}/care-team"), &cm.token, json!({"user_id": who.id, "role": role}))
            .await
            .expect(201);
    }
    let case = app.get(&format!("/api/v1/discharge-cases/{case_id}"), &msw.token).await.expect(200);
    assert_eq!(case.body["has_home_physician"], json!(true));

    // 2. The same day, the care manager sends the home-life information to the hospital.
    let info = complete(&app, &cm.token, &tasks["admission_info"]).await;
    assert_eq!(info["completed_by"], json!(cm.id));
    assert_eq!(info["due_at"], json!("2026-01-30T14:59:59.999999Z"));
    let comment = app
        .post(
            &format!("/api/v1/tasks/{}/comments", id_of(&info)),
            &cm.token,
            json!({"text": "入院時情報提供書を病棟へFAX送信しました。"}),
        )
        .await
        .expect(201);
    assert_eq!(comment.body["author_id"], json!(cm.id));
    let info = app.get(&format!("/api/v1/tasks/{}", id_of(&info)), &msw.token).await.expect(200).body;
    assert_eq!(info["comments"][0]["text"], json!("入院時情報提供書を病棟へFAX送信しました。"));
    // The hospital's own admission tasks.
    for key in ["discharge_screening", "patient_family_interview", "multidisciplinary_conference"] {
        complete(&app, &msw.token, &tasks[key]).await;
    }

    // The hospital sets the planned discharge date: Friday 27 February.
    let etag = case.header("etag").unwrap();
    let planned = app
        .patch(
            &format!("/api/v1/discharge-cases/{case_id}"),
            &msw.token,
            json!({"planned_discharge_on": "2026-02-27"}),
            Some(&etag),
        )
        .await
        .expect(200);
    assert_eq!(planned.body["planned_discharge_on"], json!("2026-02-27"));
    assert_eq!(planned.header("etag").as_deref(), Some("\"2\""));
    let tasks = case_tasks(&app, &cm.token, &case_id).await;
    // "Before discharge" is by the end of the day before; the joint guidance may be held on the
    // day of discharge itself.
    assert_eq!(due(&tasks, "joint_discharge_conference"), json!(end_of_jst_day("2026-02-27")));
    for key in [
        "care_plan",
        "home_nursing_order",
        "special_home_nursing_order",
        "medication_reconciliation",
        "equipment_home_adaptation",
    ] {
        assert_eq!(due(&tasks, key), json!(end_of_jst_day("2026-02-26")), "{key}");
    }
    assert_eq!(due(&tasks, "first_home_visit"), Value::Null, "waits for the real discharge");

    // The visiting-nursing order goes to the home physician by name.
    let order = &tasks["home_nursing_order"];
    let assigned = app
        .patch(
            &format!("/api/v1/tasks/{}", id_of(order)),
            &msw.token,
            json!({"assignee_id": physician.id}),
            Some(&etag_of(order)),
        )
        .await
        .expect(200);
    assert_eq!(assigned.body["assignee_id"], json!(physician.id));
    let physicians_tasks = my_task_ids(&app, &physician).await;
    assert!(physicians_tasks.contains(&id_of(order)));
    assert!(
        physicians_tasks.contains(&id_of(&tasks["special_home_nursing_order"])),
        "unassigned tasks of the profession"
    );

    // 3. The discharge conference, 24 February 14:00 in Japan, on the ward.
    let conference = app
        .post(
            &format!("/api/v1/discharge-cases/{case_id}/conferences"),
            &msw.token,
            json!({
                "held_at": "2026-02-24T14:00:00+09:00",
                "place": "5階東病棟 面談室",
                "attendees": [
                    {"name": "幸 一郎", "profession": "social_worker", "organization": "川崎中央病院"},
                    {"name": "山田 花子", "profession": "physician", "organization": "川崎在宅クリニック"},
                    {"name": "山田 花子", "profession": "nurse", "organization": "川崎訪問看護ステーション"},
                    {"name": "山田 花子", "profession": "care_manager", "organization": "川崎ケアプランセンター"},
                    {"name": "川崎 一郎", "profession": "other", "organization": null}
                ],
                "content": "退院後の訪問診療は週1回、訪問看護は週2回で開始。酸素療法の継続と服薬管理を確認。"
            }),
        )
        .await
        .expect(201);
    assert_eq!(conference.body["held_at"], json!("2026-02-24T05:00:00.000000Z"));
    assert_eq!(conference.body["video"], json!(false));
    assert_eq!(conference.body["attendees"].as_array().unwrap().len(), 5);
    assert_eq!(conference.body["attendees"][1]["profession"], json!("physician"));
    let listed = app.get(&format!("/api/v1/discharge-cases/{case_id}/conferences"), &cm.token).await.expect(200);
    assert_eq!(listed.body["items"][0]["id"], conference.body["id"]);
    let tasks = case_tasks(&app, &cm.token, &case_id).await;
    assert_eq!(tasks["joint_discharge_conference"]["status"], json!("completed"), "the conference completes its task");
    assert_eq!(tasks["joint_discharge_conference"]["completed_by"], json!(msw.id));

    // Everything that must be ready before discharge.
    complete(&app, &cm.token, &tasks["care_plan"]).await;
    complete(&app, &physician.token, &tasks["home_nursing_order"]).await;
    complete(&app, &pharmacist.token, &tasks["medication_reconciliation"]).await;
    complete(&app, &cm.token, &tasks["equipment_home_adaptation"]).await;
    let special = &tasks["special_home_nursing_order"];
    let special = app
        .patch(
            &format!("/api/v1/tasks/{}", id_of(special)),
            &physician.token,
            json!({"status": "cancelled", "status_reason": "急性増悪なし、通常の指示書で対応"}),
            Some(&etag_of(special)),
        )
        .await
        .expect(200);
    assert_eq!(special.body["status"], json!("cancelled"));

    // 4. Discharge on Friday 27 February 2026 (a common year: the month ends on the 28th).
    let case = app.get(&format!("/api/v1/discharge-cases/{case_id}"), &msw.token).await.expect(200);
    let discharged = app
        .call(
            "POST",
            &format!("/api/v1/discharge-cases/{case_id}/discharge"),
            Some(&msw.token),
            Some(&json!({"discharged_on": "2026-02-27"})),
            &[("if-match", &case.header("etag").unwrap())],
        )
        .await
        .expect(200);
    assert_eq!(discharged.body["status"], json!("discharged"));
    assert_eq!(discharged.body["discharged_on"], json!("2026-02-27"));
    assert_eq!(app.get(&patient_path, &cm.token).await.expect(200).body["status"], json!("home"));
    let tasks = case_tasks(&app, &cm.token, &case_id).await;
    // The first home visit within 2 days: by the end of 1 March, across the month end.
    assert_eq!(due(&tasks, "first_home_visit"), json!(end_of_jst_day("2026-03-01")));
    // 退院・退所加算: the information up to 7 days after discharge.
    assert_eq!(due(&tasks, "discharge_info_collection"), json!(end_of_jst_day("2026-03-06")));
    // Deadlines of finished tasks stay as they were.
    assert_eq!(due(&tasks, "care_plan"), json!(end_of_jst_day("2026-02-26")));
    let kinds: Vec<(String, Option<String>)> = notices(&app, &case_id).await;
    assert_eq!(
        kinds,
        [
            ("case_opened".to_string(), None),
            ("task_assigned".to_string(), Some(physician.id.clone())),
            ("patient_discharged".to_string(), None)
        ]
    );

    // 5. The first home visit: the visiting nurse finds it among her tasks and does it.
    let visit = &tasks["first_home_visit"];
    assert!(my_task_ids(&app, &t.nurse).await.contains(&id_of(visit)));
    let visit = advance(&app, &t.nurse.token, &id_of(visit), &["accepted", "in_progress", "completed"]).await;
    assert_eq!(visit["completed_by"], json!(t.nurse.id));
    assert!(!my_task_ids(&app, &t.nurse).await.contains(&id_of(&visit)));
    complete(&app, &cm.token, &tasks["discharge_info_collection"]).await;

    // Coordination is over: the hospital closes the case and leaves the team.
    let closed = app
        .call("POST", &format!("/api/v1/discharge-cases/{case_id}/close"), Some(&msw.token), None, &[])
        .await
        .expect(200);
    assert_eq!(closed.body["status"], json!("closed"));
    assert_eq!(closed.body["open_tasks"], json!(0));
    assert!(closed.body["closed_at"].is_string());
    app.get(&format!("/api/v1/discharge-cases/{case_id}"), &msw.token).await.expect(404);
    let history = app.get(&format!("{patient_path}/care-team?include_past=true"), &cm.token).await.expect(200);
    let ended =
        history.body["items"].as_array().unwrap().iter().find(|m| m["id"] == hospital_member["id"]).unwrap().clone();
    assert_eq!(ended["active"], json!(false));
    let tasks = case_tasks(&app, &cm.token, &case_id).await;
    for (key, task) in &tasks {
        let want = if key == "special_home_nursing_order" { "cancelled" } else { "completed" };
        assert_eq!(task["status"], json!(want), "{key}");
        assert_eq!(task["overdue"], json!(false), "{key}");
    }
}

/// Deadlines through the API across a month end, when the planned date changes; `If-Match` on
/// cases and tasks; ad-hoc tasks and `Idempotency-Key`.
async fn deadlines_follow_the_planned_date_across_a_month_end(app: TestApp) {
    let t = team(&app, "14132").await;
    let cm = &t.care_manager;
    let (_, msw) = hospital(&app, &t.admin, "幸総合病院", "14132").await;
    // Known only by its day: Saturday 31 January 2026, outside business hours.
    let body = open_body(&t.patient_id, json!({"admitted_on": "2026-01-31", "planned_discharge_on": "2026-03-02"}));
    let case = open_case(&app, &msw, body).await.expect(201).body;
    let case_id = id_of(&case);
    assert_eq!(case["admitted_at"], Value::Null);
    let tasks = case_tasks(&app, &cm.token, &case_id).await;
    assert_eq!(
        due(&tasks, "admission_info"),
        json!(end_of_jst_day("2026-02-02")),
        "a weekend admission: the office's next business day, Monday"
    );
    assert_eq!(due(&tasks, "discharge_screening"), json!(end_of_jst_day("2026-02-03")));
    assert_eq!(due(&tasks, "care_plan"), json!(end_of_jst_day("2026-03-01")));
    assert_eq!(due(&tasks, "equipment_home_adaptation"), json!(end_of_jst_day("2026-03-01")));

    // The care plan is done early; the equipment is not.
    complete(&app, &cm.token, &tasks["care_plan"]).await;
    let equipment = tasks["equipment_home_adaptation"].clone();
    assert_eq!(equipment["version"], json!(1));

    // Moving the planned date needs the case's current version.
    let path = format!("/api/v1/discharge-cases/{case_id}");
    let change = json!({"planned_discharge_on": "2026-03-01"});
    let missing = app.patch(&path, &msw.token, change.clone(), None).await.expect(428);
    assert_eq!(missing.problem_type(), "/problems/precondition-required");
    let stale = app.patch(&path, &msw.token, change.clone(), Some("\"7\"")).await.expect(412);
    assert_eq!(stale.problem_type(), "/problems/precondition-failed");
    // Only the case's hospital changes its dates.
    app.patch(&path, &cm.token, change.clone(), Some("\"1\"")).await.expect(403);
    let moved = app.patch(&path, &msw.token, change, Some("\"1\"")).await.expect(200);
    assert_eq!(moved.body["version"], json!(2));

    // The open task moved back across the month end, to Saturday 28 February; the done one did not.
    let tasks = case_tasks(&app, &cm.token, &case_id).await;
    assert_eq!(due(&tasks, "equipment_home_adaptation"), json!(end_of_jst_day("2026-02-28")));
    assert_eq!(due(&tasks, "care_plan"), json!(end_of_jst_day("2026-03-01")));
    assert_eq!(
        due(&tasks, "admission_info"),
        json!(end_of_jst_day("2026-02-02")),
        "the admission's clock did not move"
    );
    assert_eq!(tasks["equipment_home_adaptation"]["version"], json!(2), "a moved deadline is a new version");

    // Whoever still holds the old version of the task is told it changed.
    let task_path = format!("/api/v1/tasks/{}", id_of(&equipment));
    let stale =
        app.patch(&task_path, &cm.token, json!({"status": "accepted"}), Some(&etag_of(&equipment))).await.expect(412);
    assert_eq!(stale.problem_type(), "/problems/precondition-failed");
    app.patch(&task_path, &cm.token, json!({"status": "accepted"}), None).await.expect(428);
    app.patch(&task_path, &cm.token, json!({"status": "accepted"}), Some("\"2\"")).await.expect(200);
    // A task from a template follows its rule.
    let ruled = app
        .patch(&task_path, &cm.token, json!({"due_at": "2026-03-05T12:00:00+09:00"}), Some("\"3\""))
        .await
        .expect(422);
    assert_eq!(ruled.body["errors"][0]["code"], json!("rule_based"));

    // An ad-hoc task, due by the end of a day in Japan, sent twice with one Idempotency-Key.
    let tasks_path = format!("/api/v1/discharge-cases/{case_id}/tasks");
    let adhoc =
        json!({"title": "介護ベッドの搬入日を家族と調整", "profession": "care_manager", "due_on": "2026-02-28"});
    let key = [("idempotency-key", "3f1c-walk-bed-delivery")];
    let first = app.call("POST", &tasks_path, Some(&cm.token), Some(&adhoc), &key).await.expect(201);
    assert_eq!(first.body["due_at"], json!(end_of_jst_day("2026-02-28")));
    assert_eq!(first.body["template_key"], Value::Null);
    assert_eq!(first.header("location"), Some(format!("/api/v1/tasks/{}", id_of(&first.body))));
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = app.call("POST", &tasks_path, Some(&cm.token), Some(&adhoc), &key).await.expect(201);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(case_tasks(&app, &cm.token, &case_id).await.len(), 13, "created once");
    // Its deadline is set by hand.
    let adhoc_path = format!("/api/v1/tasks/{}", id_of(&first.body));
    let rescheduled = app
        .patch(&adhoc_path, &cm.token, json!({"due_at": "2026-03-01T18:00:00+09:00"}), Some("\"1\""))
        .await
        .expect(200);
    assert_eq!(rescheduled.body["due_at"], json!("2026-03-01T09:00:00.000000Z"));

    // A task goes to a profession or to someone on the team.
    let unassigned = app.post(&tasks_path, &cm.token, json!({"title": "家族へ連絡"})).await.expect(422);
    assert_eq!(unassigned.body["errors"][0]["code"], json!("assignment_required"));
    let stranger = app.person(&t.admin, &t.care_office, "care_manager", "member").await;
    let outsider =
        app.post(&tasks_path, &cm.token, json!({"title": "家族へ連絡", "assignee_id": stranger.id})).await.expect(422);
    assert_eq!(outsider.body["errors"][0]["code"], json!("not_on_team"));
    let to_nurse = app
        .post(&tasks_path, &cm.token, json!({"title": "退院前訪問の日程調整", "assignee_id": t.nurse.id}))
        .await
        .expect(201);
    assert_eq!(to_nurse.body["profession"], json!("nurse"), "the assignee's profession");
    assert_eq!(to_nurse.body["due_at"], Value::Null);
}

/// Moves that make no sense answer 409 and change nothing.
async fn illegal_moves_are_refused(app: TestApp) {
    let t = team(&app, "14133").await;
    let cm = &t.care_manager;
    let (_, msw) = hospital(&app, &t.admin, "中原病院", "14133").await;
    let yesterday = days_from_today(-1);
    let case = open_case(&app, &msw, open_body(&t.patient_id, json!({"admitted_on": days_from_today(-3)})))
        .await
        .expect(201)
        .body;
    let case_id = id_of(&case);
    let case_path = format!("/api/v1/discharge-cases/{case_id}");
    let tasks = case_tasks(&app, &cm.token, &case_id).await;

    // requested → completed skips a step: 409, naming both statuses.
    let info = &tasks["admission_info"];
    let task_path = format!("/api/v1/tasks/{}", id_of(info));
    let refused = app.patch(&task_path, &cm.token, json!({"status": "completed"}), Some("\"1\"")).await.expect(409);
    assert_eq!(refused.problem_type(), "/problems/conflict");
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(detail.contains("requested") && detail.contains("completed"), "{detail}");
    let english = app
        .call(
            "PATCH",
            &task_path,
            Some(&cm.token),
            Some(&json!({"status": "on_hold"})),
            &[("if-match", "\"1\""), ("accept-language", "en")],
        )
        .await
        .expect(409);
    assert_eq!(
        english.body["detail"],
        json!("A task cannot move from requested to on_hold. From requested it may move to: received, accepted, rejected, cancelled, in_progress, entered_in_error")
    );
    assert_eq!(app.get(&task_path, &cm.token).await.expect(200).body["version"], json!(1), "nothing changed");
    // Final statuses stay final.
    let done = complete(&app, &cm.token, info).await;
    let reopened =
        app.patch(&task_path, &cm.token, json!({"status": "in_progress"}), Some(&etag_of(&done))).await.expect(409);
    assert!(reopened.body["detail"].as_str().unwrap().contains("completed"));

    // A case is discharged before it is closed, and closed only when its tasks are done.
    let post = |path: String, body: Option<Value>| {
        let app = &app;
        let token = msw.token.clone();
        async move { app.call("POST", &path, Some(&token), body.as_ref(), &[]).await }
    };
    post(format!("{case_path}/close"), None).await.expect(409);
    let early =
        post(format!("{case_path}/discharge"), Some(json!({"discharged_on": days_from_today(-4)}))).await.expect(422);
    assert_eq!(early.body["errors"][0]["code"], json!("before_admission"));
    post(format!("{case_path}/discharge"), Some(json!({"discharged_on": days_from_today(1)}))).await.expect(422);
    // Staff of another organisation on the team do not move the case.
    app.call(
        "POST",
        &format!("{case_path}/discharge"),
        Some(&cm.token),
        Some(&json!({"discharged_on": yesterday})),
        &[],
    )
    .await
    .expect(403);
    post(format!("{case_path}/discharge"), Some(json!({"discharged_on": yesterday}))).await.expect(200);
    post(format!("{case_path}/discharge"), Some(json!({"discharged_on": yesterday}))).await.expect(409);
    post(format!("{case_path}/cancel"), Some(json!({"reason": "転院"}))).await.expect(409);
    let case = app.get(&case_path, &msw.token).await.expect(200);
    app.patch(&case_path, &msw.token, json!({"planned_discharge_on": yesterday}), case.header("etag").as_deref())
        .await
        .expect(409);
    let open_left = post(format!("{case_path}/close"), None).await.expect(409);
    assert!(open_left.body["detail"].as_str().unwrap().contains("未完了のタスクが 11 件"), "{}", open_left.text);
    // While it runs, the patient has no second case.
    open_case(&app, &msw, open_body(&t.patient_id, json!({"admitted_on": yesterday}))).await.expect(409);

    // A case that is cancelled: its tasks are cancelled, the patient is home, the hospital leaves.
    let second = app.post("/api/v1/patients", &cm.token, patient_body("川崎", "カワサキ", "14133")).await.expect(201);
    let second_id = id_of(&second.body);
    let other = open_case(&app, &msw, open_body(&second_id, json!({"admitted_on": yesterday}))).await.expect(201).body;
    let other_path = format!("/api/v1/discharge-cases/{}", id_of(&other));
    app.call("POST", &format!("{other_path}/cancel"), Some(&msw.token), Some(&json!({"reason": " "})), &[])
        .await
        .expect(422);
    let cancelled = app
        .call(
            "POST",
            &format!("{other_path}/cancel"),
            Some(&msw.token),
            Some(&json!({"reason": "他院へ転院のため"})),
            &[("if-match", "\"1\"")],
        )
        .await
        .expect(200);
    assert_eq!(cancelled.body["status"], json!("cancelled"));
    assert_eq!(cancelled.body["cancel_reason"], json!("他院へ転院のため"));
    assert_eq!(cancelled.body["open_tasks"], json!(0));
    let tasks = case_tasks(&app, &cm.token, &id_of(&other)).await;
    assert!(tasks.values().all(|t| t["status"] == json!("cancelled")));
    assert_eq!(
        app.get(&format!("/api/v1/patients/{second_id}"), &cm.token).await.expect(200).body["status"],
        json!("home")
    );
    app.get(&other_path, &msw.token).await.expect(404);
    // A cancelled case is changed no more, by anyone.
    let info = &tasks["admission_info"];
    app.patch(
        &format!("/api/v1/tasks/{}", id_of(info)),
        &cm.token,
        json!({"status": "accepted"}),
        Some(&etag_of(info)),
    )
    .await
    .expect(409);

    // Only hospital staff open cases.
    let refused = open_case(&app, cm, open_body(&t.patient_id, json!({"admitted_on": yesterday}))).await.expect(403);
    assert_eq!(refused.problem_type(), "/problems/forbidden");
}

/// A hospital cannot open a case for a patient it merely has the id of: without being on the
/// team or identifying the patient, the answer is the 404 of a patient that does not exist.
async fn a_hospital_cannot_open_a_case_for_another_hospitals_patient(app: TestApp) {
    let t = team(&app, "14135").await;
    let (_, msw_a) = hospital(&app, &t.admin, "多摩病院", "14135").await;
    let (hospital_b, msw_b) = hospital(&app, &t.admin, "登戸病院", "14135").await;
    // Two weeks ago: its admission tasks are past due whatever the weekday and holidays since
    // (two days ago would be a weekend's business day short on a Monday).
    let case = open_case(&app, &msw_a, open_body(&t.patient_id, json!({"admitted_on": days_from_today(-14)})))
        .await
        .expect(201)
        .body;

    let admission = json!({"admitted_on": days_from_today(-1)});
    let bare = json!({"patient_id": t.patient_id, "admitted_on": days_from_today(-1)});
    let by_id = open_case(&app, &msw_b, bare).await.expect(404);
    let mut wrong = open_body(&t.patient_id, admission.clone());
    wrong["birth_date"] = json!("1938-04-02");
    let wrong_birth = open_case(&app, &msw_b, wrong).await.expect(404);
    let ghost =
        open_case(&app, &msw_b, json!({"patient_id": MISSING, "admitted_on": days_from_today(-1)})).await.expect(404);
    for res in [&by_id, &wrong_birth] {
        assert_eq!(res.text, ghost.text, "identical to a patient that does not exist");
        assert_eq!(res.header("content-type"), ghost.header("content-type"));
    }
    // Nor can it read the other hospital's case.
    let theirs = app.get(&format!("/api/v1/discharge-cases/{}", id_of(&case)), &msw_b.token).await.expect(404);
    let nothing = app.get(&format!("/api/v1/discharge-cases/{MISSING}"), &msw_b.token).await.expect(404);
    assert_eq!(theirs.text, nothing.text);
    app.get(&format!("/api/v1/discharge-cases/{}/tasks", id_of(&case)), &msw_b.token).await.expect(404);
    // Every attempt is in the audit trail.
    let denied = app
        .get(&format!("/api/v1/audit-events?actor_id={}&outcome=denied", msw_b.id), &t.admin.token)
        .await
        .expect(200);
    let denied = denied.body["items"].as_array().unwrap();
    assert_eq!(denied.iter().filter(|e| e["resource_type"] == json!("discharge_case")).count(), 6, "{denied:?}");
    assert!(denied.iter().any(|e| e["patient_id"] == json!(t.patient_id)));

    // Identification takes both.
    let half = json!({"patient_id": t.patient_id, "birth_date": "1938-04-01", "admitted_on": days_from_today(-1)});
    let half = open_case(&app, &msw_b, half).await.expect(422);
    assert_eq!(half.body["errors"][0]["code"], json!("identity_incomplete"));
    // Identified, the patient is found — and has a case running already.
    open_case(&app, &msw_b, open_body(&t.patient_id, admission)).await.expect(409);

    // A hospital registers a new patient with its case, and becomes the first of the team.
    let mut newcomer = patient_body("登戸", "ノボリト", "14135");
    newcomer["status"] = json!("hospitalized");
    let late_evening = format!("{}T23:30:00+09:00", days_from_today(-1));
    let theirs =
        open_case(&app, &msw_b, json!({"patient": newcomer, "admitted_at": late_evening})).await.expect(201).body;
    assert_eq!(theirs["hospital_id"], json!(hospital_b));
    assert_eq!(theirs["admitted_on"], json!(days_from_today(-1)), "23:30 in Japan is still that day");
    let patient = app
        .get(&format!("/api/v1/patients/{}", theirs["patient_id"].as_str().unwrap()), &msw_b.token)
        .await
        .expect(200);
    assert_eq!(patient.body["status"], json!("hospitalized"));
    let mut home = patient_body("登戸", "ノボリト", "14135");
    home["status"] = json!("home");
    let bad = open_case(&app, &msw_b, json!({"patient": home, "admitted_on": days_from_today(-1)})).await.expect(422);
    assert_eq!(bad.body["errors"][0]["field"], json!("patient.status"));

    // Lists stay within each caller's scope.
    let ids = |r: &TestResponse| -> Vec<String> { r.body["items"].as_array().unwrap().iter().map(id_of).collect() };
    assert_eq!(ids(&app.get("/api/v1/discharge-cases", &msw_a.token).await.expect(200)), [id_of(&case)]);
    assert_eq!(ids(&app.get("/api/v1/discharge-cases", &msw_b.token).await.expect(200)), [id_of(&theirs)]);
    let clinic = app.organization(&t.admin, "clinic", "多摩区在宅療養調整", Some("14135")).await;
    let coordinator = app.person(&t.admin, &clinic, "physician", "member").await;
    app.call("PUT", &format!("/api/v1/wards/14135/coordinators/{}", coordinator.id), Some(&t.admin.token), None, &[])
        .await
        .expect(201);
    let c = &coordinator.token;
    assert_eq!(ids(&app.get("/api/v1/discharge-cases", c).await.expect(200)), [id_of(&theirs), id_of(&case)]);
    assert_eq!(
        ids(&app.get(&format!("/api/v1/discharge-cases?hospital_id={hospital_b}"), c).await.expect(200)),
        [id_of(&theirs)]
    );
    assert_eq!(ids(&app.get("/api/v1/discharge-cases?ward=14131", c).await.expect(200)).len(), 0);
    assert_eq!(ids(&app.get("/api/v1/discharge-cases?ward=14135&status=open", c).await.expect(200)).len(), 2);
    assert_eq!(ids(&app.get("/api/v1/discharge-cases?status=closed", c).await.expect(200)).len(), 0);
    // The older case's admission tasks are past due; the new one's are not yet.
    assert_eq!(ids(&app.get("/api/v1/discharge-cases?overdue=true", c).await.expect(200)), [id_of(&case)]);
    assert_eq!(ids(&app.get("/api/v1/discharge-cases?overdue=false", c).await.expect(200)), [id_of(&theirs)]);
    let first = app.get("/api/v1/discharge-cases?limit=1", c).await.expect(200);
    assert_eq!(ids(&first), [id_of(&theirs)]);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app.get(&format!("/api/v1/discharge-cases?limit=1&cursor={cursor}"), c).await.expect(200);
    assert_eq!(ids(&second), [id_of(&case)]);
    assert_eq!(second.body["next_cursor"], Value::Null);
    // The coordinator reads but does not write.
    app.post(
        &format!("/api/v1/discharge-cases/{}/tasks", id_of(&case)),
        c,
        json!({"title": "確認", "profession": "physician"}),
    )
    .await
    .expect(403);
    assert_eq!(ids(&app.get("/api/v1/discharge-cases", &t.nurse.token).await.expect(200)), [id_of(&case)]);
    app.get("/api/v1/discharge-cases?status=sleeping", c).await.expect(422);
}

/// "My tasks": mine and my profession's unassigned ones, across my patients, overdue first and
/// then by deadline.
async fn my_tasks_are_overdue_first_then_by_deadline(app: TestApp) {
    let t = team(&app, "14134").await;
    let (cm, nurse) = (&t.care_manager, &t.nurse);
    let (_, msw) = hospital(&app, &t.admin, "高津病院", "14134").await;
    let second = app.post("/api/v1/patients", &cm.token, patient_body("川崎", "カワサキ", "14134")).await.expect(201);
    let patient_b = id_of(&second.body);
    app.post(
        &format!("/api/v1/patients/{patient_b}/care-team"),
        &cm.token,
        json!({"user_id": nurse.id, "role": "visiting_nurse"}),
    )
    .await
    .expect(201);

    // Patient A was discharged 10 days ago, patient B yesterday.
    let case_a = id_of(
        &open_case(&app, &msw, open_body(&t.patient_id, json!({"admitted_on": days_from_today(-30)})))
            .await
            .expect(201)
            .body,
    );
    let case_b = id_of(
        &open_case(&app, &msw, open_body(&patient_b, json!({"admitted_on": days_from_today(-5)})))
            .await
            .expect(201)
            .body,
    );
    for (case_id, day) in [(&case_a, -10), (&case_b, -1)] {
        app.post(
            &format!("/api/v1/discharge-cases/{case_id}/discharge"),
            &msw.token,
            json!({"discharged_on": days_from_today(day)}),
        )
        .await
        .expect(200);
    }
    let visit_a = case_tasks(&app, &cm.token, &case_a).await["first_home_visit"].clone();
    let visit_b = case_tasks(&app, &cm.token, &case_b).await["first_home_visit"].clone();
    assert_eq!(visit_a["due_at"], json!(end_of_jst_day(&days_from_today(-8))));
    assert_eq!(visit_b["due_at"], json!(end_of_jst_day(&days_from_today(1))));

    let add = |case_id: &str, body: Value| {
        let path = format!("/api/v1/discharge-cases/{case_id}/tasks");
        let app = &app;
        let token = cm.token.clone();
        async move { id_of(&app.post(&path, &token, body).await.expect(201).body) }
    };
    let oldest = add(
        &case_a,
        json!({"title": "退院時の褥瘡処置の引継ぎ確認", "profession": "nurse", "due_on": days_from_today(-20)}),
    )
    .await;
    let later =
        add(&case_b, json!({"title": "訪問看護計画書の作成", "assignee_id": nurse.id, "due_on": days_from_today(10)}))
            .await;
    let undated = add(&case_a, json!({"title": "家族への吸引指導", "assignee_id": nurse.id})).await;
    // Not hers: another person's, even of her profession.
    add(&case_a, json!({"title": "サービス担当者会議の招集", "assignee_id": cm.id, "due_on": days_from_today(-25)}))
        .await;
    add(&case_b, json!({"title": "主治医への報告", "profession": "nurse", "assignee_id": cm.id})).await;

    let expected = [oldest.clone(), id_of(&visit_a), id_of(&visit_b), later, undated];
    let res = app.get("/api/v1/me/tasks", &nurse.token).await.expect(200);
    let items = res.body["items"].as_array().unwrap();
    assert_eq!(items.iter().map(id_of).collect::<Vec<_>>(), expected);
    let overdue: Vec<bool> = items.iter().map(|t| t["overdue"].as_bool().unwrap()).collect();
    assert_eq!(overdue, [true, true, false, false, false]);
    assert_eq!(res.body["next_cursor"], Value::Null);

    // Page by page, the same order.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/me/tasks?limit=2&cursor={c}"),
            None => "/api/v1/me/tasks?limit=2".to_string(),
        };
        let page = app.get(&path, &nurse.token).await.expect(200);
        paged.extend(page.body["items"].as_array().unwrap().iter().map(id_of));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, expected);
    app.get("/api/v1/me/tasks?cursor=bm90LWEtcG9zaXRpb24", &nurse.token).await.expect(422);

    // Done tasks leave the list; so do the tasks of a patient whose team she has left.
    advance(&app, &nurse.token, &oldest, &["in_progress", "completed"]).await;
    assert_eq!(my_task_ids(&app, nurse).await, expected[1..]);
    let today = today_jst().to_string();
    app.patch(
        &format!("/api/v1/patients/{}/care-team/{}", t.patient_id, t.nurse_member_id),
        &cm.token,
        json!({"ended_on": today}),
        None,
    )
    .await
    .expect(200);
    assert_eq!(my_task_ids(&app, nurse).await, [id_of(&visit_b), expected[3].clone()]);
    // The care manager's own list: her assigned tasks and her profession's.
    let cms = my_task_ids(&app, cm).await;
    assert!(cms.len() >= 4, "{cms:?}");
}

/// Every discharge POST that creates something is done once per `Idempotency-Key`: a retry with
/// the same body replays the first answer byte for byte, the same key with a different body is
/// refused as everywhere else in the API (422, `key_reused`), and the refusal changes nothing.
async fn a_key_is_for_one_request(app: TestApp) {
    let t = team(&app, "14134").await;
    let cm = &t.care_manager;
    let (_, msw) = hospital(&app, &t.admin, "高津中央病院", "14134").await;
    // Opening a case.
    let body = open_body(&t.patient_id, json!({"admitted_on": days_from_today(-1)}));
    let first = post_keyed(&app, &msw, "/api/v1/discharge-cases", &body, "open-1").await.expect(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = post_keyed(&app, &msw, "/api/v1/discharge-cases", &body, "open-1").await.expect(201);
    assert_eq!(again.text, first.text, "the first answer, byte for byte");
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("etag"), first.header("etag"));
    let mut changed = body.clone();
    changed["reason"] = json!("心不全の増悪");
    let reused = post_keyed(&app, &msw, "/api/v1/discharge-cases", &changed, "open-1").await.expect(422);
    assert_eq!(reused.body["errors"][0]["field"], json!("Idempotency-Key"));
    assert_eq!(reused.body["errors"][0]["code"], json!("key_reused"));
    let case_id = id_of(&first.body);
    let listed = app.get("/api/v1/discharge-cases", &msw.token).await.expect(200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1, "one case, opened once");
    let case = app.get(&format!("/api/v1/discharge-cases/{case_id}"), &msw.token).await.expect(200);
    assert_eq!(case.body["reason"], json!("誤嚥性肺炎"), "the refused request changed nothing");

    // An ad-hoc task: the same key on another case's path is another request.
    let tasks_path = format!("/api/v1/discharge-cases/{case_id}/tasks");
    let task = json!({"title": "退院前訪問の日程調整", "profession": "nurse"});
    let first = post_keyed(&app, cm, &tasks_path, &task, "task-1").await.expect(201);
    let again = post_keyed(&app, cm, &tasks_path, &task, "task-1").await.expect(201);
    assert_eq!(again.text, first.text);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    let reused = post_keyed(&app, cm, &tasks_path, &json!({"title": "別のタスク", "profession": "nurse"}), "task-1")
        .await
        .expect(422);
    assert_eq!(reused.body["errors"][0]["code"], json!("key_reused"));
    assert_eq!(case_tasks(&app, &cm.token, &case_id).await.len(), 13, "twelve from templates, one ad hoc");

    // A comment.
    let comments_path = format!("/api/v1/tasks/{}/comments", id_of(&first.body));
    let first =
        post_keyed(&app, cm, &comments_path, &json!({"text": "家族と日程を相談中"}), "comment-1").await.expect(201);
    let again =
        post_keyed(&app, cm, &comments_path, &json!({"text": "家族と日程を相談中"}), "comment-1").await.expect(201);
    assert_eq!(again.text, first.text);
    assert_eq!(again.header("location"), first.header("location"));
    post_keyed(&app, cm, &comments_path, &json!({"text": "日程が決まりました"}), "comment-1").await.expect(422);
    let task = app.get(&format!("/api/v1/tasks/{}", first.body["task_id"].as_str().unwrap()), &cm.token).await;
    assert_eq!(task.expect(200).body["comments"].as_array().unwrap().len(), 1);

    // A conference.
    let conferences_path = format!("/api/v1/discharge-cases/{case_id}/conferences");
    let conference = json!({
        "held_at": chrono::Utc::now().to_rfc3339(),
        "video": true,
        "attendees": [{"name": "高津 花子", "profession": "social_worker", "organization": "高津中央病院"}],
        "content": "退院日と訪問開始日を確認。"
    });
    let first = post_keyed(&app, &msw, &conferences_path, &conference, "conference-1").await.expect(201);
    let again = post_keyed(&app, &msw, &conferences_path, &conference, "conference-1").await.expect(201);
    assert_eq!(again.text, first.text);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    let mut other = conference.clone();
    other["content"] = json!("別の内容");
    post_keyed(&app, &msw, &conferences_path, &other, "conference-1").await.expect(422);
    let listed = app.get(&conferences_path, &msw.token).await.expect(200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);

    // One header parser for the whole API: 255 visible ASCII characters at most.
    let long = "k".repeat(256);
    let res = post_keyed(&app, cm, &comments_path, &json!({"text": "長いキー"}), &long).await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("Idempotency-Key"));
    let longest = "k".repeat(255);
    post_keyed(&app, cm, &comments_path, &json!({"text": "長いキー"}), &longest).await.expect(201);
}

crate::both_backends!(
    scripted_discharge_walkthrough,
    deadlines_follow_the_planned_date_across_a_month_end,
    illegal_moves_are_refused,
    a_hospital_cannot_open_a_case_for_another_hospitals_patient,
    my_tasks_are_overdue_first_then_by_deadline,
    a_key_is_for_one_request,
);
