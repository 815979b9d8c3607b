//! The ward caseload for coordinating physicians, its filters, sort, CSV and audit, and the
//! per-ward counts for city staff.

use chrono::{Duration, SecondsFormat, Utc};
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{Person, TestApp};
use crate::patients::{patient_body, team};

const WARD: &str = "14131";

fn ago(minutes: i64) -> String {
    (Utc::now() - Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `minutes` ago, but not before today's midnight in Japan: a visit "today" stays today when
/// the suite runs just after midnight JST (15:00 UTC).
fn earlier_today(minutes: i64) -> String {
    let now = Utc::now();
    let midnight = (now + Duration::hours(9)).date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc() - Duration::hours(9);
    (now - Duration::minutes(minutes)).max(midnight).to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// The ward's patients: 川崎 (physician, visit today, consent), 幸 (urgent flag, visited 20 days
/// ago), 中原 (open discharge case with an overdue task), 高津 (nothing at all); and one patient
/// of another ward.
struct Fixture {
    coordinator: Person,
    other_coordinator: Person,
    admin: Person,
    care_manager: Person,
    kawasaki: String,
    saiwai: String,
    nakahara: String,
    takatsu: String,
    case_id: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let t = team(app, WARD).await;
    let admin = t.admin;
    let cm = t.care_manager;
    let register = |family: &'static str, kana: &'static str, ward: &'static str, level: &'static str| {
        let mut body = patient_body(family, kana, ward);
        body["care_level"] = json!(level);
        let token = cm.token.clone();
        async move { id_of(&app.post("/api/v1/patients", &token, body).await.expect(201).body) }
    };
    let saiwai = register("幸", "サイワイ", WARD, "care_1").await;
    let nakahara = register("中原", "ナカハラ", WARD, "care_5").await;
    let takatsu = register("高津", "タカツ", WARD, "support_1").await;
    register("麻生", "アサオ", "14137", "care_2").await;

    let clinic = app.organization(&admin, "clinic", "川崎在宅クリニック", Some(WARD)).await;
    let physician = app.person(&admin, &clinic, "physician", "member").await;
    let coordinator = app.person(&admin, &clinic, "physician", "member").await;
    let other_coordinator = app.person(&admin, &clinic, "physician", "member").await;
    app.call("PUT", &format!("/api/v1/wards/{WARD}/coordinators/{}", coordinator.id), Some(&admin.token), None, &[])
        .await
        .expect(201);
    app.call(
        "PUT",
        &format!("/api/v1/wards/14132/coordinators/{}", other_coordinator.id),
        Some(&admin.token),
        None,
        &[],
    )
    .await
    .expect(201);

    // 川崎: a primary physician, a visit note with vital signs today, consent obtained.
    let k = t.patient_id.clone();
    app.post(
        &format!("/api/v1/patients/{k}/care-team"),
        &cm.token,
        json!({"user_id": physician.id, "role": "primary_physician"}),
    )
    .await
    .expect(201);
    let vitals = json!({"temperature": 36.5, "systolic_bp": 120, "pulse": 70, "respiratory_rate": 16, "spo2": 97, "spo2_scale": 1, "on_oxygen": false, "consciousness": "A"});
    app.post(
        &format!("/api/v1/patients/{k}/notes"),
        &t.nurse.token,
        json!({"kind": "visit", "occurred_at": earlier_today(30), "text": "訪問、著変なし", "vitals": vitals}),
    )
    .await
    .expect(201);
    app.post(
        &format!("/api/v1/patients/{k}/consents"),
        &cm.token,
        json!({"scope": "care_team", "obtained_from": "patient", "obtained_on": "2026-11-01"}),
    )
    .await
    .expect(201);

    // 幸: an urgent flag; the last visit 20 days ago.
    app.post(&format!("/api/v1/patients/{saiwai}/flags"), &cm.token, json!({"severity": "urgent", "reason": "発熱"}))
        .await
        .expect(201);
    app.post(
        &format!("/api/v1/patients/{saiwai}/notes"),
        &cm.token,
        json!({"kind": "visit", "occurred_at": ago(20 * 24 * 60), "text": "訪問"}),
    )
    .await
    .expect(201);

    // 中原: admitted; an open discharge case with one task past its deadline.
    let hospital = app.organization(&admin, "hospital", "川崎市立病院", Some(WARD)).await;
    let msw = app.person(&admin, &hospital, "social_worker", "member").await;
    let today = (Utc::now() + Duration::hours(9)).date_naive();
    let case = app
        .post(
            "/api/v1/discharge-cases",
            &msw.token,
            json!({
                "patient_id": nakahara,
                "birth_date": "1938-04-01",
                "family_name_kana": "ナカハラ",
                "admitted_on": (today - Duration::days(3)).to_string(),
                "planned_discharge_on": (today + Duration::days(10)).to_string(),
            }),
        )
        .await
        .expect(201);
    let case_id = id_of(&case.body);
    let tasks = app.get(&format!("/api/v1/discharge-cases/{case_id}/tasks"), &msw.token).await.expect(200);
    let task_id = id_of(&tasks.body["items"][0]);
    let past = (Utc::now() - Duration::days(2)).naive_utc();
    let open_case = case_id.clone();
    app.db
        .run(move |conn| {
            use renkei::db::schema::discharge_tasks as dt;
            // Every other task of the case comes due far ahead, this one is two days late.
            diesel::update(dt::table.filter(dt::case_id.eq(&open_case)))
                .set(dt::due_at.eq(Some(past + Duration::days(400))))
                .execute(conn)?;
            diesel::update(dt::table.filter(dt::id.eq(&task_id))).set(dt::due_at.eq(Some(past))).execute(conn)?;
            // The deadlines were moved behind the service's back: bring the caseload entry along.
            let patient: String = dt::table.find(&task_id).select(dt::patient_id).first(conn)?;
            renkei::caseload::entries::refresh(conn, &patient)?;
            Ok(())
        })
        .await
        .unwrap();

    Fixture { coordinator, other_coordinator, admin, care_manager: cm, kawasaki: k, saiwai, nakahara, takatsu, case_id }
}

fn names(res: &Value) -> Vec<String> {
    res["items"].as_array().unwrap().iter().map(|r| r["family_name"].as_str().unwrap().to_string()).collect()
}

async fn caseload_for_coordinators_only(app: TestApp) {
    let f = fixture(&app).await;
    let path = format!("/api/v1/wards/{WARD}/caseload");
    let unknown = app.get("/api/v1/wards/99999/caseload", &f.coordinator.token).await.expect(404);
    for who in [&f.other_coordinator, &f.admin, &f.care_manager] {
        let refused = app.get(&path, &who.token).await.expect(404);
        assert_eq!(refused.body, unknown.body);
    }
    let res = app.get(&path, &f.coordinator.token).await.expect(200);
    // Kana order by default: カワサキ, サイワイ, タカツ, ナカハラ; the other ward's patient is absent.
    assert_eq!(names(&res.body), ["川崎", "幸", "高津", "中原"]);
    let rows: Vec<&Value> = res.body["items"].as_array().unwrap().iter().collect();
    let k = rows[0];
    assert_eq!(k["id"], json!(f.kawasaki));
    assert_eq!(k["team_size"], json!(3));
    assert_eq!(k["has_primary_physician"], json!(true));
    assert_eq!(k["days_since_last_visit"], json!(0));
    assert_eq!(k["latest_news2"]["total"], json!(0));
    assert_eq!(k["latest_news2"]["band"], json!("low"));
    assert_eq!(k["consent"], json!({"state": "active", "missing": false}));
    let s = rows[1];
    assert_eq!((s["active_flags"].clone(), s["highest_flag_severity"].clone()), (json!(1), json!("urgent")));
    assert_eq!(s["days_since_last_visit"], json!(20));
    let n = rows[3];
    assert_eq!(
        (s["id"].clone(), rows[2]["id"].clone(), n["id"].clone()),
        (json!(f.saiwai), json!(f.takatsu), json!(f.nakahara))
    );
    assert_eq!(n["open_discharge_case"]["id"], json!(f.case_id));
    assert_eq!(n["open_discharge_case"]["overdue_tasks"], json!(1));
    let t = rows[2];
    assert_eq!(
        (t["latest_news2"].clone(), t["open_discharge_case"].clone(), t["days_since_last_visit"].clone()),
        (Value::Null, Value::Null, Value::Null)
    );
    assert_eq!(t["consent"]["missing"], json!(true));

    // The ward's counts.
    assert_eq!(
        res.body["summary"],
        json!({"patients": 4, "with_active_flag": 1, "no_home_physician": 3, "no_visit_14_days": 3,
               "open_discharge_cases": 1, "with_overdue_tasks": 1, "consent_missing": 3})
    );

    // Each listed patient's read is in the audit trail.
    let audited: i64 = app
        .db
        .run(|conn| {
            use renkei::db::schema::audit_events as ae;
            Ok(ae::table
                .filter(ae::resource_type.eq("caseload"))
                .filter(ae::action.eq("R"))
                .count()
                .get_result(conn)?)
        })
        .await
        .unwrap();
    assert_eq!(audited, 4);
}

async fn caseload_filters(app: TestApp) {
    let f = fixture(&app).await;
    let get = |query: &'static str| {
        let token = f.coordinator.token.clone();
        let app = &app;
        async move { names(&app.get(&format!("/api/v1/wards/{WARD}/caseload?{query}"), &token).await.expect(200).body) }
    };
    assert_eq!(get("has_active_flag=true").await, ["幸"]);
    assert_eq!(get("no_home_physician=true").await, ["幸", "高津", "中原"]);
    assert_eq!(get("no_visit_days=14").await, ["幸", "高津", "中原"]);
    assert_eq!(get("no_visit_days=30").await, ["高津", "中原"]);
    assert_eq!(get("open_discharge_case=true").await, ["中原"]);
    assert_eq!(get("overdue_tasks=true").await, ["中原"]);
    assert_eq!(get("care_level=support_1").await, ["高津"]);
    assert_eq!(get("has_active_flag=true&no_visit_days=30").await, Vec::<String>::new());

    // Sort by any column, both ways; rows without a value come last.
    assert_eq!(get("sort=care_level&order=desc").await, ["中原", "川崎", "幸", "高津"]);
    assert_eq!(get("sort=care_level").await, ["高津", "幸", "川崎", "中原"]);
    assert_eq!(get("sort=days_since_last_visit&order=desc").await, ["幸", "川崎", "高津", "中原"]);
    assert_eq!(get("sort=active_flags&order=desc").await, ["幸", "川崎", "高津", "中原"]);
    assert_eq!(get("sort=planned_discharge_on").await, ["中原", "川崎", "幸", "高津"]);

    // Cursor pagination walks the whole sorted list once.
    let token = f.coordinator.token.clone();
    let mut seen = Vec::new();
    let mut path = format!("/api/v1/wards/{WARD}/caseload?sort=care_level&limit=3");
    loop {
        let page = app.get(&path, &token).await.expect(200);
        seen.extend(names(&page.body));
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/wards/{WARD}/caseload?sort=care_level&limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["高津", "幸", "川崎", "中原"]);

    let bad = app.get(&format!("/api/v1/wards/{WARD}/caseload?sort=shoe_size"), &token).await.expect(422);
    assert_eq!(bad.body["errors"][0]["field"], json!("sort"));
}

async fn caseload_as_csv(app: TestApp) {
    let f = fixture(&app).await;
    let res = app
        .call(
            "GET",
            &format!("/api/v1/wards/{WARD}/caseload?has_active_flag=true"),
            Some(&f.coordinator.token),
            None,
            &[("accept", "text/csv")],
        )
        .await
        .expect(200);
    assert!(res.header("content-type").unwrap().starts_with("text/csv"));
    assert!(res.text.starts_with('\u{feff}'), "UTF-8 BOM first");
    let body = res.text.trim_start_matches('\u{feff}');
    let lines: Vec<&str> = body.split("\r\n").collect();
    assert_eq!(lines.len(), 3, "header, one row, and the final CRLF: {body:?}");
    let rows = read_csv(&res.text);
    let header: Vec<&str> = rows[0].iter().map(String::as_str).collect();
    for h in [
        "氏名",
        "フリガナ",
        "年齢",
        "要介護度",
        "状態",
        "チーム人数",
        "主治医",
        "有効フラグ数",
        "最重度",
        "最新NEWS2",
        "最終訪問からの日数",
        "退院調整",
        "期限超過タスク",
        "同意",
    ] {
        assert!(header.contains(&h), "{h} in {header:?}");
    }
    let row: Vec<&str> = rows[1].iter().map(String::as_str).collect();
    assert_eq!(row[0], f.saiwai);
    assert_eq!(row[1], "幸 花子");
    assert_eq!(row[2], "サイワイ ハナコ");
    // Values in the header's language: Japanese words, times in Japan time.
    assert_eq!(row[9], "至急");
    assert_eq!(row[5], "在宅");
    assert!(header.contains(&"NEWS2記録日時(JST)"), "{header:?}");
    assert_eq!(row[16], "未取得");
    // English when the reader prefers it.
    let en = app
        .call(
            "GET",
            &format!("/api/v1/wards/{WARD}/caseload?has_active_flag=true"),
            Some(&f.coordinator.token),
            None,
            &[("accept", "text/csv"), ("accept-language", "en")],
        )
        .await
        .expect(200);
    let rows = read_csv(&en.text);
    assert_eq!(rows[0][1], "Name");
    assert_eq!(rows[0][11], "Latest NEWS2 at (JST)");
    assert_eq!((rows[1][5].as_str(), rows[1][9].as_str(), rows[1][16].as_str()), ("At home", "Urgent", "Not obtained"));
}

/// The cells of a CSV document (after its BOM), as a spreadsheet program would split them.
fn read_csv(text: &str) -> Vec<Vec<String>> {
    let body = text.strip_prefix('\u{feff}').expect("UTF-8 BOM first");
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// Names typed as spreadsheet formulas reach the CSV as text: each cell that a spreadsheet would
/// run (`=`, `+`, `-`, `@`, TAB, CR and the full-width forms first) starts with a single quote.
async fn csv_cells_never_become_formulas(app: TestApp) {
    let t = team(&app, WARD).await;
    let clinic = app.organization(&t.admin, "clinic", "川崎在宅クリニック", Some(WARD)).await;
    let coordinator = app.person(&t.admin, &clinic, "physician", "member").await;
    app.call("PUT", &format!("/api/v1/wards/{WARD}/coordinators/{}", coordinator.id), Some(&t.admin.token), None, &[])
        .await
        .expect(201);
    let formulas = ["=HYPERLINK(\"http://x\",\"開く\")", "+1+1", "-2+3", "@SUM(A1)", "＝１＋１", "＠SUM(A1)", "－1"];
    for family in formulas {
        let mut body = patient_body(family, "カワサキ", WARD);
        body["given_name"] = json!("=cmd|' /C calc'!A0");
        app.post("/api/v1/patients", &t.care_manager.token, body).await.expect(201);
    }
    let res = app
        .call(
            "GET",
            &format!("/api/v1/wards/{WARD}/caseload?limit=100"),
            Some(&coordinator.token),
            None,
            &[("accept", "text/csv")],
        )
        .await
        .expect(200);
    let rows = read_csv(&res.text);
    assert_eq!(rows.len(), 1 + 1 + formulas.len(), "{}", res.text);
    let names: Vec<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
    for family in formulas {
        let written = format!("'{family} =cmd|' /C calc'!A0");
        assert!(names.contains(&written.as_str()), "{written:?} in {names:?}");
    }
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠']),
                "live formula {cell:?}"
            );
        }
    }
    // Every cell is quoted, so nothing inside a value can end it early.
    let body = res.text.trim_start_matches('\u{feff}');
    assert!(body.split("\r\n").filter(|l| !l.is_empty()).all(|l| l.starts_with('"') && l.ends_with('"')), "{body}");
}

async fn ward_summary_for_city_staff(app: TestApp) {
    let f = fixture(&app).await;
    let city = app.organization(&f.admin, "city_ward_office", "川崎区役所", Some(WARD)).await;
    let clerk = app.person(&f.admin, &city, "other", "member").await;
    for who in [&clerk, &f.admin] {
        let res = app.get("/api/v1/wards/summary", &who.token).await.expect(200);
        let ward =
            res.body["items"].as_array().unwrap().iter().find(|w| w["ward_code"] == json!(WARD)).unwrap().clone();
        assert_eq!(ward["patients"], json!(4));
        assert_eq!(ward["with_active_flag"], json!(1));
        assert_eq!(ward["with_overdue_tasks"], json!(1));
        assert_eq!(ward["consent_missing"], json!(3));
        let asao =
            res.body["items"].as_array().unwrap().iter().find(|w| w["ward_code"] == json!("14137")).unwrap().clone();
        assert_eq!(asao["patients"], json!(1));
    }
    for who in [&f.coordinator, &f.care_manager] {
        app.get("/api/v1/wards/summary", &who.token).await.expect(403);
    }
}

/// Every stored caseload entry equals the one computed afresh from the source tables.
async fn assert_entries_current(app: &TestApp) {
    let (stored, fresh) = app
        .db
        .run(|conn| {
            use renkei::caseload::entries::{self, Entry};
            use renkei::db::schema::caseload_entries as ce;
            let mut stored: Vec<Entry> = ce::table.order(ce::patient_id).select(Entry::as_select()).load(conn)?;
            let mut fresh = Vec::new();
            for e in &mut stored {
                let mut f = entries::compute(conn, &e.patient_id)?.unwrap();
                f.updated_at = e.updated_at;
                fresh.push(f);
            }
            Ok((stored, fresh))
        })
        .await
        .unwrap();
    assert!(!stored.is_empty());
    assert_eq!(stored, fresh);
}

/// The maintained entries follow every kind of change, through the API.
async fn caseload_entries_follow_changes(app: TestApp) {
    let f = fixture(&app).await;
    assert_entries_current(&app).await;
    let cm = &f.care_manager;
    let path = format!("/api/v1/wards/{WARD}/caseload");
    let row_of = |id: String| {
        let token = f.coordinator.token.clone();
        let app = &app;
        let path = path.clone();
        async move {
            let page = app.get(&path, &token).await.expect(200);
            page.body["items"].as_array().unwrap().iter().find(|r| r["id"] == json!(id)).cloned()
        }
    };

    // Amendments move a visit back in time and take vital signs away.
    let notes = app.get(&format!("/api/v1/patients/{}/notes", f.saiwai), &cm.token).await.expect(200);
    let visit = id_of(&notes.body["items"][0]);
    app.post(
        &format!("/api/v1/notes/{visit}/amendments"),
        &cm.token,
        json!({"reason": "訪問日の誤記", "occurred_at": ago(25 * 24 * 60), "text": "訪問"}),
    )
    .await
    .expect(201);
    assert_eq!(row_of(f.saiwai.clone()).await.unwrap()["days_since_last_visit"], json!(25));
    let scored = app
        .post(
            &format!("/api/v1/patients/{}/notes", f.takatsu),
            &cm.token,
            json!({"kind": "visit", "occurred_at": earlier_today(60), "text": "訪問", "vitals": {"pulse": 72, "spo2": 97}}),
        )
        .await
        .expect(201);
    let t = row_of(f.takatsu.clone()).await.unwrap();
    assert_eq!((t["days_since_last_visit"].clone(), t["latest_news2"]["total"].clone()), (json!(0), json!(0)));
    app.post(
        &format!("/api/v1/notes/{}/amendments", id_of(&scored.body)),
        &cm.token,
        json!({"reason": "別患者のバイタルを誤って記載", "occurred_at": earlier_today(60), "text": "訪問"}),
    )
    .await
    .expect(201);
    assert_eq!(row_of(f.takatsu.clone()).await.unwrap()["latest_news2"], Value::Null);
    assert_entries_current(&app).await;

    // A high score raises an emergency flag; resolving the urgent one leaves it.
    let vitals = json!({"temperature": 39.5, "systolic_bp": 85, "pulse": 135, "respiratory_rate": 28, "spo2": 89, "spo2_scale": 1, "on_oxygen": false, "consciousness": "V"});
    app.post(
        &format!("/api/v1/patients/{}/notes", f.saiwai),
        &cm.token,
        json!({"kind": "phone", "occurred_at": ago(1), "text": "電話で状態確認", "vitals": vitals}),
    )
    .await
    .expect(201);
    let flags = app.get(&format!("/api/v1/patients/{}/flags", f.saiwai), &cm.token).await.expect(200);
    let urgent = flags.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["severity"] == json!("urgent"))
        .cloned()
        .expect("the urgent flag raised by hand stays beside the automatic one");
    let s = row_of(f.saiwai.clone()).await.unwrap();
    assert_eq!(s["latest_news2"]["band"], json!("high"));
    assert_eq!(s["highest_flag_severity"], json!("emergency"));
    assert_eq!(s["days_since_last_visit"], json!(25), "a phone call is not a visit");
    assert_eq!(s["active_flags"], json!(2));
    app.post(&format!("/api/v1/flags/{}/resolve", id_of(&urgent)), &cm.token, json!({"note": "解熱を確認"}))
        .await
        .expect(200);
    let s = row_of(f.saiwai.clone()).await.unwrap();
    assert_eq!((s["active_flags"].clone(), s["highest_flag_severity"].clone()), (json!(1), json!("emergency")));
    assert_entries_current(&app).await;

    // Care level and status changes; a revoked consent.
    let p = app.get(&format!("/api/v1/patients/{}", f.takatsu), &cm.token).await.expect(200);
    let etag = p.header("etag").unwrap();
    app.patch(&format!("/api/v1/patients/{}", f.takatsu), &cm.token, json!({"care_level": "care_3"}), Some(&etag))
        .await
        .expect(200);
    assert_eq!(row_of(f.takatsu.clone()).await.unwrap()["care_level"], json!("care_3"));
    let consents = app.get(&format!("/api/v1/patients/{}/consents", f.kawasaki), &cm.token).await.expect(200);
    let consent = id_of(&consents.body["items"][0]);
    app.post(
        &format!("/api/v1/patients/{}/consents/{consent}/revoke", f.kawasaki),
        &cm.token,
        json!({"reason": "本人の申し出"}),
    )
    .await
    .expect(200);
    assert_eq!(row_of(f.kawasaki.clone()).await.unwrap()["consent"]["state"], json!("revoked"));

    assert_entries_current(&app).await;
}

/// A database from before the entries existed gets them at migration: entries removed behind
/// the service's back come back identical.
async fn missing_entries_are_rebuilt(app: TestApp) {
    fixture(&app).await;
    let (before, rebuilt, after) = app
        .db
        .run(|conn| {
            use renkei::caseload::entries::{self, Entry};
            use renkei::db::schema::caseload_entries as ce;
            let load = |conn: &mut renkei::db::DbConn| -> Result<Vec<Entry>, renkei::error::AppError> {
                Ok(ce::table.order(ce::patient_id).select(Entry::as_select()).load(conn)?)
            };
            let before = load(conn)?;
            diesel::delete(ce::table).execute(conn)?;
            let rebuilt = entries::rebuild_missing(conn)?;
            Ok((before, rebuilt, load(conn)?))
        })
        .await
        .unwrap();
    assert_eq!(rebuilt, before.len());
    let strip = |v: Vec<renkei::caseload::Entry>| {
        v.into_iter()
            .map(|mut e| {
                e.updated_at = chrono::NaiveDateTime::MIN;
                e
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(after), strip(before));
}

/// Pages listing the same patients in opposite orders, at once, all succeed: each page audits a
/// read per patient, and the audit chains are locked in one order (they once deadlocked).
async fn concurrent_pages_in_opposite_orders(app: TestApp) {
    let f = fixture(&app).await;
    let mut pages = Vec::new();
    for i in 0..16 {
        let order = if i % 2 == 0 { "asc" } else { "desc" };
        let path = format!("/api/v1/wards/{WARD}/caseload?sort=name_kana&order={order}");
        let (app, token) = (&app, f.coordinator.token.clone());
        pages.push(async move { app.get(&path, &token).await.status });
    }
    let statuses = futures_util::future::join_all(pages).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

/// Every kind of change reaches the caseload projection: with the patient's entry gone (or, for
/// a new note, with what a note moves cleared), recording the change alone puts it back. The
/// match in `for_patient` lists every kind, so a kind added later does not compile until it is
/// tried here too.
async fn every_kind_of_change_reaches_the_projection(app: TestApp) {
    use renkei::changes::Change;
    use renkei::vocab::NoteKind;
    let t = team(&app, WARD).await;
    let at = renkei::db::now();
    let kinds = [
        Change::Patient { patient_id: "" },
        Change::Spo2Target { patient_id: "", recorded: true },
        Change::Team { patient_id: "" },
        Change::Consent { patient_id: "" },
        Change::NoteAdded {
            patient_id: "",
            note_id: "",
            created_at: at,
            kind: NoteKind::Visit,
            occurred_at: at,
            news2: Some((7, renkei::notes::news2::Band::High)),
        },
        Change::NoteRead { patient_id: "", user_id: "" },
        Change::NoteVersion { patient_id: "" },
        Change::Flag { patient_id: "", flag_id: "", action: renkei::changes::FlagAction::Raised },
        Change::DischargeCase { patient_id: "", case_id: "", action: renkei::changes::CaseAction::Opened },
        Change::Task { patient_id: "", case_id: "", task_id: None, action: renkei::changes::TaskAction::Created },
        Change::Attachment { patient_id: "" },
        Change::Medication { patient_id: "" },
        Change::Allergy { patient_id: "" },
        Change::EmergencyCard { patient_id: "" },
        Change::VisitPlan { patient_id: "" },
        Change::Appointment { patient_id: "" },
        Change::FamilyMessage { patient_id: "" },
    ];
    for kind in kinds {
        // A first read moves what its reader has not read (`notes::unread`), nothing of the
        // caseload: the one kind the projection does not follow.
        if matches!(kind, Change::NoteRead { .. }) {
            continue;
        }
        let patient_id = t.patient_id.clone();
        let (before, after) = app
            .db
            .run(move |conn| {
                use renkei::caseload::entries::Entry;
                use renkei::db::schema::caseload_entries as ce;
                let note = matches!(kind, Change::NoteAdded { .. });
                if note {
                    diesel::update(ce::table.find(&patient_id))
                        .set((
                            ce::last_visit_at.eq(None::<chrono::NaiveDateTime>),
                            ce::latest_news2_total.eq(None::<i32>),
                            ce::latest_news2_band.eq(None::<String>),
                            ce::latest_news2_at.eq(None::<chrono::NaiveDateTime>),
                        ))
                        .execute(conn)?;
                } else {
                    diesel::delete(ce::table.find(&patient_id)).execute(conn)?;
                }
                let load = |conn: &mut renkei::db::DbConn| {
                    ce::table.find(&patient_id).select(Entry::as_select()).first(conn).optional()
                };
                let before: Option<Entry> = load(conn)?;
                renkei::changes::record(conn, for_patient(kind, &patient_id))?;
                let after: Option<Entry> = load(conn)?;
                Ok((before, after))
            })
            .await
            .unwrap();
        let after = after.unwrap_or_else(|| panic!("{kind:?}: no caseload entry after the change"));
        if let Change::NoteAdded { occurred_at, .. } = kind {
            assert_eq!(before.expect("a new note keeps the entry").last_visit_at, None);
            assert_eq!(after.last_visit_at, Some(occurred_at), "{kind:?}");
            assert_eq!(
                (after.latest_news2_total, after.latest_news2_band),
                (Some(7), Some(renkei::notes::news2::Band::High))
            );
        } else {
            assert!(before.is_none(), "{kind:?}: the entry was removed first");
            assert_eq!(after.patient_id, t.patient_id, "{kind:?}");
        }
    }
}

/// Ties in the shown value — the same age in years, a visit on the same JST day — break by kana,
/// then id, not by the birth date or visit time behind them (the contract's tie rule).
async fn sort_ties_break_by_kana(app: TestApp) {
    let ward = "14133";
    let t = team(&app, ward).await;
    let cm = &t.care_manager;
    let register = |family: &'static str, kana: &'static str, birth: &'static str| {
        let mut body = patient_body(family, kana, ward);
        body["birth_date"] = json!(birth);
        let token = cm.token.clone();
        let app = &app;
        async move { id_of(&app.post("/api/v1/patients", &token, body).await.expect(201).body) }
    };
    // Both 86 years old on 2 December 2026 (and on any day but their birthdays); ウエノ is a day older.
    let ueno = register("上野", "ウエノ", "1940-06-01").await;
    let aoki = register("青木", "アオキ", "1940-06-02").await;
    let clinic = app.organization(&t.admin, "clinic", "中原クリニック", Some(ward)).await;
    let coordinator = app.person(&t.admin, &clinic, "physician", "member").await;
    app.call("PUT", &format!("/api/v1/wards/{ward}/coordinators/{}", coordinator.id), Some(&t.admin.token), None, &[])
        .await
        .expect(201);
    // The same JST day, ウエノ visited later.
    for (patient, minutes) in [(&aoki, 3), (&ueno, 1)] {
        app.post(
            &format!("/api/v1/patients/{patient}/notes"),
            &cm.token,
            json!({"kind": "visit", "occurred_at": ago(minutes), "text": "訪問"}),
        )
        .await
        .expect(201);
    }
    let get = |query: &'static str| {
        let token = coordinator.token.clone();
        let app = &app;
        async move {
            let res = app.get(&format!("/api/v1/wards/{ward}/caseload?{query}"), &token).await.expect(200);
            names(&res.body).into_iter().filter(|n| n == "上野" || n == "青木").collect::<Vec<_>>()
        }
    };
    for query in
        ["sort=age", "sort=age&order=desc", "sort=days_since_last_visit", "sort=days_since_last_visit&order=desc"]
    {
        assert_eq!(get(query).await, ["青木", "上野"], "{query}");
    }
}

fn for_patient<'a>(kind: renkei::changes::Change<'a>, patient_id: &'a str) -> renkei::changes::Change<'a> {
    use renkei::changes::Change;
    match kind {
        Change::Patient { .. } => Change::Patient { patient_id },
        Change::Spo2Target { recorded, .. } => Change::Spo2Target { patient_id, recorded },
        Change::Team { .. } => Change::Team { patient_id },
        Change::Consent { .. } => Change::Consent { patient_id },
        Change::NoteAdded { note_id, created_at, kind, occurred_at, news2, .. } => {
            Change::NoteAdded { patient_id, note_id, created_at, kind, occurred_at, news2 }
        }
        Change::NoteRead { user_id, .. } => Change::NoteRead { patient_id, user_id },
        Change::NoteVersion { .. } => Change::NoteVersion { patient_id },
        Change::Flag { flag_id, action, .. } => Change::Flag { patient_id, flag_id, action },
        Change::DischargeCase { case_id, action, .. } => Change::DischargeCase { patient_id, case_id, action },
        Change::Task { case_id, task_id, action, .. } => Change::Task { patient_id, case_id, task_id, action },
        Change::Attachment { .. } => Change::Attachment { patient_id },
        Change::Medication { .. } => Change::Medication { patient_id },
        Change::Allergy { .. } => Change::Allergy { patient_id },
        Change::EmergencyCard { .. } => Change::EmergencyCard { patient_id },
        Change::VisitPlan { .. } => Change::VisitPlan { patient_id },
        Change::Appointment { .. } => Change::Appointment { patient_id },
        Change::FamilyMessage { .. } => Change::FamilyMessage { patient_id },
    }
}

/// Writes that move one patient's entry at the same moment (visit notes with vital signs,
/// flags) all succeed, and the entry holds every one of them: on PostgreSQL two refreshes of
/// one entry once raced on its key (409) or lost the other's note.
async fn concurrent_writes_to_one_entry(app: TestApp) {
    let t = team(&app, WARD).await;
    let notes = format!("/api/v1/patients/{}/notes", t.patient_id);
    let flags = format!("/api/v1/patients/{}/flags", t.patient_id);
    let writes = (0..12).map(|i| {
        let (notes, flags, token) = (notes.clone(), flags.clone(), t.nurse.token.clone());
        let app = &app;
        async move {
            if i % 2 == 0 {
                let at = (Utc::now() - Duration::minutes(i)).to_rfc3339_opts(SecondsFormat::Micros, true);
                let body = json!({
                    "kind": "visit", "occurred_at": at, "text": format!("訪問 {i}"),
                    "vitals": {"respiratory_rate": 18 + i, "spo2": 96, "systolic_bp": 128, "pulse": 80,
                               "consciousness": "A", "temperature": 36.8, "on_oxygen": false}
                });
                app.post(&notes, &token, body).await.status
            } else {
                app.post(&flags, &token, json!({"severity": "urgent", "reason": format!("経過観察 {i}")})).await.status
            }
        }
    });
    let statuses = futures_util::future::join_all(writes).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    assert_entries_current(&app).await;
}

crate::both_backends!(
    concurrent_writes_to_one_entry,
    every_kind_of_change_reaches_the_projection,
    concurrent_pages_in_opposite_orders,
    missing_entries_are_rebuilt,
    caseload_for_coordinators_only,
    caseload_filters,
    caseload_as_csv,
    sort_ties_break_by_kana,
    csv_cells_never_become_formulas,
    ward_summary_for_city_staff,
    caseload_entries_follow_changes
);
