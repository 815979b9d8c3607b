//! The whole ward in Excel: a coordinating physician downloads the caseload of a ward of
//! thousands of patients as one CSV, every patient once, in the caseload's order, each
//! patient's read audited.

use chrono::{Duration, NaiveDate};
use diesel::prelude::*;
use renkei::caseload::Entry;
use renkei::patients::Patient;

use crate::helpers::{Person, TestApp};
use crate::patients::team;

const WARD: &str = "14135";
/// More than a few parts of the download (500 rows each), with a last part that is not full.
const SEEDED: usize = 2_345;

const FAMILY: [&str; 7] = ["アオキ", "イトウ", "ウエダ", "エンドウ", "オオタ", "カトウ", "キムラ"];
const GIVEN: [&str; 5] = ["ハナコ", "タロウ", "ユミ", "ケン", "サチコ"];

/// The seeded patients' entries, as the projection would store them.
async fn seed(app: &TestApp, registered_by: &str) -> Vec<Entry> {
    let now = renkei::db::now();
    let mut patients = Vec::new();
    let mut entries = Vec::new();
    for i in 0..SEEDED {
        let (family, given) = (FAMILY[i % FAMILY.len()], GIVEN[i % GIVEN.len()]);
        let id = renkei::db::new_id();
        let birth_date =
            NaiveDate::from_ymd_opt(1930 + (i % 30) as i32, 1 + (i % 12) as u32, 1 + (i % 28) as u32).unwrap();
        patients.push(Patient {
            id: id.clone(),
            family_name: format!("={i}"),
            given_name: "花子".into(),
            family_name_kana: family.into(),
            given_name_kana: given.into(),
            name_kana_search: format!("{family}{given}"),
            birth_date,
            sex: renkei::vocab::Sex::Female,
            ward_code: WARD.into(),
            address: None,
            phone: None,
            care_level: renkei::vocab::CareLevel::Care1,
            status: renkei::vocab::PatientStatus::Home,
            emergency_contact_name: None,
            emergency_contact_relationship: None,
            emergency_contact_phone: None,
            spo2_target_88_92: false,
            registered_by: registered_by.into(),
            version: 1,
            created_at: now,
            updated_at: now,
            superseded_by: None,
            approval_waived_reason: None,
            approval_waived_by: None,
            approval_waived_at: None,
        });
        // Many ties in every sorted column, and rows without a value.
        let news2 = (i % 4 != 0).then_some((i % 9) as i32);
        entries.push(Entry {
            patient_id: id,
            ward_code: WARD.into(),
            status: renkei::vocab::PatientStatus::Home,
            name_kana: format!("{family} {given}"),
            birth_date,
            care_level: renkei::vocab::CareLevel::Care1,
            care_level_rank: 4,
            team_size: 1,
            has_primary_physician: false,
            active_flags: (i % 3) as i32,
            highest_flag_severity: None,
            latest_news2_total: news2,
            latest_news2_band: news2.map(|_| renkei::notes::news2::Band::Low),
            latest_news2_at: news2.map(|_| now - Duration::hours((i % 50) as i64)),
            last_visit_at: (i % 5 != 0).then(|| now - Duration::hours((i % 200) as i64)),
            open_case_id: None,
            planned_discharge_on: None,
            next_task_due_at: None,
            consent_state: renkei::vocab::ConsentStatus::None,
            updated_at: now,
        });
    }
    let (p, e) = (patients, entries.clone());
    app.db
        .run(move |conn| {
            use renkei::db::schema::{caseload_entries, patients};
            // One transaction; single-row inserts (a multi-row insert does not type-check on the
            // two-backend connection).
            for row in &p {
                diesel::insert_into(patients::table).values(row).execute(conn)?;
            }
            for row in &e {
                diesel::insert_into(caseload_entries::table).values(row).execute(conn)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    entries
}

async fn download(app: &TestApp, who: &Person, query: &str) -> Vec<Vec<String>> {
    let res = app
        .call(
            "GET",
            &format!("/api/v1/wards/{WARD}/caseload?{query}"),
            Some(&who.token),
            None,
            &[("accept", "text/csv")],
        )
        .await
        .expect(200);
    assert!(res.header("content-type").unwrap().starts_with("text/csv"));
    let body = res.text.strip_prefix('\u{feff}').expect("UTF-8 BOM first");
    assert!(body.ends_with("\r\n"), "the file ends with its last row");
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

fn ids(rows: &[Vec<String>]) -> Vec<String> {
    rows[1..].iter().map(|r| r[0].clone()).collect()
}

async fn the_whole_ward_arrives_in_order(app: TestApp) {
    let t = team(&app, WARD).await;
    let clinic = app.organization(&t.admin, "clinic", "多摩在宅クリニック", Some(WARD)).await;
    let coordinator = app.person(&t.admin, &clinic, "physician", "member").await;
    app.call("PUT", &format!("/api/v1/wards/{WARD}/coordinators/{}", coordinator.id), Some(&t.admin.token), None, &[])
        .await
        .expect(201);
    let mut entries = seed(&app, &t.care_manager.id).await;
    // The team's own patient, registered through the API, is in the ward too.
    let registered: Entry = {
        let id = t.patient_id.clone();
        app.db
            .run(move |conn| {
                use renkei::db::schema::caseload_entries as c;
                Ok(c::table.find(id).select(Entry::as_select()).first(conn)?)
            })
            .await
            .unwrap()
    };
    entries.push(registered);
    let total = entries.len();

    // By kana (the default): every patient once, ties by id; `limit` does not cut the file.
    let rows = download(&app, &coordinator, "limit=10").await;
    assert_eq!(rows[0][0], "患者ID");
    assert_eq!(rows.len(), 1 + total, "a header and every patient of the ward");
    let mut expected = entries.clone();
    expected.sort_by(|a, b| (&a.name_kana, &a.patient_id).cmp(&(&b.name_kana, &b.patient_id)));
    assert_eq!(ids(&rows), expected.iter().map(|e| e.patient_id.clone()).collect::<Vec<_>>());
    // Cells are neutralised as in every CSV the service writes.
    assert!(rows[1..].iter().filter(|r| r[1].starts_with('=')).count() == 0, "a formula reached the file");

    // Latest NEWS2, highest first: rows without a score last, ties by kana then id, across
    // the parts' boundaries.
    let rows = download(&app, &coordinator, "sort=latest_news2&order=desc").await;
    let mut expected = entries.clone();
    expected.sort_by(|a, b| {
        (a.latest_news2_total.is_none(), std::cmp::Reverse(a.latest_news2_total), &a.name_kana, &a.patient_id).cmp(&(
            b.latest_news2_total.is_none(),
            std::cmp::Reverse(b.latest_news2_total),
            &b.name_kana,
            &b.patient_id,
        ))
    });
    assert_eq!(ids(&rows), expected.iter().map(|e| e.patient_id.clone()).collect::<Vec<_>>());

    // Age, youngest first, and days since the last visit: computed columns keep their order too.
    for query in ["sort=age&order=asc", "sort=days_since_last_visit&order=desc", "sort=active_flags"] {
        let rows = download(&app, &coordinator, query).await;
        let got = ids(&rows);
        assert_eq!(got.len(), total, "{query}");
        let mut unique = got.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), total, "{query}: a patient twice");
        let col = match query {
            "sort=age&order=asc" => 3,
            "sort=days_since_last_visit&order=desc" => 12,
            _ => 8,
        };
        let values: Vec<Option<i64>> = rows[1..].iter().map(|r| r[col].parse().ok()).collect();
        let mut sorted = values.clone();
        match query {
            "sort=days_since_last_visit&order=desc" => {
                sorted.sort_by_key(|v| (v.is_none(), v.map(std::cmp::Reverse)));
            }
            _ => sorted.sort(),
        }
        assert_eq!(values, sorted, "{query}");
    }

    // A filter narrows the download as it narrows a page.
    let rows = download(&app, &coordinator, "has_active_flag=true").await;
    assert_eq!(rows.len() - 1, entries.iter().filter(|e| e.active_flags > 0).count());

    // Each patient's read is audited, and the download itself.
    let (reads, exports) = {
        let who = coordinator.id.clone();
        app.db
            .run(move |conn| {
                use renkei::db::schema::audit_events as a;
                let mine = a::table.filter(a::actor_id.eq(who)).filter(a::resource_type.eq("caseload"));
                let reads: i64 = mine.filter(a::action.eq("R")).count().get_result(conn)?;
                let mine = a::table.filter(a::resource_type.eq("caseload")).filter(a::action.eq("E"));
                let exports: i64 = mine.count().get_result(conn)?;
                Ok((reads, exports))
            })
            .await
            .unwrap()
    };
    let filtered = entries.iter().filter(|e| e.active_flags > 0).count();
    assert_eq!(reads as usize, 5 * total + filtered);
    assert_eq!(exports, 6);

    // Someone who does not coordinate the ward gets the 404 of an unknown ward, not a file.
    let res = app
        .call("GET", &format!("/api/v1/wards/{WARD}/caseload"), Some(&t.nurse.token), None, &[("accept", "text/csv")])
        .await
        .expect(404);
    assert!(res.header("content-type").unwrap().starts_with("application/problem+json"));
}

crate::both_backends!(the_whole_ward_arrives_in_order);
