//! SQLite's one writer: every request's write work, in commit order, on one connection.
//!
//! SQLite lets one connection write at a time. Sixteen pooled connections taking turns at that
//! lock spend their time asleep in SQLite's busy handler, so on SQLite the process serialises
//! its writers itself: requests put their work on a queue, and one thread with one connection
//! takes whatever is queued (up to [`MAX_BATCH`]), runs each request's work back to back inside
//! one transaction — each in a savepoint of its own — and commits the batch (group commit). One
//! `fsync` then makes many requests durable (`synchronous = FULL`), and no request ever waits in
//! the busy handler.
//!
//! - A request whose work fails (or panics) rolls back to its savepoint: only its own work is
//!   undone, and the others of the batch commit. A refusal that keeps its audit record
//!   ([`AppError::keeps_changes`]) releases its savepoint like a success.
//! - A request is answered only after the COMMIT that holds its work; when that COMMIT fails,
//!   every request of the batch gets the error, and none of their work is kept.
//! - diesel's own transactions inside a request's work still work: the batch is diesel's
//!   transaction at depth 1, the request's savepoint depth 2, and `conn.transaction` inside it
//!   nests one more savepoint (diesel's `AnsiTransactionManager` names them by depth).

use std::num::NonZeroU32;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::ManageConnection;
use diesel::SqliteConnection;
use tokio::sync::{mpsc, oneshot, Notify};

use super::{DbConn, DbManager, CHANGE_RECORDED, OUTBOX_QUEUED};
use crate::error::AppError;

/// The most requests one batch holds: enough to share one commit among a busy second's worth
/// of requests, few enough that a batch stays short for the requests queued behind it.
pub const MAX_BATCH: usize = 128;
/// Requests that may wait in the queue; a full queue makes further requests wait to enqueue.
const QUEUE: usize = 4096;

/// Called once the batch holding the request's work has ended: `None` when it committed, the
/// error every request of the batch answers otherwise.
type Reply = Box<dyn FnOnce(Option<AppError>) + Send>;
/// A request's work on the writer's connection: whether to keep what it did, and how to answer.
type Work = Box<dyn FnOnce(&mut DbConn) -> (bool, Reply) + Send>;

/// Counts of what the writer has done, for metrics and tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Batches committed.
    pub batches: AtomicU64,
    /// Requests whose work those batches committed.
    pub committed: AtomicU64,
    /// Requests rolled back to their savepoint (their work failed).
    pub rolled_back: AtomicU64,
    /// Batches whose COMMIT (or savepoint handling) failed.
    pub failed_batches: AtomicU64,
}

/// The writer's counts at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub batches: u64,
    pub committed: u64,
    pub rolled_back: u64,
    pub failed_batches: u64,
}

impl Stats {
    pub fn counts(&self) -> Counts {
        Counts {
            batches: self.batches.load(Ordering::Relaxed),
            committed: self.committed.load(Ordering::Relaxed),
            rolled_back: self.rolled_back.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
        }
    }
}

/// The handle requests use to reach the writer thread.
pub struct Writer {
    queue: mpsc::Sender<Work>,
    pub stats: Arc<Stats>,
}

impl Writer {
    /// Starts the writer thread. Its connection is opened at the first batch (and again after
    /// a failure), so the service starts without the database and recovers by itself.
    pub fn start(manager: DbManager, outbox: Arc<Notify>, changes: Arc<Changes>) -> Result<Writer, String> {
        let (queue, jobs) = mpsc::channel::<Work>(QUEUE);
        let stats = Arc::new(Stats::default());
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(manager, jobs, &Signals { outbox, changes }, &thread_stats))
            .map_err(|e| format!("cannot start the SQLite writer: {e}"))?;
        Ok(Writer { queue, stats })
    }

    /// Runs `f` on the writer inside the next batch and answers once that batch has committed.
    pub async fn run<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<Result<T, AppError>>();
        let work: Work = Box::new(move |conn: &mut DbConn| {
            let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(AppError::internal("a request's database work panicked")));
            let keep = result.as_ref().map_or_else(AppError::keeps_changes, |_| true);
            let reply: Reply = Box::new(move |failed: Option<AppError>| {
                let _ = answer.send(match failed {
                    None => result,
                    Some(e) => Err(e),
                });
            });
            (keep, reply)
        });
        if self.queue.send(work).await.is_err() {
            tracing::error!("the SQLite writer has stopped");
            return Err(AppError::unavailable());
        }
        // A request dropped unanswered was never run (the database could not be opened, or its
        // batch was lost before reaching it): nothing of it was kept.
        answered.await.map_err(|_| AppError::unavailable())?
    }
}

/// What a committed batch wakes: the outbox worker (it queued e-mail) and the change streams (it
/// recorded a change).
struct Signals {
    outbox: Arc<Notify>,
    changes: Arc<Changes>,
}

/// The count change streams watch (`Db::change_signal`).
pub type Changes = tokio::sync::watch::Sender<u64>;

fn writer_loop(manager: DbManager, mut jobs: mpsc::Receiver<Work>, signals: &Signals, stats: &Stats) {
    let mut conn: Option<DbConn> = None;
    let mut batch: Vec<Work> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(work) => batch.push(work),
                Err(_) => break,
            }
        }
        if conn.is_none() {
            match manager.connect() {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "database unavailable");
                    // Not run: dropping a request's work answers it 503 at once.
                    batch.clear();
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let healthy = catch_unwind(AssertUnwindSafe(|| run_batch(c, &mut batch, signals, stats))).unwrap_or(false);
        batch.clear();
        if !healthy {
            // A connection left in an unknown transaction state is not used again.
            conn = None;
        }
    }
}

/// Runs one batch; false when the connection should be replaced.
fn run_batch(conn: &mut DbConn, batch: &mut Vec<Work>, signals: &Signals, stats: &Stats) -> bool {
    let DbConn::Sqlite(sqlite) = conn else { return false };
    if let Err(e) = AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE") {
        let e = AppError::from(e);
        tracing::warn!(error = %e, "cannot begin a write batch");
        // Not run: dropping a request's work answers it 503 at once.
        batch.clear();
        return false;
    }
    let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
    let mut wake_outbox = false;
    let mut wake_streams = false;
    let mut broken: Option<AppError> = None;
    for work in batch.drain(..) {
        if broken.is_some() {
            // Not run: the batch is lost; answered below with its error.
            drop(work);
            continue;
        }
        if let Err(e) = begin(conn) {
            broken = Some(e);
            drop(work);
            continue;
        }
        OUTBOX_QUEUED.with(|q| q.set(false));
        CHANGE_RECORDED.with(|q| q.set(false));
        let (keep, reply) = work(conn);
        let queued = OUTBOX_QUEUED.with(|q| q.replace(false));
        let changed = CHANGE_RECORDED.with(|q| q.replace(false));
        let ended = if keep { release(conn) } else { roll_back(conn) };
        match ended {
            Ok(true) => {
                wake_outbox |= queued;
                wake_streams |= changed;
                replies.push(reply);
            }
            Ok(false) => {
                stats.rolled_back.fetch_add(1, Ordering::Relaxed);
                // Nothing of it is kept, so there is nothing to wait for.
                reply(None);
            }
            Err(e) => {
                broken = Some(e);
                replies.push(reply);
            }
        }
    }
    let committed = match broken {
        Some(e) => {
            let _ = roll_back_to_depth(conn, 0);
            Err(e)
        }
        None => match conn {
            DbConn::Sqlite(c) => AnsiTransactionManager::commit_transaction(c).map_err(AppError::from),
            DbConn::Postgres(_) => Err(AppError::internal("the writer holds a SQLite connection")),
        },
    };
    match committed {
        Ok(()) => {
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats.committed.fetch_add(replies.len() as u64, Ordering::Relaxed);
            for reply in replies {
                reply(None);
            }
            if wake_outbox {
                signals.outbox.notify_one();
            }
            if wake_streams {
                signals.changes.send_modify(|n| *n = n.wrapping_add(1));
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, requests = replies.len(), "a write batch failed; none of its work is kept");
            stats.failed_batches.fetch_add(1, Ordering::Relaxed);
            for reply in replies {
                reply(Some(batch_error(&e)));
            }
            let _ = roll_back_to_depth(conn, 0);
            depth(conn) == Some(0)
        }
    }
}

/// What each request of a failed batch answers: the service could not keep its work.
fn batch_error(e: &AppError) -> AppError {
    if e.status() == actix_web::http::StatusCode::SERVICE_UNAVAILABLE {
        AppError::unavailable()
    } else {
        AppError::internal(format!("write batch failed: {e}"))
    }
}

fn sqlite(conn: &mut DbConn) -> Result<&mut SqliteConnection, AppError> {
    match conn {
        DbConn::Sqlite(c) => Ok(c),
        DbConn::Postgres(_) => Err(AppError::internal("the writer holds a SQLite connection")),
    }
}

/// The transaction depth diesel tracks on the connection (0 outside a transaction).
fn depth(conn: &mut DbConn) -> Option<u32> {
    let c = sqlite(conn).ok()?;
    AnsiTransactionManager::transaction_manager_status_mut(c)
        .transaction_depth()
        .ok()
        .map(|d| d.map_or(0, NonZeroU32::get))
}

/// Opens the request's savepoint (depth 2).
fn begin(conn: &mut DbConn) -> Result<(), AppError> {
    let c = sqlite(conn)?;
    AnsiTransactionManager::begin_transaction(c)?;
    Ok(())
}

/// Keeps the request's work: releases its savepoint. A request that left nested transactions
/// open (impossible through diesel's closure API) is rolled back instead. `Ok(true)` when kept.
fn release(conn: &mut DbConn) -> Result<bool, AppError> {
    if depth(conn) != Some(2) {
        return roll_back(conn);
    }
    AnsiTransactionManager::commit_transaction(sqlite(conn)?)?;
    Ok(true)
}

/// Undoes the request's work back to its savepoint, whatever nesting its work left open (a
/// panic inside `conn.transaction`), and removes the savepoint. `Ok(false)`: nothing kept.
fn roll_back(conn: &mut DbConn) -> Result<bool, AppError> {
    roll_back_to_depth(conn, 1)?;
    // diesel's ROLLBACK TO leaves the savepoint on SQLite's stack; release it so a batch of
    // many failures does not pile them up.
    sqlite(conn)?.batch_execute("RELEASE SAVEPOINT diesel_savepoint_1")?;
    Ok(false)
}

fn roll_back_to_depth(conn: &mut DbConn, target: u32) -> Result<(), AppError> {
    loop {
        match depth(conn) {
            Some(d) if d > target => AnsiTransactionManager::rollback_transaction(sqlite(conn)?)?,
            Some(_) => return Ok(()),
            None => return Err(AppError::internal("the writer's transaction state is broken")),
        }
    }
}
