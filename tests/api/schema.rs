//! Schema rules: both backends reach the same schema (tables, columns, types, nullability,
//! indexes), every migration's down undoes its up, and only portable column types are used.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_migrations::MigrationHarness;
use renkei::db::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

/// table → (columns as "name type NULL|NOT NULL", indexes as "name UNIQUE? (cols)")
type Schema = BTreeMap<String, (Vec<String>, Vec<String>)>;

const PORTABLE: &[&str] = &["TEXT", "BOOLEAN", "TIMESTAMP", "DATE", "INTEGER", "BIGINT", "DOUBLE"];

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    not_null: i64,
    #[diesel(sql_type = BigInt)]
    pk: i64,
}

#[derive(QueryableByName)]
struct SqliteIndex {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    is_unique: i64,
    #[diesel(sql_type = Text)]
    origin: String,
}

fn sqlite_schema(conn: &mut SqliteConnection) -> Schema {
    let tables: Vec<Name> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '__diesel_schema_migrations' ORDER BY name",
    )
    .load(conn)
    .unwrap();
    let mut schema = Schema::new();
    for t in tables {
        let cols: Vec<SqliteColumn> = diesel::sql_query(format!(
            "SELECT name, upper(type) AS kind, \"notnull\" AS not_null, pk FROM pragma_table_info('{}') ORDER BY cid",
            t.name
        ))
        .load(conn)
        .unwrap();
        let columns = cols
            .iter()
            .map(|c| {
                let kind = if c.kind == "DOUBLE PRECISION" { "DOUBLE".to_string() } else { c.kind.clone() };
                let null = if c.not_null == 1 || c.pk > 0 { "NOT NULL" } else { "NULL" };
                format!("{} {kind} {null}", c.name)
            })
            .collect();
        let pk: Vec<String> = {
            let mut p: Vec<&SqliteColumn> = cols.iter().filter(|c| c.pk > 0).collect();
            p.sort_by_key(|c| c.pk);
            p.iter().map(|c| c.name.clone()).collect()
        };
        let idx: Vec<SqliteIndex> = diesel::sql_query(format!(
            "SELECT name, \"unique\" AS is_unique, origin FROM pragma_index_list('{}')",
            t.name
        ))
        .load(conn)
        .unwrap();
        let mut indexes = vec![format!("PRIMARY KEY ({})", pk.join(","))];
        for i in idx.iter().filter(|i| i.origin != "pk") {
            let cols: Vec<Name> =
                diesel::sql_query(format!("SELECT name FROM pragma_index_info('{}') ORDER BY seqno", i.name))
                    .load(conn)
                    .unwrap();
            let cols: Vec<String> = cols.into_iter().map(|c| c.name).collect();
            let unique = if i.is_unique == 1 { " UNIQUE" } else { "" };
            indexes.push(format!("{}{unique} ({})", i.name, cols.join(",")));
        }
        indexes.sort();
        schema.insert(t.name, (columns, indexes));
    }
    schema
}

#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    nullable: String,
}

#[derive(QueryableByName)]
struct PgIndex {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    is_unique: bool,
    #[diesel(sql_type = Bool)]
    is_primary: bool,
    #[diesel(sql_type = Text)]
    columns: String,
}

fn pg_schema(conn: &mut PgConnection) -> Schema {
    let tables: Vec<Name> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables WHERE table_schema = 'public' \
         AND table_type = 'BASE TABLE' AND table_name <> '__diesel_schema_migrations' ORDER BY table_name",
    )
    .load(conn)
    .unwrap();
    let mut schema = Schema::new();
    for t in tables {
        let cols: Vec<PgColumn> = diesel::sql_query(
            "SELECT column_name::text AS name, data_type::text AS kind, is_nullable::text AS nullable \
             FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind::<Text, _>(&t.name)
        .load(conn)
        .unwrap();
        let columns = cols
            .iter()
            .map(|c| {
                let kind = match c.kind.as_str() {
                    "text" => "TEXT",
                    "boolean" => "BOOLEAN",
                    "timestamp without time zone" => "TIMESTAMP",
                    "date" => "DATE",
                    "integer" => "INTEGER",
                    "bigint" => "BIGINT",
                    "double precision" => "DOUBLE",
                    other => panic!("{}.{} has a type SQLite lacks: {other}", t.name, c.name),
                };
                let null = if c.nullable == "YES" { "NULL" } else { "NOT NULL" };
                format!("{} {kind} {null}", c.name)
            })
            .collect();
        let idx: Vec<PgIndex> = diesel::sql_query(
            "SELECT i.relname::text AS name, ix.indisunique AS is_unique, ix.indisprimary AS is_primary, \
               array_to_string(array(SELECT a.attname FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord) \
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord), ',') AS columns \
             FROM pg_class t JOIN pg_index ix ON t.oid = ix.indrelid JOIN pg_class i ON i.oid = ix.indexrelid \
             WHERE t.relname = $1 AND t.relnamespace = 'public'::regnamespace",
        )
        .bind::<Text, _>(&t.name)
        .load(conn)
        .unwrap();
        let mut indexes: Vec<String> = idx
            .iter()
            .map(|i| {
                if i.is_primary {
                    format!("PRIMARY KEY ({})", i.columns)
                } else {
                    let unique = if i.is_unique { " UNIQUE" } else { "" };
                    format!("{}{unique} ({})", i.name, i.columns)
                }
            })
            .collect();
        indexes.sort();
        schema.insert(t.name, (columns, indexes));
    }
    schema
}

fn sqlite_conn() -> (tempfile::TempDir, SqliteConnection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = SqliteConnection::establish(&dir.path().join("s.db").display().to_string()).unwrap();
    (dir, conn)
}

#[test]
fn sqlite_migrations_down_undo_up_and_types_are_portable() {
    let (_dir, mut conn) = sqlite_conn();
    for _ in 0..migration_ids("sqlite").len() {
        let before = sqlite_schema(&mut conn);
        conn.run_next_migration(SQLITE_MIGRATIONS).unwrap();
        let after = sqlite_schema(&mut conn);
        assert_ne!(before, after, "a migration that changes nothing");
        conn.revert_last_migration(SQLITE_MIGRATIONS).unwrap();
        assert_eq!(sqlite_schema(&mut conn), before, "down did not undo up");
        conn.run_next_migration(SQLITE_MIGRATIONS).unwrap();
    }
    for (table, (columns, _)) in sqlite_schema(&mut conn) {
        for c in columns {
            let kind = c.split(' ').nth(1).unwrap();
            assert!(PORTABLE.contains(&kind), "{table}: {c} is not a portable type");
        }
    }
}

fn migration_ids(backend: &str) -> Vec<String> {
    let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn both_backends_have_the_same_migration_ids() {
    assert_eq!(migration_ids("sqlite"), migration_ids("postgres"));
}

#[test]
fn postgres_migrations_down_undo_up_and_match_sqlite() {
    let Some(cluster) = crate::helpers::postgres() else { return };
    let mut pg = PgConnection::establish(&cluster.empty_database()).unwrap();
    let (_dir, mut lite) = sqlite_conn();
    for _ in 0..migration_ids("postgres").len() {
        let before = pg_schema(&mut pg);
        pg.run_next_migration(POSTGRES_MIGRATIONS).unwrap();
        pg.revert_last_migration(POSTGRES_MIGRATIONS).unwrap();
        assert_eq!(pg_schema(&mut pg), before, "down did not undo up");
        pg.run_next_migration(POSTGRES_MIGRATIONS).unwrap();
        lite.run_next_migration(SQLITE_MIGRATIONS).unwrap();
        // After every step, not only at the end, both backends agree.
        assert_eq!(pg_schema(&mut pg), sqlite_schema(&mut lite), "PostgreSQL and SQLite schemas differ");
    }
}
