//! The change feed (`GET /changes`) and its live stream: a first sync's snapshot, changes in
//! commit order that are never skipped or repeated (several writers, several instances), the
//! tombstone of a patient one stops following, an outsider's feed, a resumed stream, and an
//! offline client that ends with exactly the server's state.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::helpers::{Backend, Person, TestApp};
use crate::patients::team;

fn today_jst() -> String {
    (Utc::now() + chrono::Duration::hours(9)).date_naive().to_string()
}

fn visit(text: &str) -> Value {
    json!({ "kind": "visit", "occurred_at": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true), "text": text })
}

/// Every item after `since` (or the whole first sync), following `next_cursor` while `more`.
pub async fn drain(app: &TestApp, who: &Person, since: Option<&str>) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut cursor = since.map(str::to_string);
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/changes?limit=200&since={c}"),
            None => "/api/v1/changes?limit=200".to_string(),
        };
        let page = app.get(&path, &who.token).await.expect(200);
        items.extend(page.body["items"].as_array().unwrap().iter().cloned());
        cursor = Some(page.body["next_cursor"].as_str().unwrap().to_string());
        if page.body["more"] != json!(true) {
            return (items, cursor.unwrap());
        }
    }
}

/// Reads on until `done` holds for what arrived (a PostgreSQL change is served once every older
/// transaction of the cluster has ended, so it may take a moment).
pub async fn until(app: &TestApp, who: &Person, since: &str, done: impl Fn(&[Value]) -> bool) -> (Vec<Value>, String) {
    let mut all = Vec::new();
    let mut cursor = since.to_string();
    for _ in 0..100 {
        let (items, next) = drain(app, who, Some(&cursor)).await;
        all.extend(items);
        cursor = next;
        if done(&all) {
            return (all, cursor);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the feed did not bring what was expected; got {all:?}");
}

fn kinds_of(items: &[Value], patient_id: &str) -> Vec<String> {
    items
        .iter()
        .filter(|i| i["patient_id"] == json!(patient_id))
        .map(|i| i["kind"].as_str().unwrap().to_string())
        .collect()
}

async fn first_sync_changes_and_tombstone(app: TestApp) {
    let t = team(&app, "14131").await;
    // A patient of another team, in the same ward: never in our feeds.
    let other = team(&app, "14131").await;

    let (snapshot, cursor) = drain(&app, &t.nurse, None).await;
    assert_eq!(snapshot.len(), 1, "{snapshot:?}");
    assert_eq!(snapshot[0]["kind"], json!("patient"));
    assert_eq!(snapshot[0]["patient_id"], json!(t.patient_id));

    let (cm_snapshot, cm_cursor) = drain(&app, &t.care_manager, None).await;
    assert_eq!(cm_snapshot.iter().map(|i| i["patient_id"].clone()).collect::<Vec<_>>(), vec![json!(t.patient_id)]);

    app.post(&format!("/api/v1/patients/{}/notes", t.patient_id), &t.nurse.token, visit("訪問。変わりなし。"))
        .await
        .expect(201);
    app.post(&format!("/api/v1/patients/{}/notes", other.patient_id), &other.nurse.token, visit("別チーム"))
        .await
        .expect(201);
    let (items, cm_cursor) = until(&app, &t.care_manager, &cm_cursor, |items| {
        kinds_of(items, &t.patient_id).contains(&"note_added".to_string())
    })
    .await;
    assert!(items.iter().all(|i| i["patient_id"] == json!(t.patient_id)), "only our patient: {items:?}");
    let cursors: HashSet<&str> = items.iter().map(|i| i["cursor"].as_str().unwrap()).collect();
    assert_eq!(cursors.len(), items.len(), "one cursor per item");

    // The care manager ends the nurse's membership: the nurse's feed carries a tombstone, and
    // nothing of the patient after it.
    app.patch(
        &format!("/api/v1/patients/{}/care-team/{}", t.patient_id, t.nurse_member_id),
        &t.care_manager.token,
        json!({ "ended_on": today_jst() }),
        None,
    )
    .await
    .expect(200);
    app.post(&format!("/api/v1/patients/{}/notes", t.patient_id), &t.care_manager.token, visit("退院後の訪問"))
        .await
        .expect(201);
    let (nurse_items, nurse_cursor) =
        until(&app, &t.nurse, &cursor, |items| kinds_of(items, &t.patient_id).contains(&"access_revoked".to_string()))
            .await;
    let kinds = kinds_of(&nurse_items, &t.patient_id);
    assert_eq!(kinds.last().map(String::as_str), Some("access_revoked"), "{kinds:?}");
    assert!(!kinds.contains(&"team".to_string()), "no longer a member: {kinds:?}");
    // The care manager sees the team change and the later note, and no tombstone.
    let (cm_items, _) = until(&app, &t.care_manager, &cm_cursor, |items| {
        kinds_of(items, &t.patient_id).iter().filter(|k| *k == "note_added").count() == 1
    })
    .await;
    let cm_kinds = kinds_of(&cm_items, &t.patient_id);
    assert!(
        cm_kinds.contains(&"team".to_string()) && !cm_kinds.contains(&"access_revoked".to_string()),
        "{cm_kinds:?}"
    );
    // The nurse's next first sync no longer has the patient; later reads stay empty.
    let (again, _) = drain(&app, &t.nurse, None).await;
    assert!(again.is_empty(), "{again:?}");
    let (later, _) = drain(&app, &t.nurse, Some(&nurse_cursor)).await;
    assert!(later.is_empty(), "{later:?}");

    // Adding someone back gives them the patient again (and they refetch it whole).
    app.post(
        &format!("/api/v1/patients/{}/care-team", t.patient_id),
        &t.care_manager.token,
        json!({ "user_id": t.nurse.id, "role": "visiting_nurse" }),
    )
    .await
    .expect(201);
    until(&app, &t.nurse, &nurse_cursor, |items| {
        kinds_of(items, &t.patient_id).contains(&"access_granted".to_string())
    })
    .await;

    // Cursors are the server's own: anything else is 422 naming `since`.
    for bad in ["nonsense", "YS4xLjI", "Yy4tMS4y", &"A".repeat(300)] {
        let res = app.get(&format!("/api/v1/changes?since={bad}"), &t.nurse.token).await.expect(422);
        assert_eq!(res.body["errors"][0]["field"], json!("since"), "{bad}");
    }
    let res = app.get("/api/v1/changes?limit=0", &t.nurse.token).await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("limit"));
    app.call("GET", "/api/v1/changes", None, None, &[]).await.expect(401);
}

/// An outsider — a care manager of another office, with patients of their own in the same ward —
/// never sees another team's patient in a first sync or in any change, and the feed reads of
/// a team's patient are audited for the reader.
async fn an_outsiders_feed_never_shows_another_team(app: TestApp) {
    let t = team(&app, "14132").await;
    let outsider = team(&app, "14132").await;
    let (_, cursor) = drain(&app, &outsider.care_manager, None).await;
    for n in 0..3 {
        app.post(&format!("/api/v1/patients/{}/notes", t.patient_id), &t.nurse.token, visit(&format!("記録{n}")))
            .await
            .expect(201);
    }
    app.post(
        &format!("/api/v1/patients/{}/flags", t.patient_id),
        &t.nurse.token,
        json!({"severity": "urgent", "reason": "発熱"}),
    )
    .await
    .expect(201);
    app.post(&format!("/api/v1/patients/{}/notes", outsider.patient_id), &outsider.nurse.token, visit("自分の患者"))
        .await
        .expect(201);
    let (items, _) = until(&app, &outsider.care_manager, &cursor, |items| {
        kinds_of(items, &outsider.patient_id).contains(&"note_added".to_string())
    })
    .await;
    // The feed caught up past the other team's changes (they were earlier) and showed none.
    let (first, _) = drain(&app, &outsider.care_manager, None).await;
    for i in items.iter().chain(first.iter()) {
        assert_eq!(i["patient_id"], json!(outsider.patient_id), "{i}");
    }
    let (mine, _) =
        until(&app, &t.nurse, &cursor_origin(), |items| kinds_of(items, &t.patient_id).contains(&"flag".to_string()))
            .await;
    assert!(mine.iter().all(|i| i["patient_id"] == json!(t.patient_id)));
    let audited = feed_reads(&app, &t.nurse.id, &t.patient_id).await;
    assert!(audited >= 1, "the feed's read of the patient is audited");
    assert_eq!(feed_reads(&app, &outsider.care_manager.id, &t.patient_id).await, 0);
}

/// The cursor of the very beginning of the log.
fn cursor_origin() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("c.0.0")
}

async fn feed_reads(app: &TestApp, actor_id: &str, patient_id: &str) -> usize {
    use diesel::prelude::*;
    use renkei::db::schema::audit_events::dsl as a;
    let (actor_id, patient_id) = (actor_id.to_string(), patient_id.to_string());
    app.db
        .run(move |conn| {
            Ok(a::audit_events
                .filter(a::actor_id.eq(actor_id))
                .filter(a::patient_id.eq(patient_id))
                .filter(a::detail.eq("changes"))
                .count()
                .get_result::<i64>(conn)? as usize)
        })
        .await
        .unwrap()
}

/// Eight writers post notes through every instance (three on PostgreSQL, one process on
/// SQLite) while a reader follows the feed: every note arrives exactly once, and the items come
/// in one order with distinct cursors.
async fn concurrent_writers_never_skip_or_repeat(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let mut instances = vec![first];
    if backend == Backend::Postgres {
        for _ in 0..2 {
            let next = instances[0].another_instance(&[]).await;
            instances.push(next);
        }
    }
    let t = team(&instances[0], "14133").await;
    let (_, start) = drain(&instances[0], &t.care_manager, None).await;
    const WRITERS: usize = 8;
    const NOTES: usize = 15;
    let instances = std::sync::Arc::new(instances);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (instances, nurse, pid) = (instances.clone(), t.nurse.clone(), t.patient_id.clone());
        writers.push(tokio::spawn(async move {
            for n in 0..NOTES {
                let app = &instances[(w + n) % instances.len()];
                app.post(&format!("/api/v1/patients/{pid}/notes"), &nurse.token, visit(&format!("書き手{w} 記録{n}")))
                    .await
                    .expect(201);
            }
        }));
    }
    // The reader follows the feed on every instance in turn while the writers write.
    let reader = {
        let (instances, cm) = (instances.clone(), t.care_manager.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor = start;
            let mut turn = 0;
            // Counted by notes, so that another kind of item cannot end the loop before a missing
            // note would be noticed; the assertion below names any such item.
            let notes_in = |seen: &Vec<Value>| seen.iter().filter(|i| i["kind"] == json!("note_added")).count();
            while notes_in(&seen) < WRITERS * NOTES {
                let (items, next) = drain(&instances[turn % instances.len()], &cm, Some(&cursor)).await;
                turn += 1;
                seen.extend(items);
                cursor = next;
                tokio::time::sleep(Duration::from_millis(5)).await;
                assert!(turn < 20_000, "the reader never caught up: {} items", seen.len());
            }
            (seen, cursor)
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    // A feed that skipped a change never brings the reader to the count.
    let (seen, cursor) = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the reader never saw every note: the feed skipped changes")
        .unwrap();
    let notes: Vec<&Value> = seen.iter().filter(|i| i["kind"] == json!("note_added")).collect();
    let others: Vec<&Value> = seen.iter().filter(|i| i["kind"] != json!("note_added")).collect();
    assert_eq!(notes.len(), WRITERS * NOTES, "every note exactly once; others: {others:?}");
    let cursors: HashSet<&str> = seen.iter().map(|i| i["cursor"].as_str().unwrap()).collect();
    assert_eq!(cursors.len(), seen.len(), "no item twice");
    // Nothing more is waiting, and a fresh read from the start gives the same items in order.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rest, _) = drain(&instances[0], &t.care_manager, Some(&cursor)).await;
    assert!(rest.is_empty(), "{rest:?}");
    let (replay, _) = drain(&instances[0], &t.care_manager, Some(&cursor_origin())).await;
    let tail: Vec<&Value> = replay.iter().skip(replay.len() - seen.len()).collect();
    assert_eq!(tail, seen.iter().collect::<Vec<_>>(), "one commit order for every reader");
}

crate::both_backends!(first_sync_changes_and_tombstone, an_outsiders_feed_never_shows_another_team);
crate::both_backends!(by_backend: concurrent_writers_never_skip_or_repeat);

// ---------------------------------------------------------------------------------------------
// The live stream.

/// A Server-Sent Events client reading the raw stream.
struct Sse {
    res: reqwest::Response,
    buf: String,
}

#[derive(Debug)]
enum Block {
    Event { id: String, data: Value },
    Comment(String),
}

async fn open_stream(app: &TestApp, token: &str, last_event_id: Option<&str>) -> Result<Sse, u16> {
    let mut req =
        app.client.get(app.url("/api/v1/changes/stream")).bearer_auth(token).timeout(Duration::from_secs(120));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let res = req.send().await.unwrap();
    if res.status() != 200 {
        return Err(res.status().as_u16());
    }
    let media = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(media.starts_with("text/event-stream"), "{media}");
    Ok(Sse { res, buf: String::new() })
}

impl Sse {
    /// The next event or comment block (`retry:` lines are skipped), within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Block> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut data, mut comment) = (None, None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str::<Value>(v).unwrap());
                    } else if let Some(v) = line.strip_prefix(':') {
                        comment = Some(v.trim().to_string());
                    }
                }
                match (id, data, comment) {
                    (Some(id), Some(data), _) => return Some(Block::Event { id, data }),
                    (_, _, Some(c)) => return Some(Block::Comment(c)),
                    _ => continue,
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.res.chunk()).await.ok()?.ok()??;
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next `n` events (heartbeats skipped); panics when they do not come in time.
    async fn events(&mut self, n: usize) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.next(Duration::from_secs(20)).await {
                Some(Block::Event { id, data }) => out.push((id, data)),
                Some(Block::Comment(_)) => {}
                None => panic!("the stream ended or stalled after {} of {n} events: {out:?}", out.len()),
            }
        }
        out
    }
}

/// A stream, once a place is free (a closed stream's place is given back when the server
/// notices the close, at its next heartbeat).
async fn open_eventually(app: &TestApp, token: &str) -> Sse {
    for _ in 0..100 {
        match open_stream(app, token, None).await {
            Ok(s) => return s,
            Err(503) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(status) => panic!("stream refused with {status}"),
        }
    }
    panic!("no stream place came free");
}

const STREAM_SETTINGS: &[(&str, &str)] =
    &[("RENKEI_STREAM_HEARTBEAT_SECS", "1"), ("RENKEI_STREAM_POLL_MS", "100"), ("RENKEI_STREAMS_PER_USER", "2")];

/// A stream (on another instance, on PostgreSQL) brings every change committed anywhere; a
/// client that reconnects with `Last-Event-ID` gets exactly what it missed; idle streams send
/// heartbeats; streams per person are bounded; bad cursors and missing tokens are refused.
async fn stream_resumes_with_last_event_id(backend: Backend) {
    let writer = TestApp::spawn_with(backend, STREAM_SETTINGS).await;
    // SQLite is one process; PostgreSQL streams on one instance what another commits.
    let other;
    let reader: &TestApp = match backend {
        Backend::Postgres => {
            other = writer.another_instance(STREAM_SETTINGS).await;
            &other
        }
        Backend::Sqlite => &writer,
    };
    let t = team(&writer, "14134").await;
    let (_, start) = drain(&writer, &t.care_manager, None).await;
    let notes = format!("/api/v1/patients/{}/notes", t.patient_id);

    let mut live = open_stream(reader, &t.care_manager.token, Some(&start)).await.unwrap();
    for n in 0..3 {
        writer.post(&notes, &t.nurse.token, visit(&format!("接続中{n}"))).await.expect(201);
    }
    let first = live.events(3).await;
    assert!(first.iter().all(|(_, d)| d["kind"] == json!("note_added") && d["patient_id"] == json!(t.patient_id)));
    let last_id = first.last().unwrap().0.clone();
    assert_eq!(first.last().unwrap().1["cursor"], json!(last_id), "the event id is the item's cursor");
    drop(live);

    // Offline: four more notes, then a reconnect from the last event id.
    for n in 0..4 {
        writer.post(&notes, &t.nurse.token, visit(&format!("切断中{n}"))).await.expect(201);
    }
    let mut again = open_stream(reader, &t.care_manager.token, Some(&last_id)).await.unwrap();
    let missed = again.events(4).await;
    assert_eq!(missed.len(), 4);
    let ids: HashSet<&str> = first.iter().chain(missed.iter()).map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 7, "nothing twice");
    // The same as the feed gives from that cursor: nothing missed, nothing more.
    let (from_feed, _) = until(&writer, &t.care_manager, &last_id, |items| items.len() >= 4).await;
    assert_eq!(
        from_feed.iter().map(|i| i["cursor"].clone()).collect::<Vec<_>>(),
        missed.iter().map(|(id, _)| json!(id)).collect::<Vec<_>>()
    );
    // Idle: a heartbeat comment comes, and no event.
    match again.next(Duration::from_secs(5)).await {
        Some(Block::Comment(c)) => assert_eq!(c, "heartbeat"),
        other => panic!("expected a heartbeat, got {other:?}"),
    }

    // Two streams per person here: a third is 503, a problem document. (The first stream's
    // place comes back once the server notices it closed, at its next heartbeat.)
    let second = open_eventually(reader, &t.care_manager.token).await;
    let refused =
        reader.call("GET", "/api/v1/changes/stream", Some(&t.care_manager.token), None, &[]).await.expect(503);
    assert_eq!(refused.problem_type(), "/problems/unavailable");
    drop(second);
    drop(again);
    // Closed streams' places come back.
    let _a = open_eventually(reader, &t.care_manager.token).await;
    let _b = open_eventually(reader, &t.care_manager.token).await;

    let res = reader
        .call("GET", "/api/v1/changes/stream", Some(&t.nurse.token), None, &[("last-event-id", "bm9wZQ")])
        .await
        .expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("Last-Event-ID"));
    reader.call("GET", "/api/v1/changes/stream", None, None, &[]).await.expect(401);
}

crate::both_backends!(by_backend: stream_resumes_with_last_event_id);

// ---------------------------------------------------------------------------------------------
// An offline client.

/// What the app keeps of one patient: its notes' (id, version, text).
type Local = BTreeMap<String, BTreeSet<(String, i64, String)>>;

async fn notes_of(app: &TestApp, who: &Person, patient_id: &str) -> BTreeSet<(String, i64, String)> {
    let mut out = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/patients/{patient_id}/notes?limit=200");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path, &who.token).await.expect(200);
        for n in page.body["items"].as_array().unwrap() {
            out.insert((
                n["id"].as_str().unwrap().to_string(),
                n["version"].as_i64().unwrap(),
                n["text"].as_str().unwrap_or_default().to_string(),
            ));
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// Applies feed items the way the app does: refetch what they name, drop what a tombstone names.
async fn apply(app: &TestApp, who: &Person, local: &mut Local, items: &[Value]) {
    let mut touched: BTreeSet<String> = BTreeSet::new();
    for i in items {
        let pid = i["patient_id"].as_str().unwrap().to_string();
        if i["kind"] == json!("access_revoked") {
            local.remove(&pid);
            touched.remove(&pid);
        } else {
            touched.insert(pid);
        }
    }
    for pid in touched {
        let notes = notes_of(app, who, &pid).await;
        local.insert(pid, notes);
    }
}

/// A care manager's app syncs a caseload, goes offline while the team keeps writing, posts 20
/// notes on coming back (each sent twice with its Idempotency-Key, as after a lost answer),
/// syncs, and holds exactly what the server holds.
async fn offline_client_ends_with_the_servers_state(app: TestApp) {
    let t = team(&app, "14135").await;
    const PATIENTS: usize = 30;
    let mut patients = vec![t.patient_id.clone()];
    for n in 1..PATIENTS {
        let p = app
            .post(
                "/api/v1/patients",
                &t.care_manager.token,
                crate::patients::patient_body(&format!("患者{n}"), "カンジャ", "14135"),
            )
            .await
            .expect(201);
        patients.push(p.body["id"].as_str().unwrap().to_string());
    }
    // The first sync, in pages of 7.
    let mut local = Local::new();
    let mut snapshot = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/changes?limit=7&since={c}"),
            None => "/api/v1/changes?limit=7".into(),
        };
        let page = app.get(&path, &t.care_manager.token).await.expect(200);
        assert_eq!(page.body["snapshot"], json!(true));
        snapshot.extend(page.body["items"].as_array().unwrap().iter().cloned());
        cursor = Some(page.body["next_cursor"].as_str().unwrap().to_string());
        if page.body["more"] != json!(true) {
            break;
        }
    }
    let synced: BTreeSet<String> = snapshot.iter().map(|i| i["patient_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(synced, patients.iter().cloned().collect::<BTreeSet<_>>(), "the whole caseload, once each");
    assert_eq!(snapshot.len(), PATIENTS);
    apply(&app, &t.care_manager, &mut local, &snapshot).await;
    let mut cursor = cursor.unwrap();

    // Offline: the nurse writes and amends on the one shared patient.
    let posted = app
        .post(&format!("/api/v1/patients/{}/notes", t.patient_id), &t.nurse.token, visit("看護記録"))
        .await
        .expect(201);
    let nid = posted.body["id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/notes/{nid}/amendments"),
        &t.nurse.token,
        json!({"reason": "追記", "occurred_at": posted.body["occurred_at"], "text": "看護記録(追記)"}),
    )
    .await
    .expect(201);
    // Back online: 20 notes queued offline, each sent twice with its key.
    for n in 0..20 {
        let pid = &patients[n % PATIENTS];
        let key = format!("offline-{n}-{}", crate::helpers::short_id());
        let body = visit(&format!("オフライン記録{n}"));
        let path = format!("/api/v1/patients/{pid}/notes");
        let a = app
            .call("POST", &path, Some(&t.care_manager.token), Some(&body), &[("idempotency-key", &key)])
            .await
            .expect(201);
        let b = app.call("POST", &path, Some(&t.care_manager.token), Some(&body), &[("idempotency-key", &key)]).await;
        assert_eq!(a.body["id"], b.body["id"], "a retried post creates nothing new");
    }
    // Sync until the feed is quiet, then compare with what the server holds.
    let mut idle = 0;
    while idle < 3 {
        let (items, next) = drain(&app, &t.care_manager, Some(&cursor)).await;
        cursor = next;
        if items.is_empty() {
            idle += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else {
            idle = 0;
            apply(&app, &t.care_manager, &mut local, &items).await;
        }
    }
    let mut server = Local::new();
    for pid in &patients {
        server.insert(pid.clone(), notes_of(&app, &t.care_manager, pid).await);
    }
    assert_eq!(local, server, "the app holds exactly the server's state");
    let offline_notes: usize =
        server.values().map(|s| s.iter().filter(|(_, _, text)| text.starts_with("オフライン記録")).count()).sum();
    assert_eq!(offline_notes, 20, "each offline note once");
    assert!(server[&t.patient_id].iter().any(|(_, v, text)| *v == 2 && text == "看護記録(追記)"));
}

crate::both_backends!(offline_client_ends_with_the_servers_state);
