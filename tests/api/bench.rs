//! `renkei-bench seed` at a tiny scale: the seeded city is one the real server serves — a
//! clinician from the manifest signs in with the bench password and reads a patient's timeline
//! and a sampled note, and a coordinating physician of 川崎区 reads the ward's caseload.

use diesel::prelude::*;
use renkei_bench::seed::{self, Manifest, Options};

use crate::helpers::TestApp;

/// 60 patients (100,000 at scale 1.0).
const SCALE: f64 = 0.0006;

async fn seed_into(app: &TestApp) -> Result<Manifest, String> {
    let url = app.database_url.clone();
    tokio::task::spawn_blocking(move || seed::seed(&url, &Options { scale: SCALE, seed: 7 })).await.unwrap()
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> String {
    let res = app.login(email, password, None).await.expect(200);
    res.body["access_token"].as_str().unwrap().to_string()
}

async fn seeded_city_serves_its_people(app: TestApp) {
    let manifest = seed_into(&app).await.unwrap();
    assert_eq!(manifest.counts["patients"], 60);
    assert!(manifest.counts["notes"] >= 60 * 5, "{:?}", manifest.counts);
    assert!(manifest.counts["note_versions"] >= manifest.counts["notes"]);
    assert!(manifest.counts["care_team_members"] >= 60 * 3);
    assert_eq!(manifest.wards.iter().map(|w| w.patients).sum::<i64>(), 60);

    // A clinician reads the timeline of one of their patients.
    let clinician = manifest.clinicians.iter().find(|c| !c.patient_ids.is_empty()).expect("a clinician with patients");
    let token = sign_in(&app, &clinician.email, &manifest.password).await;
    let patient = &clinician.patient_ids[0];
    app.get(&format!("/api/v1/patients/{patient}/timeline"), &token).await.expect(200);

    // A sampled note, read by the clinician the manifest names.
    let sample = manifest.notes_sample.first().expect("a sampled note");
    let token = sign_in(&app, &sample.reader_email, &manifest.password).await;
    let note = app.get(&format!("/api/v1/notes/{}", sample.note_id), &token).await.expect(200);
    assert_eq!(note.body["patient_id"], sample.patient_id.as_str());

    // The coordinating physician of 川崎区 reads the ward's caseload.
    let ward = manifest.wards.iter().find(|w| w.code == "14131").expect("川崎区");
    assert!(ward.patients > 0);
    let token = sign_in(&app, &ward.coordinators[0], &manifest.password).await;
    let caseload = app.get("/api/v1/wards/14131/caseload", &token).await.expect(200);
    let entries: i64 = app
        .db
        .run(|conn| {
            use renkei::db::schema::caseload_entries as ce;
            Ok(ce::table.filter(ce::ward_code.eq("14131")).count().get_result(conn)?)
        })
        .await
        .expect("count entries");
    assert_eq!(entries, ward.patients, "every patient of the ward has a caseload entry");
    assert!(!caseload.body["items"].as_array().expect("items").is_empty());

    // A database that already has patients is refused.
    let again = seed_into(&app).await.unwrap_err();
    assert!(again.contains("already has 60 patients"), "{again}");
}

crate::both_backends!(seeded_city_serves_its_people);
