//! A smoke run of the upload benchmark (`renkei-bench upload`) against the real server: four
//! small files sent two at a time, all stored, the photo with a thumbnail, the server's memory
//! sampled. The measured run is benches/upload.sh.

use std::path::PathBuf;

use renkei_bench::upload::{self, Kind, Options};
use serde_json::json;

use crate::helpers::{TestApp, PASSWORD};
use crate::patients::{team, Team};

/// A seed manifest naming one clinician, the nurse of a new team in `ward`, the way
/// `renkei-bench seed` writes it: what the benchmarks' smoke runs sign in with.
pub async fn nurse_manifest(app: &TestApp, ward: &str) -> (Team, PathBuf) {
    let t = team(app, ward).await;
    let manifest = json!({
        "scale": 0.0, "seed": 0, "password": PASSWORD,
        "database_backend": format!("{:?}", app.backend).to_lowercase(),
        "counts": {}, "seconds": 0.0, "wards": [], "notes_sample": [],
        "clinicians": [{"email": t.nurse.email, "user_id": t.nurse.id, "profession": "nurse", "patient_ids": [t.patient_id]}]
    });
    let path = app.data_dir.path().join("manifest.json");
    std::fs::write(&path, manifest.to_string()).unwrap();
    (t, path)
}

async fn upload_benchmark_runs_clean(app: TestApp) {
    let (t, path) = nurse_manifest(&app, "14133").await;

    let report = upload::drive(&Options {
        url: app.address.clone(),
        manifest: path,
        server_pid: Some(std::process::id()),
        files: 2,
        size_bytes: 256 * 1024,
        rounds: 1,
        kinds: vec![Kind::Pdf, Kind::Jpeg],
        with_sink: true,
        verbose: false,
    })
    .await
    .unwrap();

    assert_eq!(report.results.len(), 2);
    for r in &report.results {
        assert_eq!(r.renkei.failures, 0, "{:?}: {:?}", r.kind, r.error_samples);
        assert_eq!(r.stored, 2);
        assert!(r.renkei.mib_per_s > 0.0 && r.sink.as_ref().is_some_and(|s| s.mib_per_s > 0.0));
        assert!(r.file_bytes <= 256 * 1024 && r.file_bytes > 200 * 1024, "{:?}: {}", r.kind, r.file_bytes);
        let m = r.server_memory.as_ref().expect("memory sampled");
        assert!(m.peak_kb >= m.before_kb && m.samples > 0);
    }
    // The files really were stored on the nurse's notes: two PDFs, two photos with thumbnails.
    let page = app.get(&format!("/api/v1/patients/{}/notes?limit=10", t.patient_id), &t.nurse.token).await.expect(200);
    let mut types = Vec::new();
    for note in page.body["items"].as_array().unwrap() {
        let id = note["id"].as_str().unwrap();
        let list = app.get(&format!("/api/v1/notes/{id}/attachments"), &t.nurse.token).await.expect(200);
        for item in list.body["items"].as_array().unwrap() {
            assert_eq!(item["thumbnail_url"].is_string(), item["content_type"] == "image/jpeg", "{}", list.text);
            types.push(item["content_type"].as_str().unwrap().to_string());
        }
    }
    types.sort();
    assert_eq!(types, ["application/pdf", "application/pdf", "image/jpeg", "image/jpeg"]);
    assert!(upload::table(&report).contains("| Jpeg |"));
}

crate::both_backends!(upload_benchmark_runs_clean);
