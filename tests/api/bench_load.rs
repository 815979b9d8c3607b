//! A smoke run of the load driver (`renkei-bench load`) against the real server: a tiny manifest
//! made through the API, a second of load, no errors. The full benchmark is benches/city.sh.

use std::time::Duration;

use renkei_bench::load::{self, Options, Scenario, Target};
use serde_json::json;

use crate::helpers::{TestApp, PASSWORD};
use crate::patients::team;

async fn load_driver_runs_clean(app: TestApp) {
    let a = team(&app, "14131").await;
    let b = team(&app, "14132").await;
    let manifest = json!({
        "scale": 0.0,
        "seed": 0,
        "password": PASSWORD,
        "database_backend": format!("{:?}", app.backend).to_lowercase(),
        "counts": {"patients": 2},
        "seconds": 0.0,
        "wards": [],
        "clinicians": [
            {"email": a.nurse.email, "user_id": a.nurse.id, "profession": "nurse", "patient_ids": [a.patient_id]},
            {"email": b.care_manager.email, "user_id": b.care_manager.id, "profession": "care_manager", "patient_ids": [b.patient_id]}
        ],
        "notes_sample": []
    });
    let path = app.data_dir.path().join("manifest.json");
    std::fs::write(&path, manifest.to_string()).unwrap();

    let report = load::drive(&Options {
        url: app.address.clone(),
        manifest: Some(path),
        concurrency: vec![2],
        duration: Duration::from_millis(500),
        scenarios: vec![Scenario::NotePost, Scenario::Timeline],
        target: Target::Renkei,
        server_pid: Some(std::process::id()),
        open_fraction: 0.8,
        label: "smoke".into(),
        verbose: false,
    })
    .await
    .unwrap();

    assert_eq!(report.results.len(), 2);
    for row in &report.results {
        assert_eq!(row.errors(), 0, "{:?}: {:?}", row.scenario, row.error_samples);
        assert!(row.closed.requests > 0, "{:?} sent nothing", row.scenario);
        let open = row.open.as_ref().expect("an open loop after a closed one");
        assert!(open.requests > 0 && open.p50_ms > 0.0, "{:?}: {open:?}", row.scenario);
    }
    assert!(report.server_memory.as_ref().and_then(|m| m.vm_hwm_kb).is_some());
    // The notes really were written, with vital signs.
    let page = app.get(&format!("/api/v1/patients/{}/notes?limit=1", a.patient_id), &a.nurse.token).await.expect(200);
    assert!(page.body["items"][0]["vitals"]["pulse"].is_i64(), "{}", page.text);
    assert!(load::table(&report).contains("| note_post | 2 |"));
}

crate::both_backends!(load_driver_runs_clean);
