//! A real S3-compatible server for the attachment tests: moto's server (PyPI `moto[server]`),
//! started once per test run on a free port, with a fresh bucket per test. `.ci/run` installs
//! it into a throwaway venv and names its `moto_server` in `RENKEI_MOTO_SERVER`; otherwise the
//! one on `PATH` is used. With `RENKEI_REQUIRE_S3=1` a missing moto fails the tests instead of
//! skipping their S3 half.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::helpers::{say, Backend, TestApp};

pub struct Moto {
    pub endpoint: String,
}

fn required() -> bool {
    std::env::var("RENKEI_REQUIRE_S3").is_ok_and(|v| v == "1")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn moto_binary() -> Option<String> {
    if let Ok(path) = std::env::var("RENKEI_MOTO_SERVER") {
        if !path.is_empty() {
            return Some(path);
        }
    }
    let found = Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found.then(|| "moto_server".to_string())
}

fn start() -> Result<Moto, String> {
    let binary = moto_binary().ok_or("moto_server not found (pip install \"moto[server]\")")?;
    let port = free_port();
    let child = Command::new(&binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {binary}: {e}"))?;
    // A watchdog stops moto when this test process ends.
    let watchdog =
        format!("while [ -e /proc/{} ]; do sleep 1; done; kill {} 2>/dev/null", std::process::id(), child.id());
    Command::new("sh")
        .args(["-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start watchdog: {e}"))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if up {
            say(&format!("moto S3 server started on {endpoint}"));
            return Ok(Moto { endpoint });
        }
        if Instant::now() > deadline {
            return Err(format!("moto_server did not answer on {endpoint}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The moto server of this test run, or None (skip) when it cannot run and is not required.
pub fn moto() -> Option<&'static Moto> {
    static MOTO: OnceLock<Option<Moto>> = OnceLock::new();
    MOTO.get_or_init(|| match std::thread::spawn(start).join().expect("moto start thread") {
        Ok(m) => Some(m),
        Err(e) if required() => panic!("RENKEI_REQUIRE_S3=1 but the S3 server cannot run: {e}"),
        Err(e) => {
            say(&format!("skipping the S3 half of the attachment tests: {e}"));
            None
        }
    })
    .as_ref()
}

/// A server on `backend` whose attachments go to a new bucket of the moto server.
pub async fn spawn(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
    let moto = moto()?;
    if backend == Backend::Postgres && crate::helpers::postgres().is_none() {
        return None;
    }
    let bucket = format!("renkei-{}", uuid::Uuid::new_v4().simple());
    let created =
        reqwest::Client::new().put(format!("{}/{bucket}", moto.endpoint)).send().await.expect("create bucket");
    assert!(created.status().is_success(), "create bucket: {}", created.status());
    let url = format!("s3://{bucket}");
    let mut settings: Vec<(&str, &str)> = vec![
        ("RENKEI_STORAGE_URL", &url),
        ("AWS_ENDPOINT", &moto.endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "renkei-test"),
        ("AWS_SECRET_ACCESS_KEY", "renkei-test-secret"),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    settings.extend_from_slice(extra);
    let app = TestApp::spawn_with(backend, &settings).await;
    assert!(matches!(app.config.storage, renkei::config::Storage::S3 { .. }), "the S3 half runs on S3");
    Some(app)
}

/// Runs a scenario `async fn name(app: TestApp)` on both databases and both stores:
/// `name::sqlite`, `name::postgres` (the local folder), `name::s3_sqlite`, `name::s3_postgres`.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::helpers::TestApp::spawn_postgres().await {
                    super::$name(app).await
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3_sqlite() {
                if let Some(app) = $crate::s3::spawn($crate::helpers::Backend::Sqlite, &[]).await {
                    super::$name(app).await
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3_postgres() {
                if let Some(app) = $crate::s3::spawn($crate::helpers::Backend::Postgres, &[]).await {
                    super::$name(app).await
                }
            }
        }
    )+};
}
