//! Sign-in throttling per e-mail address. Failures are counted for known and unknown addresses
//! alike, so a locked account answers exactly as an unknown one does. After three failures the
//! address is locked for a minute, doubling with each further lockout up to fifteen minutes: a
//! stranger can slow an account down but never lock it out for good.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::auth::tokens::sha256_hex;
use crate::db::schema::login_throttle;
use crate::db::{now, DbConn};
use crate::error::AppResult;

pub const MAX_FAILURES: i32 = 3;
const FIRST_LOCK_SECS: i64 = 60;
const MAX_LOCK_SECS: i64 = 15 * 60;
/// Failures older than this are forgotten.
const FAILURE_WINDOW_MINUTES: i64 = 15;
/// Lockouts older than this no longer make the next one longer.
const LOCKOUT_MEMORY_HOURS: i64 = 24;

pub fn email_key(email: &str) -> String {
    sha256_hex(&email.trim().to_lowercase())
}

/// Seconds until the address may try again, when it is locked now.
pub fn locked_for(conn: &mut DbConn, key: &str) -> AppResult<Option<u64>> {
    let until: Option<Option<NaiveDateTime>> = login_throttle::table
        .filter(login_throttle::email_key.eq(key))
        .select(login_throttle::locked_until)
        .first(conn)
        .optional()?;
    let t = now();
    Ok(until.flatten().filter(|u| *u > t).map(|u| (u - t).num_seconds().max(1) as u64))
}

/// Counts a failure; returns the lock length in seconds when this failure locked the address.
pub fn record_failure(conn: &mut DbConn, key: &str) -> AppResult<Option<u64>> {
    let t = now();
    let row: Option<(i32, i32, NaiveDateTime)> = login_throttle::table
        .filter(login_throttle::email_key.eq(key))
        .select((login_throttle::failures, login_throttle::lockouts, login_throttle::last_failure_at))
        .first(conn)
        .optional()?;
    let (mut failures, mut lockouts) = match row {
        None => (0, 0),
        Some((f, l, last)) => {
            let f = if t - last > Duration::minutes(FAILURE_WINDOW_MINUTES) { 0 } else { f };
            let l = if t - last > Duration::hours(LOCKOUT_MEMORY_HOURS) { 0 } else { l };
            (f, l)
        }
    };
    failures += 1;
    let mut locked_until = None;
    let mut lock_secs = None;
    if failures >= MAX_FAILURES {
        let secs = (FIRST_LOCK_SECS << lockouts.min(10)).min(MAX_LOCK_SECS);
        locked_until = Some(t + Duration::seconds(secs));
        lock_secs = Some(secs as u64);
        lockouts += 1;
        failures = 0;
    }
    if row.is_some() {
        diesel::update(login_throttle::table.filter(login_throttle::email_key.eq(key)))
            .set((
                login_throttle::failures.eq(failures),
                login_throttle::lockouts.eq(lockouts),
                login_throttle::last_failure_at.eq(t),
                login_throttle::locked_until.eq(locked_until),
            ))
            .execute(conn)?;
    } else {
        diesel::insert_into(login_throttle::table)
            .values((
                login_throttle::email_key.eq(key),
                login_throttle::failures.eq(failures),
                login_throttle::lockouts.eq(lockouts),
                login_throttle::last_failure_at.eq(t),
                login_throttle::locked_until.eq(locked_until),
            ))
            .execute(conn)?;
    }
    Ok(lock_secs)
}

pub fn clear(conn: &mut DbConn, key: &str) -> AppResult<()> {
    diesel::delete(login_throttle::table.filter(login_throttle::email_key.eq(key))).execute(conn)?;
    Ok(())
}
