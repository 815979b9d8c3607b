//! The operator's commands, run as the built `renkei` program: `mail test`, `backup` (and a
//! restore: a server started on the copy sees the data), and the start log's next step when no
//! administrator exists.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{Backend, TestApp, JWT_SECRET};
use crate::smtp::SmtpServer;

/// `renkei ARGS` with a configuration of its own (a data folder, the test JWT secret).
async fn renkei(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_renkei"));
    cmd.args(args).env("RENKEI_JWT_SECRET", JWT_SECRET).env("RUST_LOG", "warn");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("run renkei")).await.expect("join")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_test_writes_a_readable_eml_file_in_development() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().to_string();
    let out = renkei(&["mail", "test", "--to", "suzuki@example.jp"], &[("RENKEI_DATA_DIR", &data)]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("test e-mail to suzuki@example.jp handed to an .eml file"), "{}", text(&out));
    let files: Vec<_> = std::fs::read_dir(dir.path().join("mail")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    assert!(raw.contains("To: suzuki@example.jp"), "{raw}");
    assert!(raw.contains("Content-Transfer-Encoding: 8bit"), "{raw}");
    assert!(raw.contains("このメールが届いていれば、メールの設定は正しく動いています。"), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_test_goes_through_smtp_and_says_when_it_cannot() {
    let server = SmtpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().to_string();
    let url = server.url();
    let vars = [("RENKEI_DATA_DIR", data.as_str()), ("RENKEI_SMTP_URL", url.as_str())];
    let out = renkei(&["mail", "test", "--to", "kanri@example.jp"], &vars).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("handed to SMTP"), "{}", text(&out));
    let received = server.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(received[0].rcpt_to, vec!["kanri@example.jp".to_string()]);

    // A refused recipient: permanent, non-zero exit.
    server.reject("nobody@example.jp");
    let out = renkei(&["mail", "test", "--to", "nobody@example.jp"], &vars).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("(permanent)"), "{}", text(&out));

    // No server listening: temporary, non-zero exit.
    let down = crate::smtp::url(crate::smtp::unused_port());
    let vars = [("RENKEI_DATA_DIR", data.as_str()), ("RENKEI_SMTP_URL", down.as_str())];
    let out = renkei(&["mail", "test", "--to", "kanri@example.jp"], &vars).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("(temporary)"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_test_takes_one_bare_address_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().to_string();
    for to in ["suzuki@example.jp\r\nBcc: evil@example.jp", "鈴木 <suzuki@example.jp>", "a@example.jp,b@example.jp"] {
        let out = renkei(&["mail", "test", "--to", to], &[("RENKEI_DATA_DIR", &data)]).await;
        assert!(!out.status.success(), "{to:?}");
        assert!(text(&out).contains("--to must be one e-mail address"), "{}", text(&out));
    }
    assert!(!dir.path().join("mail").exists() || std::fs::read_dir(dir.path().join("mail")).unwrap().count() == 0);
}

/// Back up a running server's SQLite database, start a server on the copy, see the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_sqlite() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "care_management_office", "宮前ケアプランセンター", Some("14136")).await;
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("backup.db");
    let copy_s = copy.to_string_lossy().to_string();
    let data = app.data_dir.path().to_string_lossy().to_string();
    let vars = [("DATABASE_URL", app.database_url.as_str()), ("RENKEI_DATA_DIR", data.as_str())];
    let out = renkei(&["backup", &copy_s], &vars).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("backed up"), "{}", text(&out));
    // Never over an existing file.
    let again = renkei(&["backup", &copy_s], &vars).await;
    assert!(!again.status.success());
    assert!(text(&again).contains("exists already"), "{}", text(&again));
    // A change after the backup is not in the copy.
    let later = app.organization(&admin, "clinic", "宮前在宅クリニック", Some("14136")).await;

    let restored_dir = tempfile::tempdir().unwrap();
    let restored =
        TestApp::start(Backend::Sqlite, format!("sqlite://{copy_s}"), restored_dir, false, HashMap::new()).await;
    let res = restored.get(&format!("/api/v1/organizations/{org}"), &admin.token).await.expect(200);
    assert_eq!(res.body["name"], "宮前ケアプランセンター");
    restored.get(&format!("/api/v1/organizations/{later}"), &admin.token).await.expect(404);
    // The audit trail of the copy is intact.
    let report = restored.db.run(renkei::audit::verify).await.unwrap();
    assert!(report.broken.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_refuses_postgres_with_a_pointer_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().to_string();
    let target = dir.path().join("copy.db").to_string_lossy().to_string();
    let vars = [("DATABASE_URL", "postgres://renkei@127.0.0.1:1/renkei"), ("RENKEI_DATA_DIR", data.as_str())];
    let out = renkei(&["backup", &target], &vars).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("pg_dump"), "{}", text(&out));
}

/// A new installation's start log names the command that makes the first administrator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_log_says_how_to_create_the_first_administrator() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_renkei"))
        .arg("serve")
        .env("RENKEI_DATA_DIR", dir.path())
        .env("RENKEI_JWT_SECRET", JWT_SECRET)
        .env("RENKEI_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start renkei serve");
    let stdout = child.stdout.take().unwrap();
    let found = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut seen = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("renkei admin create --email") {
                return (true, seen);
            }
            if line.contains("listening") || started.elapsed() > Duration::from_secs(60) {
                return (false, seen);
            }
        }
        (false, seen)
    })
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(found.0, "{}", found.1);
    assert!(found.1.contains("no system administrator exists yet"), "{}", found.1);
    assert!(found.1.contains("--password-stdin"), "{}", found.1);
}
