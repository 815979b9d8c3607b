//! The database: one code path over SQLite (embedded default) and PostgreSQL (production).
//!
//! The backend is chosen by the URL scheme alone, so a mistyped URL is refused instead of
//! silently creating an empty SQLite file. Every request does its work in one closure, in one
//! transaction (see [`Db::run`]): on PostgreSQL on a pooled connection; on SQLite on the one
//! writer, which commits many requests' work together (see [`writer`]). Reads that change
//! nothing but their audit trail run on read-only connections beside the writer and hand their
//! audit records to it ([`Db::read`]).

pub mod schema;
pub mod writer;

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use tokio::sync::Notify;

use crate::error::{AppError, AppResult};

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

/// What a SQLite connection is for; PostgreSQL connections are all alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Reads and writes (commands, migrations, tests, the writer).
    ReadWrite,
    /// Reads only (`query_only`): a write on it fails loudly instead of taking the write lock.
    ReadOnly,
}

/// Opens connections for the pool, per backend, with the per-connection settings each needs.
#[derive(Debug, Clone)]
pub struct DbManager {
    backend: Backend,
    url: String,
    role: Role,
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
        Ok(DbManager { backend, url, role: Role::ReadWrite })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn connect_now(&self) -> Result<DbConn, diesel::r2d2::Error> {
        self.connect()
    }

    fn read_only(&self) -> DbManager {
        DbManager { role: Role::ReadOnly, ..self.clone() }
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
                // WAL lets readers run beside the one writer; busy_timeout makes a connection
                // wait for another process's lock instead of failing at once (inside this
                // process writes never contend: they all go through the one writer).
                // synchronous = FULL: a commit is on disk before it is acknowledged, so an
                // acknowledged note survives a power cut; group commit pays for the fsync.
                let setup = match self.role {
                    Role::ReadWrite => {
                        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                         PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                    }
                    Role::ReadOnly => "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;",
                };
                conn.batch_execute(setup).map_err(diesel::r2d2::Error::QueryError)?;
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

thread_local! {
    /// Set by a transaction that appended to the change log; read when it ends, like
    /// [`OUTBOX_QUEUED`].
    static CHANGE_RECORDED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the running transaction as one that recorded a change: once it commits, this
/// instance's change streams look for it at once (see [`Db::change_signal`]). Called by the
/// change log alone.
pub fn wake_streams_after_commit() {
    CHANGE_RECORDED.with(|q| q.set(true));
}

/// A write a read needs, run later on the writer.
type Deferred = Box<dyn FnOnce(&mut DbConn) -> Result<(), AppError> + Send>;

thread_local! {
    /// While a thread runs a read on a read-only connection ([`Db::read`]), the writes the read
    /// needs (its audit records, its first-read receipts) are collected here instead of run.
    static DEFERRED: RefCell<Option<Vec<Deferred>>> = const { RefCell::new(None) };
}

/// Does a write that a read of patient data needs — its audit record, a first-read receipt —
/// on `conn` at once when `conn` can write; inside [`Db::read`] it is handed to the writer
/// instead, which commits it (with other requests' writes) before the read is answered.
pub fn write(
    conn: &mut DbConn,
    work: impl FnOnce(&mut DbConn) -> Result<(), AppError> + Send + 'static,
) -> Result<(), AppError> {
    let work = DEFERRED.with(|d| match d.borrow_mut().as_mut() {
        Some(later) => {
            later.push(Box::new(work));
            None
        }
        None => Some(work),
    });
    match work {
        Some(work) => work(conn),
        None => Ok(()),
    }
}

/// Collects deferred writes on this thread while alive; ends collecting even on a panic.
struct Deferring;

impl Deferring {
    fn start() -> Deferring {
        DEFERRED.with(|d| *d.borrow_mut() = Some(Vec::new()));
        Deferring
    }

    fn finish(self) -> Vec<Deferred> {
        DEFERRED.with(|d| d.borrow_mut().take()).unwrap_or_default()
    }
}

impl Drop for Deferring {
    fn drop(&mut self) {
        DEFERRED.with(|d| d.borrow_mut().take());
    }
}

/// The shared handle every handler uses.
#[derive(Clone)]
pub struct Db {
    /// PostgreSQL: the pool every request uses. SQLite: read-write connections for commands,
    /// migrations and tests ([`Db::get`]); requests use the writer and the readers.
    pool: Pool<DbManager>,
    /// Connections for [`Db::read`]: on SQLite read-only ones, on PostgreSQL the same pool.
    readers: Pool<DbManager>,
    /// SQLite only: the one writer every request's write work goes through.
    writer: Option<Arc<writer::Writer>>,
    backend: Backend,
    /// Notified after every committed transaction that queued e-mail.
    outbox: Arc<Notify>,
    /// Bumped after every committed transaction that recorded a change.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Db {
    /// Builds the pool without touching the database: the service starts and answers 503 until
    /// the database is reachable, then recovers by itself.
    pub fn new(url: &str, size: u32, timeout: Duration) -> Result<Db, String> {
        let manager = DbManager::new(url)?;
        let backend = manager.backend();
        let outbox = Arc::new(Notify::new());
        let changes = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let build = |manager: DbManager, size: u32| {
            Pool::builder()
                .max_size(size)
                .min_idle(Some(0))
                .connection_timeout(timeout)
                .test_on_check_out(true)
                .build_unchecked(manager)
        };
        let (pool, readers, writer) = match backend {
            Backend::Postgres => {
                let pool = build(manager, size);
                (pool.clone(), pool, None)
            }
            Backend::Sqlite => {
                let readers = build(manager.read_only(), size);
                let writer = writer::Writer::start(manager.clone(), outbox.clone(), changes.clone())?;
                (build(manager, size.min(4)), readers, Some(Arc::new(writer)))
            }
        };
        Ok(Db { pool, readers, writer, backend, outbox, changes })
    }

    /// What the SQLite writer has done so far (none on PostgreSQL).
    pub fn writer_stats(&self) -> Option<Arc<writer::Stats>> {
        self.writer.as_ref().map(|w| w.stats.clone())
    }

    /// What the outbox worker waits on. A notice with no worker waiting is kept, so none is lost.
    pub fn outbox_signal(&self) -> Arc<Notify> {
        self.outbox.clone()
    }

    /// What change streams wait on: a count bumped by every commit of this instance that
    /// recorded a change (other instances' commits are found by polling).
    pub fn change_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
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

    /// Runs `f` in one transaction: the single database hop of a request that writes.
    ///
    /// The work is kept when `f` succeeds, and also when it fails with an error that
    /// [`AppError::keeps_changes`] — a refused request whose audit record must still be kept.
    /// The answer comes back only once the work is committed.
    ///
    /// On PostgreSQL `f` runs on a pooled connection on the blocking pool, in a transaction of
    /// its own. On SQLite it runs on the one writer, in a savepoint of the writer's current
    /// batch, which commits with the other requests queued beside it (see [`writer`]).
    pub async fn run<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        if let Some(writer) = &self.writer {
            return writer.run(f).await;
        }
        let db = self.clone();
        actix_web::web::block(move || {
            let mut pooled = db.get()?;
            let conn: &mut DbConn = &mut pooled;
            db.transaction(conn, f)
        })
        .await
        .map_err(|e| AppError::internal(format!("blocking task failed: {e}")))?
    }

    /// Runs `f`, which reads and writes nothing but what [`write`] is given (audit records,
    /// first-read receipts), in one read transaction: the hop of a read of patient data.
    ///
    /// On SQLite `f` runs on a read-only connection beside the writer — readers never wait for
    /// it — and the writes it needed are then handed to the writer; the answer comes back only
    /// after the batch commit that holds them (an error that does not keep changes drops them).
    /// On PostgreSQL this is [`Db::run`]: the audit records are written in the read's own
    /// transaction.
    pub async fn read<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        if self.writer.is_none() {
            return self.run(f).await;
        }
        let db = self.clone();
        let (result, deferred) = actix_web::web::block(move || -> Result<_, AppError> {
            let mut pooled = db.readers.get().map_err(|e| {
                tracing::warn!(error = %e, "database unavailable");
                AppError::unavailable()
            })?;
            let conn: &mut DbConn = &mut pooled;
            let deferring = Deferring::start();
            let result = read_transaction(conn, f);
            Ok((result, deferring.finish()))
        })
        .await
        .map_err(|e| AppError::internal(format!("blocking task failed: {e}")))??;
        let keep = result.as_ref().map_or_else(AppError::keeps_changes, |_| true);
        if keep && !deferred.is_empty() {
            self.run(move |conn| deferred.into_iter().try_for_each(|work| work(conn))).await?;
        }
        result
    }

    /// Runs `f` inside one transaction on an already checked-out connection (see [`Db::run`]),
    /// and wakes the outbox worker when it committed e-mail.
    pub fn transaction<T>(
        &self,
        conn: &mut DbConn,
        f: impl FnOnce(&mut DbConn) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        OUTBOX_QUEUED.with(|q| q.set(false));
        CHANGE_RECORDED.with(|q| q.set(false));
        let result = in_transaction(conn, f);
        let queued = OUTBOX_QUEUED.with(|q| q.replace(false));
        let changed = CHANGE_RECORDED.with(|q| q.replace(false));
        let kept = result.as_ref().map_or_else(AppError::keeps_changes, |_| true);
        if queued && kept {
            self.outbox.notify_one();
        }
        if changed && kept {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        result
    }

    /// Pool state for readiness and metrics (on SQLite: the readers).
    pub fn pool_state(&self) -> (u32, u32) {
        let s = self.readers.state();
        (s.connections, s.idle_connections)
    }
}

/// Runs `f` in one read transaction (one snapshot of the database); it is never committed with
/// changes, since the connection cannot write.
fn read_transaction<T>(conn: &mut DbConn, f: impl FnOnce(&mut DbConn) -> Result<T, AppError>) -> Result<T, AppError> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction(c)?,
        DbConn::Postgres(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    let result = f(conn);
    let ended = match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::rollback_transaction(c),
        DbConn::Postgres(c) => AnsiTransactionManager::rollback_transaction(c),
    };
    ended?;
    result
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
/// A patient's lock for one projection, held until the transaction ends (PostgreSQL; SQLite's
/// one writer already orders writes). Two transactions recomputing the same patient's row would
/// otherwise both delete and insert it, and the second fail on the key or store a count that
/// missed the first's work.
pub fn projection_lock(conn: &mut DbConn, projection: &str, patient_id: &str) -> AppResult<()> {
    if let DbConn::Postgres(c) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind::<diesel::sql_types::Text, _>(format!("{projection}:{patient_id}"))
            .execute(c)?;
    }
    Ok(())
}

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
