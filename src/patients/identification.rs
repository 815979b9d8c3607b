//! Counting failed patient identifications (a hospital opening a discharge case for a patient
//! it is not on the team of, by id + birth date + katakana family name). A correct guess makes
//! the guesser a team member, so guessing must be slow: a small budget per caller and per
//! requested patient id. The decision itself is in `access::patient_for_new_case`.
//!
//! Every attempt reserves one failure on both counters *before* the comparison, by upsert, in
//! the request's transaction; a correct identification gives its reservation back. The upsert
//! locks the counter row until commit (PostgreSQL) or runs under the one write lock (SQLite), so
//! of N concurrent guesses at most the budget reaches the comparison.
//!
//! The patient counter is kept for the id as requested, whether or not such a patient exists,
//! and the caller counter counts misses on nonexistent ids too: a throttled answer (and a miss)
//! is then the same for an existing patient and an invented id. Keys are hashes, so nothing a
//! client typed is stored.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::auth::tokens::sha256_hex;
use crate::db::schema::identification_throttle as t;
use crate::db::{now, DbConn};
use crate::error::AppResult;

/// Failed identifications one account may make per window. A hospital that has the patient in
/// front of it gets the birth date and kana right within a try or two (a typo, a wrong era
/// conversion); five misses an hour is far above that and makes guessing a birth date (some
/// 36,500 candidates) take years.
pub const CALLER_MAX_FAILURES: i32 = 5;
pub const CALLER_WINDOW: Duration = Duration::hours(1);

/// Failed identifications of one patient id per window, from all callers together, so that
/// many accounts cannot share the guessing: ten a day still leaves room for a few hospitals
/// making honest mistakes on the same day.
pub const PATIENT_MAX_FAILURES: i32 = 10;
pub const PATIENT_WINDOW: Duration = Duration::hours(24);

/// The patient's team lead is told once the patient has this many failures in a window (and
/// only once per window): one or two misses are typos, three on one patient within a day are
/// worth a look at the access log.
pub const NOTIFY_AFTER_FAILURES: i32 = 3;

/// One counter after this attempt was counted.
#[derive(Debug, Clone)]
pub struct Counter {
    key: String,
    pub failures: i32,
    pub window_started_at: NaiveDateTime,
    pub notified_at: Option<NaiveDateTime>,
    window: Duration,
}

impl Counter {
    pub fn over(&self, max: i32) -> bool {
        self.failures > max
    }

    /// Seconds until the window ends (at least one).
    pub fn retry_after(&self, at: NaiveDateTime) -> u64 {
        (self.window_started_at + self.window - at).num_seconds().max(1) as u64
    }
}

pub fn caller_key(user_id: &str) -> String {
    sha256_hex(&format!("caller:{user_id}"))
}

pub fn patient_key(patient_id: &str) -> String {
    sha256_hex(&format!("patient:{patient_id}"))
}

/// Counts one attempt on a counter: a new window when the last one has ended, else one more.
pub fn reserve(conn: &mut DbConn, key: &str, window: Duration) -> AppResult<Counter> {
    let at = now();
    // An ended window starts again at this attempt. Done before the increment, in the same
    // transaction: a concurrent attempt waits on the row and then sees the fresh window.
    diesel::update(t::table.find(key).filter(t::window_started_at.le(at - window)))
        .set((t::failures.eq(0), t::window_started_at.eq(at), t::notified_at.eq(None::<NaiveDateTime>)))
        .execute(conn)?;
    let (failures, window_started_at, notified_at) = crate::per_backend!(conn, |c| diesel::insert_into(t::table)
        .values((t::throttle_key.eq(key), t::failures.eq(1), t::window_started_at.eq(at)))
        .on_conflict(t::throttle_key)
        .do_update()
        .set(t::failures.eq(t::failures + 1))
        .returning((t::failures, t::window_started_at, t::notified_at))
        .get_result::<(i32, NaiveDateTime, Option<NaiveDateTime>)>(c))?;
    Ok(Counter { key: key.to_string(), failures, window_started_at, notified_at, window })
}

/// Gives a reservation back: the attempt was a correct identification, not a failure.
pub fn release(conn: &mut DbConn, counter: &Counter) -> AppResult<()> {
    diesel::update(t::table.find(&counter.key).filter(t::failures.gt(0)))
        .set(t::failures.eq(t::failures - 1))
        .execute(conn)?;
    Ok(())
}

/// Claims this window's one notice to the team lead; true when this call claimed it.
pub fn claim_notice(conn: &mut DbConn, counter: &Counter) -> AppResult<bool> {
    let at = now();
    let claimed = diesel::update(
        t::table
            .find(&counter.key)
            .filter(t::window_started_at.eq(counter.window_started_at))
            .filter(t::notified_at.is_null()),
    )
    .set(t::notified_at.eq(Some(at)))
    .execute(conn)?;
    Ok(claimed == 1)
}

/// Tells the patient's team lead, once per window, that identification keeps failing. The
/// e-mail is fixed text with the patient's e-mail label and a link to the access log; nothing
/// of what the guesser sent and nothing about who they are (the access log shows the lead).
pub fn notify_lead(
    conn: &mut DbConn,
    mailer: &crate::mail::Mailer,
    patient: &super::Patient,
    counter: &Counter,
) -> AppResult<()> {
    if counter.failures < NOTIFY_AFTER_FAILURES || counter.notified_at.is_some() || !claim_notice(conn, counter)? {
        return Ok(());
    }
    let recipients = super::team::lead_user_ids(conn, &patient.id)?;
    let notice = crate::mail::Notice::IdentificationFailures {
        since: counter.window_started_at,
        patient: patient.email_label(mailer.patient_label()),
        patient_id: patient.id.clone(),
    };
    let dedupe = format!("identification:{}:{}", patient.id, counter.window_started_at.and_utc().timestamp_micros());
    crate::mail::notify(conn, mailer, &recipients, &notice, Some(&patient.id), &dedupe)?;
    Ok(())
}
