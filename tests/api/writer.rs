//! The write path: on SQLite one writer commits many requests' work together (group commit), each
//! request in a savepoint of its own; reads run beside it and hand their audit records to it.
//! These scenarios hold on both databases: a failing request among concurrent ones undoes only
//! itself, an answer carrying patient data leaves only after its audit record is committed, reads
//! do not wait for a long write, and a server killed under load loses no acknowledged note.

use std::collections::HashSet;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use diesel::prelude::*;
use renkei::audit::{self, Action, Event, Resource};
use renkei::db::schema::{audit_events, note_reads, notes};
use renkei::error::AppError;
use serde_json::json;

use crate::helpers::{Backend, TestApp, JWT_SECRET};
use crate::patients::team;

fn visit(text: &str) -> serde_json::Value {
    json!({ "kind": "visit", "occurred_at": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true), "text": text })
}

/// Keeps the writer (SQLite) or one pooled connection (PostgreSQL) busy inside a write for `ms`.
fn hold_the_writer(app: &TestApp, ms: u64) -> tokio::task::JoinHandle<Result<(), AppError>> {
    let db = app.db.clone();
    tokio::spawn(async move {
        db.run(move |conn| {
            audit::append(conn, None, None, Event::new(Action::Execute, Resource::User, None, None).detail("held"))?;
            std::thread::sleep(Duration::from_millis(ms));
            Ok(())
        })
        .await
    })
}

fn details_like(conn: &mut renkei::db::DbConn, prefix: &str) -> Vec<String> {
    audit_events::table
        .filter(audit_events::detail.like(format!("{prefix}%")))
        .select(audit_events::detail.assume_not_null())
        .load(conn)
        .unwrap()
}

/// Concurrent requests: one fails, one panics, one is refused but keeps its audit record, one
/// rolls back a nested transaction of its own. Only what failed is undone; the audit chains stay
/// whole.
async fn a_failing_request_undoes_only_itself(app: TestApp) {
    let tag = crate::helpers::short_id();
    let before = app.db.writer_stats().map(|s| s.counts());
    // While the writer is busy the requests below queue up and then share one batch.
    let held = hold_the_writer(&app, 400);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut requests = Vec::new();
    for k in 0..12 {
        let db = app.db.clone();
        let detail = format!("iso-{tag}-{k:02}");
        requests.push(tokio::spawn(async move {
            db.run(move |conn| {
                let event = |d: &str| Event::new(Action::Execute, Resource::User, None, None).detail(d.to_string());
                audit::append(conn, None, None, event(&detail))?;
                match k {
                    3 => Err(AppError::internal("this request fails")),
                    5 => panic!("this request panics"),
                    7 => Err(AppError::hidden()),
                    8 => {
                        let inner: Result<(), AppError> = conn.transaction(|conn| {
                            audit::append(conn, None, None, event(&format!("{detail}-inner")))?;
                            Err(AppError::internal("the nested part fails"))
                        });
                        assert!(inner.is_err());
                        Ok(())
                    }
                    _ => Ok(()),
                }
            })
            .await
        }));
    }
    let mut outcomes = Vec::new();
    for r in requests {
        outcomes.push(r.await.unwrap().map_err(|e| e.status().as_u16()));
    }
    held.await.unwrap().unwrap();
    for (k, outcome) in outcomes.iter().enumerate() {
        match k {
            3 | 5 => assert_eq!(outcome, &Err(500), "request {k}"),
            7 => assert_eq!(outcome, &Err(404), "request {k}"),
            _ => assert_eq!(outcome, &Ok(()), "request {k}"),
        }
    }
    let prefix = format!("iso-{tag}-");
    let mut kept = app.db.run(move |conn| Ok(details_like(conn, &prefix))).await.unwrap();
    kept.sort();
    let expected: Vec<String> = (0..12).filter(|k| *k != 3 && *k != 5).map(|k| format!("iso-{tag}-{k:02}")).collect();
    assert_eq!(kept, expected, "only the failed requests' work is undone");
    let report = app.db.run(audit::verify).await.unwrap();
    assert!(report.broken.is_none(), "{}", report.broken.unwrap());
    if let (Some(before), Some(stats)) = (before, app.db.writer_stats()) {
        let after = stats.counts();
        let batches = after.batches - before.batches;
        assert_eq!(after.rolled_back - before.rolled_back, 2, "the failing and the panicking request");
        // The held request's batch, then the twelve queued behind it in (at most) a few more.
        assert!(batches < 12, "{batches} batches for 13 requests: nothing was grouped");
    }
}

/// Every answer carrying patient data leaves only after its audit record (and its first-read
/// receipt) is committed: another connection sees them the moment the answer arrives.
async fn audit_records_are_committed_before_the_answer(app: TestApp) {
    let t = team(&app, "14131").await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let res = app
            .post(&format!("/api/v1/patients/{}/notes", t.patient_id), &t.nurse.token, visit(&format!("記録{i}")))
            .await
            .expect(201);
        ids.push(res.body["id"].as_str().unwrap().to_string());
    }
    let app = Arc::new(app);
    let reader = t.care_manager.clone();
    let mut tasks = Vec::new();
    for id in ids {
        let (app, reader) = (app.clone(), reader.clone());
        tasks.push(tokio::spawn(async move {
            let res = app.get(&format!("/api/v1/notes/{id}"), &reader.token).await.expect(200);
            assert_eq!(res.body["read_by_me"], json!(true));
            assert_eq!(res.body["read_count"], json!(2), "the author and this reader");
            // Straight after the answer, from a connection of its own.
            let mut conn = app.db.get().unwrap();
            let audited: i64 = audit_events::table
                .filter(audit_events::actor_id.eq(&reader.id))
                .filter(audit_events::resource_id.eq(&id))
                .filter(audit_events::action.eq("R"))
                .count()
                .get_result(&mut *conn)
                .unwrap();
            assert_eq!(audited, 1, "the read of {id} is audited before its answer");
            let receipts: i64 = note_reads::table
                .filter(note_reads::note_id.eq(&id))
                .filter(note_reads::user_id.eq(&reader.id))
                .count()
                .get_result(&mut *conn)
                .unwrap();
            assert_eq!(receipts, 1, "the first read of {id} left its receipt before the answer");
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // The timeline and the unread summary, the same way.
    let timeline_reads = |conn: &mut renkei::db::DbConn, actor: &str| -> i64 {
        audit_events::table
            .filter(audit_events::actor_id.eq(actor.to_string()))
            .filter(audit_events::resource_type.eq("timeline"))
            .count()
            .get_result(conn)
            .unwrap()
    };
    app.get(&format!("/api/v1/patients/{}/timeline", t.patient_id), &t.nurse.token).await.expect(200);
    assert_eq!(timeline_reads(&mut app.db.get().unwrap(), &t.nurse.id), 1);
    let unread = app.get("/api/v1/me/unread", &t.nurse.token).await.expect(200);
    let shown = unread.body["items"].as_array().unwrap().len();
    let mut conn = app.db.get().unwrap();
    let unread_reads: i64 = audit_events::table
        .filter(audit_events::actor_id.eq(&t.nurse.id))
        .filter(audit_events::detail.eq("unread"))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(unread_reads as usize, shown);
    drop(conn);
    // A refused read keeps its audit record too.
    let before = crate::helpers::denied_events(&app, &t.admin.id, "note").await;
    let stranger = app.get(&format!("/api/v1/patients/{}/notes", t.patient_id), &t.admin.token).await;
    assert_eq!(stranger.status, 404);
    assert_eq!(crate::helpers::denied_events(&app, &t.admin.id, "note").await, before + 1);
    let report = app.db.run(audit::verify).await.unwrap();
    assert!(report.broken.is_none(), "{}", report.broken.unwrap());
}

/// A long write does not delay a read: a read runs on a connection of its own and sees the
/// database as it was before the write commits.
async fn reads_do_not_wait_for_a_long_write(app: TestApp) {
    let t = team(&app, "14132").await;
    let held = hold_the_writer(&app, 1500);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    app.get("/api/v1/me", &t.nurse.token).await.expect(200);
    let seen = app
        .db
        .read(|conn| Ok(audit_events::table.filter(audit_events::detail.eq("held")).count().get_result::<i64>(conn)?))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(seen, 0, "the read sees only committed work");
    assert!(waited < Duration::from_millis(900), "reads waited {waited:?} for the writer");
    held.await.unwrap().unwrap();
    let seen = app
        .db
        .read(|conn| Ok(audit_events::table.filter(audit_events::detail.eq("held")).count().get_result::<i64>(conn)?))
        .await
        .unwrap();
    assert_eq!(seen, 1);
}

/// A free loopback port.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_server(database_url: &str, dir: &std::path::Path, port: u16) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_renkei"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("RENKEI_DATA_DIR", dir)
        .env("RENKEI_JWT_SECRET", JWT_SECRET)
        .env("RENKEI_BIND", format!("127.0.0.1:{port}"))
        .env("RENKEI_DB_POOL_SIZE", "8")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start renkei serve")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    loop {
        if let Ok(res) = client.get(format!("{base}/readyz")).send().await {
            if res.status().is_success() {
                return;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The server process is killed (SIGKILL) while notes are being posted to it at 16 connections:
/// every note it acknowledged with 201 is in the database afterwards, the restarted server serves
/// it, and the audit trail still verifies.
async fn a_killed_server_loses_no_acknowledged_note(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = team(&app, "14133").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start_server(&app.database_url, dir.path(), port);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    wait_ready(&client, &base).await;

    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let path = format!("{base}/api/v1/patients/{}/notes", t.patient_id);
    let mut posters = Vec::new();
    for c in 0..16 {
        let (client, path, token, acknowledged) =
            (client.clone(), path.clone(), t.nurse.token.clone(), acknowledged.clone());
        posters.push(tokio::spawn(async move {
            for i in 0.. {
                let sent = client.post(&path).bearer_auth(&token).json(&visit(&format!("訪問 {c}-{i}"))).send().await;
                let Ok(res) = sent else { return };
                if res.status().as_u16() != 201 {
                    continue;
                }
                let Ok(body) = res.json::<serde_json::Value>().await else { return };
                acknowledged.lock().unwrap().push(body["id"].as_str().unwrap().to_string());
            }
        }));
    }
    // Let the load run, then kill the process in the middle of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    for p in posters {
        p.await.unwrap();
    }
    let acknowledged: Vec<String> = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 10, "only {} notes were acknowledged before the kill", acknowledged.len());

    // After the restart every acknowledged note is there.
    let mut restarted = start_server(&app.database_url, dir.path(), port);
    wait_ready(&client, &base).await;
    let wanted = acknowledged.clone();
    let stored: HashSet<String> = app
        .db
        .read(move |conn| {
            Ok(wanted
                .chunks(500)
                .map(|chunk| notes::table.filter(notes::id.eq_any(chunk)).select(notes::id).load::<String>(conn))
                .collect::<Result<Vec<_>, _>>()?
                .concat()
                .into_iter()
                .collect())
        })
        .await
        .unwrap();
    let lost: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged notes were lost: {lost:?}", lost.len(), acknowledged.len());
    for id in acknowledged.iter().rev().take(5) {
        let res =
            client.get(format!("{base}/api/v1/notes/{id}")).bearer_auth(&t.care_manager.token).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
    }
    let _ = restarted.kill();
    let _ = restarted.wait();
    let report = app.db.run(audit::verify).await.unwrap();
    assert!(report.broken.is_none(), "{}", report.broken.unwrap());
}

crate::both_backends!(
    a_failing_request_undoes_only_itself,
    audit_records_are_committed_before_the_answer,
    reads_do_not_wait_for_a_long_write
);
crate::both_backends!(by_backend: a_killed_server_loses_no_acknowledged_note);
