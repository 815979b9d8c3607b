//! Malware scanning against a real clamd (Debian's clamav-daemon), started by the suite with a
//! signature database it writes itself: the EICAR test string, anywhere in a file (an .ndb body
//! signature), and the EICAR file itself (an .hdb MD5). No downloaded virus database is needed.
//! Without clamd the test says it skipped; `RENKEI_REQUIRE_CLAMD=1` (set by `.ci/run`) makes that
//! an error.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::attachments::{jpeg_like, multipart, outsider, send_raw, upload, visit_note};
use crate::helpers::{say, Backend, TestApp};
use crate::patients::team;

/// The EICAR anti-virus test file: harmless, and detected as malware by every scanner.
pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

pub struct Clamd {
    pub url: String,
    _dir: tempfile::TempDir,
}

fn required() -> bool {
    std::env::var("RENKEI_REQUIRE_CLAMD").is_ok_and(|v| v == "1")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn clamd_binary() -> Option<String> {
    ["/usr/sbin/clamd", "/usr/bin/clamd"].iter().find(|p| std::path::Path::new(p).is_file()).map(|p| p.to_string())
}

fn start() -> Result<Clamd, String> {
    let binary = clamd_binary().ok_or("clamd not found (apt-get install clamav-daemon)")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = dir.path().join("db");
    std::fs::create_dir(&db).map_err(|e| e.to_string())?;
    let md5 = {
        use md5::Digest;
        hex::encode(md5::Md5::digest(EICAR))
    };
    std::fs::write(db.join("renkei-test.hdb"), format!("{md5}:{}:Eicar-Test-Signature\n", EICAR.len()))
        .map_err(|e| e.to_string())?;
    std::fs::write(db.join("renkei-test.ndb"), format!("Eicar-Test-Signature-Body:0:*:{}\n", hex::encode(EICAR)))
        .map_err(|e| e.to_string())?;
    let port = free_port();
    let conf = dir.path().join("clamd.conf");
    std::fs::write(
        &conf,
        format!(
            "Foreground yes\nDatabaseDirectory {}\nTCPSocket {port}\nTCPAddr 127.0.0.1\nLogFile {}\n\
             StreamMaxLength 64M\nTemporaryDirectory {}\n",
            db.display(),
            dir.path().join("clamd.log").display(),
            dir.path().display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let child = Command::new(&binary)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {binary}: {e}"))?;
    // A watchdog stops clamd when this test process ends.
    let watchdog =
        format!("while [ -e /proc/{} ]; do sleep 1; done; kill {} 2>/dev/null", std::process::id(), child.id());
    Command::new("sh")
        .args(["-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start watchdog: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.path().join("clamd.log")).unwrap_or_default();
            return Err(format!("clamd did not listen on port {port}: {log}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    say(&format!("clamd started on 127.0.0.1:{port}"));
    Ok(Clamd { url: format!("tcp://127.0.0.1:{port}"), _dir: dir })
}

/// The clamd of this test run, or None (skip) when it cannot run and is not required.
pub fn clamd() -> Option<&'static Clamd> {
    static CLAMD: OnceLock<Option<Clamd>> = OnceLock::new();
    CLAMD
        .get_or_init(|| match std::thread::spawn(start).join().expect("clamd start thread") {
            Ok(c) => Some(c),
            Err(e) if required() => panic!("RENKEI_REQUIRE_CLAMD=1 but clamd cannot run: {e}"),
            Err(e) => {
                say(&format!("skipping the malware-scanning test: {e}"));
                None
            }
        })
        .as_ref()
}

/// A PDF carrying the EICAR string: a file of an accepted type, so it reaches the scanner.
fn infected_pdf() -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% ".to_vec();
    pdf.extend_from_slice(EICAR);
    pdf.extend_from_slice(b"\ntrailer << /Root 1 0 R >>\n%%EOF\n");
    pdf
}

fn stored(app: &TestApp) -> usize {
    crate::attachments::files_under(&app.data_dir.path().join("objects")).len()
}

async fn malware_audits(app: &TestApp, patient_id: &str) -> Vec<String> {
    use diesel::prelude::*;
    use renkei::db::schema::audit_events as a;
    let patient_id = patient_id.to_string();
    app.db
        .run(move |conn| {
            Ok(a::table
                .filter(a::patient_id.eq(&patient_id))
                .filter(a::resource_type.eq("attachment"))
                .filter(a::outcome.ne("success"))
                .select(a::detail)
                .load::<Option<String>>(conn)?
                .into_iter()
                .flatten()
                .collect())
        })
        .await
        .unwrap()
}

async fn uploads_are_scanned(backend: Backend) {
    let Some(clamd) = clamd() else { return };
    let app = TestApp::spawn_with(backend, &[("RENKEI_CLAMD_URL", &clamd.url)]).await;
    let t = team(&app, "14131").await;
    let note_id = visit_note(&app, &t.nurse, &t.patient_id, "紹介状を受領").await;
    let path = format!("/api/v1/notes/{note_id}/attachments");

    // Infected: 422 naming the file, nothing stored, the refusal audited with the signature.
    let res = upload(&app, &t.nurse, &path, "紹介状.pdf", &infected_pdf(), &[]).await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("file"));
    assert_eq!(res.body["errors"][0]["code"], json!("infected"));
    assert_eq!(res.header("content-type").as_deref(), Some("application/problem+json"));
    assert_eq!(stored(&app), 0);
    let audits = malware_audits(&app, &t.patient_id).await;
    assert!(audits.iter().any(|d| d.starts_with("malware: Eicar-Test-Signature")), "{audits:?}");
    let list = app.get(&path, &t.nurse.token).await.expect(200);
    assert_eq!(list.body["items"], json!([]));

    // Clean: stored as usual.
    upload(&app, &t.nurse, &path, "創部.jpg", &jpeg_like(50_000), &[]).await.expect(201);
    assert_eq!(stored(&app), 1);
    // An outsider is refused before anything is read or scanned.
    let stranger = outsider(&app, &t).await;
    upload(&app, &stranger, &path, "x.pdf", &infected_pdf(), &[]).await.expect(404);

    // clamd down (nothing listens where it should): 503, nothing stored, no temporary file.
    let down = TestApp::spawn_with(backend, &[("RENKEI_CLAMD_URL", &format!("tcp://127.0.0.1:{}", free_port()))]).await;
    let t = team(&down, "14131").await;
    let note_id = visit_note(&down, &t.nurse, &t.patient_id, "訪問").await;
    let (ct, body) = multipart(&[("file", "創部.jpg", "image/jpeg", &jpeg_like(5_000))]);
    let path = format!("/api/v1/notes/{note_id}/attachments");
    let (res, _) = send_raw(&down, "POST", &path, &t.nurse.token, Some(&ct), body, &[]).await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert!(res.header("retry-after").is_some());
    assert_eq!(stored(&down), 0);
    assert_eq!(crate::attachments::files_under(&down.data_dir.path().join("tmp")).len(), 0);
    let list = down.get(&path, &t.nurse.token).await.expect(200);
    assert_eq!(list.body["items"], json!([]));
}

crate::both_backends!(by_backend: uploads_are_scanned);
