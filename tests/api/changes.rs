//! The change feed (`GET /changes`) and its live stream: a first sync's snapshot, changes in
//! commit order that are never skipped or repeated (several writers, several instances), the
//! tombstone of a patient one stops following, an outsider's feed, a resumed stream, and an
//! offline client that ends with exactly the server's state.

use std::collections::HashSet;
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
async fn drain(app: &TestApp, who: &Person, since: Option<&str>) -> (Vec<Value>, String) {
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
async fn until(app: &TestApp, who: &Person, since: &str, done: impl Fn(&[Value]) -> bool) -> (Vec<Value>, String) {
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
            while seen.len() < WRITERS * NOTES {
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
    assert_eq!(notes.len(), WRITERS * NOTES, "every note exactly once");
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
