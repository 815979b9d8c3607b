//! Business days through the API: a care manager's office is closed on national holidays and
//! over 年末年始 as well as at weekends, so an admission then gives the home-life information
//! (入院時情報提供, 入院時情報連携加算(I)) until the office's next business day; an office that
//! keeps other hours says so in its organisation settings, and the deadline follows them.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::helpers::{Person, TestApp};
use crate::patients::{team, Team};

/// The end of a JST day as the API writes it: 23:59:59.999999 JST is 14:59:59.999999 UTC.
fn end_of_jst_day(date: &str) -> Value {
    json!(format!("{date}T14:59:59.999999Z"))
}

/// The hospital's discharge-support social worker opens a case for the team's patient
/// (identified by birth date and kana, as `patients::team` made them) admitted at `admission`.
async fn admit(app: &TestApp, t: &Team, admission: Value) -> HashMap<String, Value> {
    let hospital = app.organization(&t.admin, "hospital", "川崎中央病院", Some("14131")).await;
    let msw = app.person(&t.admin, &hospital, "social_worker", "member").await;
    let mut body = json!({"patient_id": t.patient_id, "birth_date": "1938-04-01", "family_name_kana": "カワサキ"});
    for (k, v) in admission.as_object().unwrap() {
        body[k] = v.clone();
    }
    let case = app.post("/api/v1/discharge-cases", &msw.token, body).await.expect(201).body;
    let path = format!("/api/v1/discharge-cases/{}/tasks", case["id"].as_str().unwrap());
    let tasks = app.get(&path, &t.care_manager.token).await.expect(200).body;
    tasks["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| Some((t["template_key"].as_str()?.to_string(), t["due_at"].clone())))
        .collect()
}

async fn holiday_admission_gets_the_next_business_day(app: TestApp) {
    let t = team(&app, "14131").await;
    // 勤労感謝の日, Monday 23 November 2026, 10:00 in Japan: within the hours, but the office is
    // closed. (An admission cannot lie in the future, so the holiday is a past one.)
    let due = admit(&app, &t, json!({"admitted_at": "2026-11-23T10:00:00+09:00"})).await;
    assert_eq!(due["admission_info"], end_of_jst_day("2026-11-24"), "the next business day, Tuesday");
    // Deadlines counted in calendar days are not moved by the holiday.
    assert_eq!(due["discharge_screening"], end_of_jst_day("2026-11-26"));
}

async fn holiday_admission_known_by_its_date(app: TestApp) {
    let t = team(&app, "14132").await;
    // 成人の日, Monday 12 January 2026, known only by its date.
    let due = admit(&app, &t, json!({"admitted_on": "2026-01-12"})).await;
    assert_eq!(due["admission_info"], end_of_jst_day("2026-01-13"));
}

async fn year_end_admission_waits_for_the_new_year(app: TestApp) {
    let t = team(&app, "14133").await;
    // 年末年始: closed from 29 December to 3 January; Monday 5 January 2026 is the next business day.
    let due = admit(&app, &t, json!({"admitted_at": "2025-12-29T11:00:00+09:00"})).await;
    assert_eq!(due["admission_info"], end_of_jst_day("2026-01-05"));
}

/// The care-management office's administrator.
async fn office_admin(app: &TestApp, t: &Team) -> Person {
    app.person(&t.admin, &t.care_office, "care_manager", "org_admin").await
}

async fn an_office_with_its_own_hours(app: TestApp) {
    let t = team(&app, "14134").await;
    let path = format!("/api/v1/organizations/{}", t.care_office);
    let admin = office_admin(&app, &t).await;

    // A new office keeps the common hours.
    let read = app.get(&path, &t.care_manager.token).await.expect(200);
    assert_eq!(
        read.body["business_hours"],
        json!({"opens_at": "09:00", "closes_at": "17:00", "closed_weekdays": ["sat", "sun"],
               "closed_on_holidays": true, "closed_year_end": true, "closed_dates": []})
    );

    // Settings a person cannot mean are refused, naming the field, and change nothing.
    let hours = |opens: &str, closes: &str, closed: Value| {
        json!({"business_hours": {"opens_at": opens, "closes_at": closes, "closed_weekdays": closed,
                                  "closed_on_holidays": false, "closed_year_end": false}})
    };
    let res = app.patch(&path, &admin.token, hours("18:00", "08:00", json!([])), None).await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("business_hours.closes_at"));
    assert_eq!(res.body["errors"][0]["code"], json!("closes_before_opening"));
    let res = app.patch(&path, &admin.token, hours("8:00", "20:00", json!([])), None).await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("business_hours.opens_at"));
    let res = app.patch(&path, &admin.token, hours("08:00", "20:00", json!(["holiday"])), None).await.expect(422);
    assert_eq!(res.body["errors"][0]["code"], json!("invalid_weekday"));
    let every_day = json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);
    let res = app.patch(&path, &admin.token, hours("08:00", "20:00", every_day), None).await.expect(422);
    assert_eq!(res.body["errors"][0]["code"], json!("never_open"));
    // A care manager who does not administer the office may not change its hours.
    app.patch(&path, &t.care_manager.token, hours("08:00", "20:00", json!(["sun"])), None).await.expect(403);
    assert_eq!(app.get(&path, &admin.token).await.expect(200).body["version"], json!(1));

    // The office's administrator opens it 8:00–20:00 every day but Sunday, holidays and 年末年始 included.
    let changed =
        app.patch(&path, &admin.token, hours("08:00", "20:00", json!(["sun"])), Some("\"1\"")).await.expect(200);
    assert_eq!(changed.body["version"], json!(2));
    assert_eq!(changed.body["business_hours"]["closed_weekdays"], json!(["sun"]));
    assert_eq!(changed.body["business_hours"]["closes_at"], json!("20:00"));

    // An admission on 勤労感謝の日 at 18:30 is within those hours: due the same day.
    let due = admit(&app, &t, json!({"admitted_at": "2026-11-23T18:30:00+09:00"})).await;
    assert_eq!(due["admission_info"], end_of_jst_day("2026-11-23"));
}

async fn an_office_closed_on_its_own_weekday(app: TestApp) {
    let t = team(&app, "14135").await;
    let path = format!("/api/v1/organizations/{}", t.care_office);
    let admin = office_admin(&app, &t).await;
    // Closed on Wednesdays as well as at weekends; holidays and 年末年始 as usual.
    let body = json!({"business_hours": {"opens_at": "09:30", "closes_at": "18:00",
                                         "closed_weekdays": ["wed", "sat", "sun"],
                                         "closed_on_holidays": true, "closed_year_end": true}});
    app.patch(&path, &admin.token, body, None).await.expect(200);
    // Tuesday 24 November 2026 at 17:30, within this office's hours (not the common ones).
    let due = admit(&app, &t, json!({"admitted_at": "2026-11-24T17:30:00+09:00"})).await;
    assert_eq!(due["admission_info"], end_of_jst_day("2026-11-24"));
}

async fn an_office_closed_on_its_own_weekday_moves_the_deadline(app: TestApp) {
    let t = team(&app, "14136").await;
    let path = format!("/api/v1/organizations/{}", t.care_office);
    let admin = office_admin(&app, &t).await;
    let body = json!({"business_hours": {"opens_at": "09:30", "closes_at": "18:00",
                                         "closed_weekdays": ["wed", "sat", "sun"],
                                         "closed_on_holidays": true, "closed_year_end": true}});
    app.patch(&path, &admin.token, body, None).await.expect(200);
    // Tuesday 24 November 2026 at 18:00, after hours: Wednesday is closed, so Thursday.
    let due = admit(&app, &t, json!({"admitted_at": "2026-11-24T18:00:00+09:00"})).await;
    assert_eq!(due["admission_info"], end_of_jst_day("2026-11-26"));
}

async fn an_office_closed_on_dates_of_its_own(app: TestApp) {
    let t = team(&app, "14137").await;
    let path = format!("/api/v1/organizations/{}", t.care_office);
    let admin = office_admin(&app, &t).await;
    let hours = |dates: Value| {
        json!({"business_hours": {"opens_at": "09:00", "closes_at": "17:00", "closed_weekdays": ["sat", "sun"],
                                  "closed_on_holidays": true, "closed_year_end": true, "closed_dates": dates}})
    };
    // Dates a person cannot mean are refused, naming the field, and change nothing.
    let res = app.patch(&path, &admin.token, hours(json!(["2026/11/25"])), None).await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("business_hours.closed_dates[0]"), "{}", res.body);
    let res = app.patch(&path, &admin.token, hours(json!(["1999-12-31"])), None).await.expect(422);
    assert_eq!(res.body["errors"][0]["code"], json!("closed_date_out_of_range"));
    let many: Vec<String> = (0..101).map(|i| format!("2027-{:02}-{:02}", 1 + i / 28, 1 + i % 28)).collect();
    let res = app.patch(&path, &admin.token, hours(json!(many)), None).await.expect(422);
    assert_eq!(res.body["errors"][0]["code"], json!("too_many_closed_dates"));
    assert_eq!(app.get(&path, &admin.token).await.expect(200).body["version"], json!(1));

    // The office closes for its staff training on Wednesday 25 and Thursday 26 November 2026, sent
    // out of order and twice; it keeps them ascending and once.
    let dates = json!(["2026-11-26", "2026-11-25", "2026-11-26"]);
    let changed = app.patch(&path, &admin.token, hours(dates), Some("\"1\"")).await.expect(200);
    assert_eq!(changed.body["business_hours"]["closed_dates"], json!(["2026-11-25", "2026-11-26"]));
    let read = app.get(&path, &t.care_manager.token).await.expect(200);
    assert_eq!(read.body["business_hours"]["closed_dates"], json!(["2026-11-25", "2026-11-26"]));

    // Tuesday 24 November at 18:00, after hours: Wednesday and Thursday are closed, so Friday.
    let due = admit(&app, &t, json!({"admitted_at": "2026-11-24T18:00:00+09:00"})).await;
    assert_eq!(due["admission_info"], end_of_jst_day("2026-11-27"));

    // Settings sent without dates leave the office none.
    let cleared = app
        .patch(
            &path,
            &admin.token,
            json!({"business_hours": {"opens_at": "09:00",
        "closes_at": "17:00", "closed_weekdays": ["sat", "sun"], "closed_on_holidays": true,
        "closed_year_end": true}}),
            Some("\"2\""),
        )
        .await
        .expect(200);
    assert_eq!(cleared.body["business_hours"]["closed_dates"], json!([]));
}

crate::both_backends!(
    holiday_admission_gets_the_next_business_day,
    holiday_admission_known_by_its_date,
    year_end_admission_waits_for_the_new_year,
    an_office_with_its_own_hours,
    an_office_closed_on_its_own_weekday,
    an_office_closed_on_its_own_weekday_moves_the_deadline,
    an_office_closed_on_dates_of_its_own,
);
