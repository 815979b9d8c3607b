//! The README's "A day in Kawasaki", run as the newcomer would: the first system administrator
//! made with `renkei admin create` as the README says, then `docs/walkthrough.sh` against the
//! running server, which must reach the ward caseload and the FHIR export.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::helpers::{Backend, TestApp, JWT_SECRET};

const ADMIN_EMAIL: &str = "admin@example.jp";
const ADMIN_PASSWORD: &str = "a-long-passphrase-here";

async fn a_day_in_kawasaki(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (url, data) = (app.database_url.clone(), app.data_dir.path().to_path_buf());
    let address = app.address.clone();
    let out = tokio::task::spawn_blocking(move || {
        // As in the README: the password on standard input.
        let mut admin = Command::new(env!("CARGO_BIN_EXE_renkei"))
            .args(["admin", "create", "--email", ADMIN_EMAIL, "--name", "管理者", "--password-stdin"])
            .env("DATABASE_URL", &url)
            .env("RENKEI_DATA_DIR", &data)
            .env("RENKEI_JWT_SECRET", JWT_SECRET)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run renkei admin create");
        writeln!(admin.stdin.take().unwrap(), "{ADMIN_PASSWORD}").unwrap();
        let created = admin.wait_with_output().unwrap();
        assert!(created.status.success(), "admin create: {}", String::from_utf8_lossy(&created.stderr));
        Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/walkthrough.sh"))
            .arg(&address)
            .env("ADMIN_EMAIL", ADMIN_EMAIL)
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env_remove("ADMIN_TOTP_SECRET")
            .output()
            .expect("run docs/walkthrough.sh")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "walk-through failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("caseload: 1 patients"), "{stdout}");
    assert!(stdout.contains("FHIR export: Bundle with"), "{stdout}");
    assert!(stdout.contains("walk-through complete"), "{stdout}");
}

crate::both_backends!(by_backend: a_day_in_kawasaki);
