//! The database: one code path over SQLite (embedded default) and PostgreSQL (production).
//!
//! The backend is chosen by the URL scheme alone, so a mistyped URL is refused instead of
//! silently creating an empty SQLite file. Every request does its work in one closure on the
//! blocking pool: check out a connection, open a transaction, run, commit (see [`Db::run`]).

pub mod schema;

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use tokio::sync::Notify;

use crate::error::AppError;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// One connection to whichever backend is configured.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Backend, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() || path.contains(":memory:") || path.starts_with("file:") {
                return Err("a SQLite URL names a database file, e.g. sqlite://./data/renkei.db".into());
            }
            Ok(Backend::Sqlite)
        } else {
            Err("must start with sqlite:// (a file) or postgres:// (a server)".into())
        }
    }
}

/// Opens connections for the pool, per backend, with the per-connection settings each needs.
#[derive(Debug, Clone)]
pub struct DbManager {
    backend: Backend,
    url: String,
}

impl DbManager {
    pub fn new(url: &str) -> Result<DbManager, String> {
        let backend = Backend::from_url(url)?;
        let url = match backend {
            // Fail fast when the server is unreachable instead of waiting for the OS timeout.
            Backend::Postgres if !url.contains("connect_timeout") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}connect_timeout=2")
            }
            Backend::Postgres => url.to_string(),
            Backend::Sqlite => url.trim_start_matches("sqlite://").to_string(),
        };
        Ok(DbManager { backend, url })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn connect_now(&self) -> Result<DbConn, diesel::r2d2::Error> {
        self.connect()
    }
}

impl ManageConnection for DbManager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        match self.backend {
            Backend::Postgres => {
                let conn = PgConnection::establish(&self.url).map_err(diesel::r2d2::Error::ConnectionError)?;
                Ok(DbConn::Postgres(conn))
            }
            Backend::Sqlite => {
                let path = std::path::Path::new(&self.url);
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    if !parent.is_dir() {
                        return Err(diesel::r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(
                            format!("the folder {} does not exist", parent.display()),
                        )));
                    }
                }
                let mut conn = SqliteConnection::establish(&self.url).map_err(diesel::r2d2::Error::ConnectionError)?;
                // WAL lets readers run beside the one writer; busy_timeout makes a writer wait
                // for the lock instead of failing at once.
                conn.batch_execute(
                    "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                     PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1").map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        std::thread::panicking()
    }
}

thread_local! {
    /// Set by a transaction that queued e-mail; read when it ends. A request's work runs on one
    /// blocking thread from begin to commit, so the flag belongs to exactly one transaction.
    static OUTBOX_QUEUED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the running transaction as one that queued e-mail: once it commits, this instance's
/// outbox worker is woken (see [`Db::outbox_signal`]). Called by the outbox alone.
pub fn wake_outbox_after_commit() {
    OUTBOX_QUEUED.with(|q| q.set(true));
}

/// The shared handle every handler uses.
#[derive(Clone)]
pub struct Db {
    pool: Pool<DbManager>,
    backend: Backend,
    /// Notified after every committed transaction that queued e-mail.
    outbox: Arc<Notify>,
}

impl Db {
    /// Builds the pool without touching the database: the service starts and answers 503 until
    /// the database is reachable, then recovers by itself.
    pub fn new(url: &str, size: u32, timeout: Duration) -> Result<Db, String> {
        let manager = DbManager::new(url)?;
        let backend = manager.backend();
        let pool = Pool::builder()
            .max_size(size)
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .test_on_check_out(true)
            .build_unchecked(manager);
        Ok(Db { pool, backend, outbox: Arc::new(Notify::new()) })
    }

    /// What the outbox worker waits on. A notice with no worker waiting is kept, so none is lost.
    pub fn outbox_signal(&self) -> Arc<Notify> {
        self.outbox.clone()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks out a connection directly (CLI commands, tests).
    pub fn get(&self) -> Result<PooledConnection<DbManager>, AppError> {
        self.pool.get().map_err(|e| {
            tracing::warn!(error = %e, "database unavailable");
            AppError::unavailable()
        })
    }

    /// Runs `f` in one transaction on the blocking pool: the single database hop of a request.
    ///
    /// The transaction commits when `f` succeeds, and also when it fails with an error that
    /// [`AppError::keeps_changes`] — a refused request whose audit record must still be kept.
    /// SQLite transactions start `IMMEDIATE`: every request writes (at least its audit record),
    /// and taking the write lock up front avoids read-then-write upgrade failures.
    pub async fn run<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.clone();
        actix_web::web::block(move || {
            let mut pooled = db.get()?;
            let conn: &mut DbConn = &mut pooled;
            db.transaction(conn, f)
        })
        .await
        .map_err(|e| AppError::internal(format!("blocking task failed: {e}")))?
    }

    /// Runs `f` inside one transaction on an already checked-out connection (see [`Db::run`]),
    /// and wakes the outbox worker when it committed e-mail.
    pub fn transaction<T>(
        &self,
        conn: &mut DbConn,
        f: impl FnOnce(&mut DbConn) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        OUTBOX_QUEUED.with(|q| q.set(false));
        let result = in_transaction(conn, f);
        let queued = OUTBOX_QUEUED.with(|q| q.replace(false));
        if queued && result.as_ref().map_or_else(AppError::keeps_changes, |_| true) {
            self.outbox.notify_one();
        }
        result
    }

    /// Pool state for readiness and metrics.
    pub fn pool_state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.connections, s.idle_connections)
    }
}

/// Runs `f` inside one transaction: commits when it succeeds or fails with an error that keeps
/// its changes, rolls back otherwise.
fn in_transaction<T>(conn: &mut DbConn, f: impl FnOnce(&mut DbConn) -> Result<T, AppError>) -> Result<T, AppError> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?,
        DbConn::Postgres(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    let result = f(conn);
    let keep = match &result {
        Ok(_) => true,
        Err(e) => e.keeps_changes(),
    };
    let ended = match (conn, keep) {
        (DbConn::Sqlite(c), true) => AnsiTransactionManager::commit_transaction(c),
        (DbConn::Postgres(c), true) => AnsiTransactionManager::commit_transaction(c),
        (DbConn::Sqlite(c), false) => AnsiTransactionManager::rollback_transaction(c),
        (DbConn::Postgres(c), false) => AnsiTransactionManager::rollback_transaction(c),
    };
    ended?;
    result
}

/// Applies every pending migration of the connection's backend.
pub fn migrate(conn: &mut DbConn) -> Result<Vec<String>, String> {
    let applied = match conn {
        DbConn::Sqlite(c) => {
            c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.iter().map(|m| m.to_string()).collect())
        }
        DbConn::Postgres(c) => {
            c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.iter().map(|m| m.to_string()).collect())
        }
    };
    applied.map_err(|e| format!("migration failed: {e}"))
}

/// True when the database has no migration left to apply.
pub fn migrations_current(conn: &mut DbConn) -> Result<bool, String> {
    let pending = match conn {
        DbConn::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
        DbConn::Postgres(c) => c.has_pending_migration(POSTGRES_MIGRATIONS),
    };
    pending.map(|p| !p).map_err(|e| e.to_string())
}

/// Now, in UTC, truncated to microseconds: PostgreSQL keeps microseconds and SQLite would keep
/// nanoseconds, so both backends must be given the same value.
pub fn now() -> chrono::NaiveDateTime {
    truncate(chrono::Utc::now().naive_utc())
}

pub fn truncate(t: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    use chrono::{SubsecRound, Timelike};
    let t = t.trunc_subsecs(6);
    t.with_nanosecond(t.nanosecond() / 1000 * 1000).unwrap_or(t)
}

/// A new identifier: UUIDv7 text, time-ordered so indexes stay append-friendly on both backends.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

diesel::define_sql_function! {
    /// SQL `lower(text)`, the same on both backends.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Runs the same diesel expression on whichever backend the connection is, for the few
/// statements the multi-backend connection cannot express (e.g. `ON CONFLICT DO NOTHING`).
#[macro_export]
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Postgres($c) => $body,
        }
    };
}
