//! Upgrades lose nothing: a database at an earlier release's schema, holding a team's record,
//! is brought up to date in place by the migrations, on both backends; the record is all there,
//! the audit chain still verifies, the projections new since are filled from what was there,
//! and the service goes on answering from it.

use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use renkei::db::{DbConn, DbManager, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
use serde_json::json;

use crate::helpers::TestApp;
use crate::patients::team;

/// The last migration of the release this test starts from (the release of 2026-12-05, whose
/// attachments came last); every migration after it runs on the filled database.
const RELEASED_UP_TO: &str = "20261205000400";

/// Rows of the tables every release since has kept.
fn counts(conn: &mut DbConn) -> Vec<(&'static str, i64)> {
    use renkei::db::schema::{
        audit_events, care_team_members, consents, note_reads, note_versions, notes, patients, sessions, users,
    };
    vec![
        ("users", users::table.count().get_result(conn).unwrap()),
        ("sessions", sessions::table.count().get_result(conn).unwrap()),
        ("patients", patients::table.count().get_result(conn).unwrap()),
        ("care_team_members", care_team_members::table.count().get_result(conn).unwrap()),
        ("consents", consents::table.count().get_result(conn).unwrap()),
        ("notes", notes::table.count().get_result(conn).unwrap()),
        ("note_versions", note_versions::table.count().get_result(conn).unwrap()),
        ("note_reads", note_reads::table.count().get_result(conn).unwrap()),
        ("audit_events", audit_events::table.count().get_result(conn).unwrap()),
    ]
}

/// Reverts every migration after `RELEASED_UP_TO`: the schema that release shipped.
fn back_to_release(conn: &mut DbConn) -> Vec<String> {
    let mut reverted = Vec::new();
    loop {
        let last = match conn {
            DbConn::Sqlite(c) => c.applied_migrations().unwrap()[0].to_string(),
            DbConn::Postgres(c) => c.applied_migrations().unwrap()[0].to_string(),
        };
        if last.as_str() <= RELEASED_UP_TO {
            return reverted;
        }
        match conn {
            DbConn::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS).unwrap(),
            DbConn::Postgres(c) => c.revert_last_migration(POSTGRES_MIGRATIONS).unwrap(),
        };
        reverted.push(last);
    }
}

async fn a_filled_database_of_an_earlier_release_upgrades_in_place(app: TestApp) {
    let t = team(&app, "14135").await;
    app.post(
        &format!("/api/v1/patients/{}/consents", t.patient_id),
        &t.care_manager.token,
        json!({"scope": "care_team", "obtained_from": "patient", "obtained_on": "2026-04-01"}),
    )
    .await
    .expect(201);
    let mut notes = Vec::new();
    for text in ["褥瘡の処置をしました。", "ｶﾀｶﾅ と　全角スペース", "血圧 128/76"] {
        let r = app
            .post(
                &format!("/api/v1/patients/{}/notes", t.patient_id),
                &t.nurse.token,
                json!({"kind": "visit", "occurred_at": chrono::Utc::now().to_rfc3339(), "text": text}),
            )
            .await
            .expect(201);
        notes.push(r.body["id"].as_str().unwrap().to_string());
    }
    app.get(&format!("/api/v1/notes/{}", notes[0]), &t.care_manager.token).await.expect(200);

    let manager = DbManager::new(&app.database_url).unwrap();
    let mut conn = manager.connect_now().unwrap();
    let reverted = back_to_release(&mut conn);
    assert!(!reverted.is_empty(), "there are migrations after the release to run");
    let before = counts(&mut conn);

    let applied = renkei::db::migrate(&mut conn).unwrap();
    assert_eq!(applied.len(), reverted.len(), "every later migration ran: {applied:?}");
    assert_eq!(counts(&mut conn), before, "the upgrade kept every row");
    if let DbConn::Sqlite(c) = &mut conn {
        // The accounts table was rebuilt in place (an account may now have no organisation):
        // every reference to it still holds, and enforcement is back on.
        #[derive(QueryableByName)]
        struct Violation {
            #[diesel(sql_type = diesel::sql_types::Text)]
            table: String,
        }
        let broken: Vec<Violation> = diesel::sql_query("PRAGMA foreign_key_check").load(c).unwrap();
        assert!(broken.is_empty(), "dangling references: {:?}", broken.iter().map(|v| &v.table).collect::<Vec<_>>());
    }
    let report = renkei::audit::verify(&mut conn).unwrap();
    assert!(report.broken.is_none(), "the audit chain verifies after the upgrade: {:?}", report.broken);
    assert!(report.events > 0);
    // What the care manager had not read is counted from the notes and receipts already there.
    let cm = t.care_manager.id.clone();
    let unread = renkei::notes::unread::stored_counts(&mut conn, &cm).unwrap();
    assert_eq!(unread, vec![(t.patient_id.clone(), 2)]);
    assert_eq!(unread, renkei::notes::unread::live_counts(&mut conn, &cm).unwrap());
    drop(conn);

    // The service answers from the upgraded database: the record reads back exactly.
    let read = app.get(&format!("/api/v1/notes/{}", notes[1]), &t.care_manager.token).await.expect(200);
    assert_eq!(read.body["text"], json!("ｶﾀｶﾅ と　全角スペース"));
    let mine = app.get("/api/v1/me/unread", &t.care_manager.token).await.expect(200);
    assert_eq!(mine.body["total_unread"], json!(1));
    // Signing in still works on the rebuilt accounts table, and its sessions are still open.
    app.login(&t.nurse.email, crate::helpers::PASSWORD, None).await.expect(200);
    app.get("/api/v1/me", &t.nurse.token).await.expect(200);
    // An address in use is still refused for a new account (the table's unique index came back).
    let taken = app
        .post(
            &format!("/api/v1/organizations/{}/users", t.nurse_station),
            &t.admin.token,
            json!({"email": t.nurse.email, "name": "別人", "profession": "nurse", "password": crate::helpers::PASSWORD}),
        )
        .await;
    assert_eq!(taken.status, 422, "{}", taken.text);
    app.post(
        &format!("/api/v1/patients/{}/notes", t.patient_id),
        &t.nurse.token,
        json!({"kind": "visit", "occurred_at": chrono::Utc::now().to_rfc3339(), "text": "更新後の記録"}),
    )
    .await
    .expect(201);
}

crate::both_backends!(a_filled_database_of_an_earlier_release_upgrades_in_place);
