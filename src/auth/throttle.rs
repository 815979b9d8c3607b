//! Throttling of password and code guesses, in one table of counters (`login_throttle`), each
//! row keyed by a hash of what it counts:
//!
//! - an e-mail address, known or not, so that a locked account answers exactly as an unknown
//!   address does. After three failures the address is locked for a minute, doubling with each
//!   further lockout up to fifteen minutes;
//! - an account on a client it has signed in from before ([`account_on_client_key`]): the
//!   owner's own device is counted apart, so a stranger's failures cannot lock the owner out
//!   (see [`sign_in_key`]);
//! - one client across all addresses, and all unknown clients together: budgets against
//!   password spraying (many addresses tried with a few common passwords each).
//!
//! Every attempt is *reserved* before the slow password comparison: in one transaction the
//! address's (or account-on-client's) row is created if missing (an upsert), locked (`SELECT …
//! FOR UPDATE` on PostgreSQL; SQLite transactions already hold the database's one write lock),
//! checked together with the budgets, and the attempt counted as a failure. Only then is the
//! password compared, outside any transaction; a success starts the count again ([`refund`])
//! but never lifts a lock other attempts set. So of any number of concurrent attempts at most `max_failures` are ever
//! compared before the lock, and a lock is only ever lengthened. The budgets are charged by
//! confirmed failures only ([`record_failure`]): counting the attempts in flight there would let
//! a crowd of people signing in at once from one office lock that office out.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::auth::tokens::sha256_hex;
use crate::db::schema::login_throttle;
use crate::db::{now, DbConn};
use crate::error::AppResult;

/// How one kind of counter locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Failures within the window that lock.
    pub max_failures: i32,
    pub first_lock_secs: i64,
    /// Each further lockout doubles the lock, up to this.
    pub max_lock_secs: i64,
}

/// Failed attempts allowed per address (or per account on a known client) before a lock.
pub const MAX_FAILURES: i32 = 3;

/// The rule of an address, or of an account on a client it has used before.
pub const ACCOUNT: Rule = Rule { max_failures: MAX_FAILURES, first_lock_secs: 60, max_lock_secs: 15 * 60 };

/// The budget of one client (all addresses it tries) or of all unknown clients together.
pub fn budget(max_failures: i32) -> Rule {
    Rule { max_failures: max_failures.max(1), first_lock_secs: 15 * 60, max_lock_secs: 15 * 60 }
}

/// Failures older than this are forgotten.
const FAILURE_WINDOW_MINUTES: i64 = 15;
/// Lockouts older than this no longer make the next one longer.
const LOCKOUT_MEMORY_HOURS: i64 = 24;
/// A client the account signed in from within this long is the owner's own.
pub const KNOWN_CLIENT_DAYS: i64 = 90;

/// The counter of an e-mail address.
pub fn email_key(email: &str) -> String {
    sha256_hex(&email.trim().to_lowercase())
}

/// The counter of an account on one client.
pub fn account_on_client_key(user_id: &str, ip: &str) -> String {
    sha256_hex(&format!("account-client:{user_id}:{ip}"))
}

/// The spraying budget of one client, across every address it tries.
pub fn client_key(ip: &str) -> String {
    sha256_hex(&format!("client:{ip}"))
}

/// The spraying budget of every client that is not an account's own, together.
pub fn global_key() -> String {
    sha256_hex("global:unknown-clients")
}

/// Which counter a password attempt for an address is charged to.
///
/// A stranger who knows an address can lock it with three wrong passwords every quarter of an
/// hour. The owner is let through by signing in from a client they have signed in from before
/// (an open or closed session of the account from this address in the last 90 days): such an
/// attempt is charged to the account's own counter on that client, which only that client's
/// failures fill, so the stranger's lock on the address does not apply to it. This keeps the
/// guarantee against racing bursts: every counter is still reserved before the comparison, so a
/// stranger gets at most three comparisons per lock on the address, and someone on the owner's
/// network at most three more per lock on that client.
pub fn sign_in_key(conn: &mut DbConn, email: &str, user_id: Option<&str>, ip: Option<&str>) -> AppResult<SignInKey> {
    if let (Some(user_id), Some(ip)) = (user_id, ip) {
        let since = now() - Duration::days(KNOWN_CLIENT_DAYS);
        if crate::auth::tokens::signed_in_from(conn, user_id, ip, since)? {
            return Ok(SignInKey { key: account_on_client_key(user_id, ip), known_client: true });
        }
    }
    Ok(SignInKey { key: email_key(email), known_client: false })
}

#[derive(Debug, Clone)]
pub struct SignInKey {
    pub key: String,
    /// The owner's own client: not subject to the address's lock nor to the global budget.
    pub known_client: bool,
}

/// A lock that an attempt just set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLock {
    pub key: String,
    pub secs: i64,
    /// When it ends, and the counter as it was before (to lift it if the attempt succeeds).
    until: NaiveDateTime,
    before: (i32, i32, Option<NaiveDateTime>),
    /// The first lockout of a run (none in the last day): worth telling the owner about.
    pub first_of_run: bool,
}

/// The answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The attempt is counted as a failure until refunded; `locks` are the locks it set.
    Granted { locks: Vec<NewLock> },
    /// A counter is locked: nothing was counted. Seconds until the longest lock ends.
    Locked(u64),
}

impl Reservation {
    /// The lock this attempt set on the key, if it set one.
    pub fn lock_on(&self, key: &str) -> Option<&NewLock> {
        match self {
            Reservation::Granted { locks } => locks.iter().find(|l| l.key == key),
            Reservation::Locked(_) => None,
        }
    }
}

type Row = (i32, i32, NaiveDateTime, Option<NaiveDateTime>);

/// Creates the row when missing and locks it for the rest of the transaction.
fn lock_row(conn: &mut DbConn, key: &str, t: NaiveDateTime) -> AppResult<Row> {
    let fresh = (
        login_throttle::email_key.eq(key),
        login_throttle::failures.eq(0),
        login_throttle::lockouts.eq(0),
        login_throttle::last_failure_at.eq(t),
        login_throttle::locked_until.eq(None::<NaiveDateTime>),
    );
    let columns = (
        login_throttle::failures,
        login_throttle::lockouts,
        login_throttle::last_failure_at,
        login_throttle::locked_until,
    );
    let select = login_throttle::table.filter(login_throttle::email_key.eq(key)).select(columns);
    let row = match conn {
        DbConn::Postgres(c) => {
            diesel::insert_into(login_throttle::table).values(fresh).on_conflict_do_nothing().execute(c)?;
            select.for_update().get_result(c)?
        }
        // SQLite transactions already hold the database's one write lock (`db::in_transaction`).
        DbConn::Sqlite(c) => {
            diesel::insert_into(login_throttle::table).values(fresh).on_conflict_do_nothing().execute(c)?;
            select.get_result(c)?
        }
    };
    Ok(row)
}

fn seconds_until(until: NaiveDateTime, t: NaiveDateTime) -> u64 {
    (until - t).num_seconds().max(1) as u64
}

/// Creates and locks the rows of these counters, in one order for every transaction so that
/// two of them never wait on each other's rows.
fn lock_rows<'a>(
    conn: &mut DbConn,
    counters: &'a [(String, Rule)],
    t: NaiveDateTime,
) -> AppResult<Vec<(&'a str, Rule, Row)>> {
    let mut sorted: Vec<&(String, Rule)> = counters.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted.dedup_by(|a, b| a.0 == b.0);
    let mut rows = Vec::with_capacity(sorted.len());
    for (key, rule) in sorted {
        rows.push((key.as_str(), *rule, lock_row(conn, key, t)?));
    }
    Ok(rows)
}

/// Counts one failure on each locked row; a counter that reaches its rule's limit locks.
fn count_failure(conn: &mut DbConn, rows: Vec<(&str, Rule, Row)>, t: NaiveDateTime) -> AppResult<Vec<NewLock>> {
    let mut locks = Vec::new();
    for (key, rule, (failures, lockouts, last, until)) in rows {
        let quiet = t - last;
        let failures = if quiet > Duration::minutes(FAILURE_WINDOW_MINUTES) { 0 } else { failures };
        let lockouts = if quiet > Duration::hours(LOCKOUT_MEMORY_HOURS) { 0 } else { lockouts };
        let (failures, lockouts, until) = if failures + 1 >= rule.max_failures {
            let secs = (rule.first_lock_secs << lockouts.clamp(0, 10)).min(rule.max_lock_secs);
            // Never shorten a lock: keep whichever ends later.
            let new_until = t + Duration::seconds(secs);
            let until_now = until.map_or(new_until, |u| u.max(new_until));
            locks.push(NewLock {
                key: key.to_string(),
                secs,
                first_of_run: lockouts == 0,
                until: until_now,
                before: (failures, lockouts, until),
            });
            (0, lockouts + 1, Some(until_now))
        } else {
            (failures + 1, lockouts, until)
        };
        diesel::update(login_throttle::table.filter(login_throttle::email_key.eq(key)))
            .set((
                login_throttle::failures.eq(failures),
                login_throttle::lockouts.eq(lockouts),
                login_throttle::last_failure_at.eq(t),
                login_throttle::locked_until.eq(until),
            ))
            .execute(conn)?;
    }
    Ok(locks)
}

/// Reserves one attempt, atomically: when a counter in `charge` or `also_check` is locked,
/// nothing is counted and the answer is the longest wait; otherwise each counter in `charge`
/// counts the attempt as a failure now, before the comparison (refunded by [`refund`] when it
/// succeeds). `also_check` are budgets charged only by confirmed failures ([`record_failure`]).
pub fn reserve(conn: &mut DbConn, charge: &[(String, Rule)], also_check: &[String]) -> AppResult<Reservation> {
    let t = now();
    let rows = lock_rows(conn, charge, t)?;
    let mut wait =
        rows.iter().filter_map(|(_, _, (_, _, _, until))| until.filter(|u| *u > t).map(|u| seconds_until(u, t))).max();
    for key in also_check {
        wait = wait.max(locked_for(conn, key)?);
    }
    if let Some(secs) = wait {
        return Ok(Reservation::Locked(secs));
    }
    Ok(Reservation::Granted { locks: count_failure(conn, rows, t)? })
}

/// Counts a confirmed failure on each counter; returns the locks it set.
pub fn record_failure(conn: &mut DbConn, counters: &[(String, Rule)]) -> AppResult<Vec<NewLock>> {
    let t = now();
    let rows = lock_rows(conn, counters, t)?;
    count_failure(conn, rows, t)
}

/// A successful attempt on `key`: the count of failures starts again (the failure it reserved
/// included). When that very reservation locked the counter, the lock was only provisional (the
/// attempt turned out to be the owner's) and is lifted, unless something has lengthened it
/// since; any other lock in force stays.
pub fn refund(conn: &mut DbConn, key: &str, reservation: &Reservation) -> AppResult<()> {
    let row = login_throttle::table.filter(login_throttle::email_key.eq(key));
    if let Some(lock) = reservation.lock_on(key) {
        let (_, lockouts, until) = lock.before;
        let lifted = diesel::update(row.filter(login_throttle::locked_until.eq(lock.until)))
            .set((
                login_throttle::failures.eq(0),
                login_throttle::lockouts.eq(lockouts),
                login_throttle::locked_until.eq(until),
            ))
            .execute(conn)?;
        if lifted == 1 {
            return Ok(());
        }
    }
    diesel::update(row).set(login_throttle::failures.eq(0)).execute(conn)?;
    Ok(())
}

/// Seconds until the counter may be tried again, when it is locked now.
pub fn locked_for(conn: &mut DbConn, key: &str) -> AppResult<Option<u64>> {
    let until: Option<Option<NaiveDateTime>> = login_throttle::table
        .filter(login_throttle::email_key.eq(key))
        .select(login_throttle::locked_until)
        .first(conn)
        .optional()?;
    let t = now();
    Ok(until.flatten().filter(|u| *u > t).map(|u| seconds_until(u, t)))
}
