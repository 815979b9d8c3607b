//! Signing in with an address, a password and (when it is on) a TOTP code or a recovery code: the one path the
//! API's `POST /auth/login` and the console's sign-in form both take, with the same throttle.

use super::{password, recovery, throttle, tokens, totp};
use crate::auth::tokens::TokenPair;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::users;

/// What a person typed into a sign-in form or request.
pub struct Credentials {
    pub email: String,
    pub password: String,
    pub totp_code: Option<String>,
}

/// A session just opened.
pub struct SignedIn {
    pub user_id: String,
    pub session_id: String,
    pub pair: TokenPair,
}

pub(crate) fn unix_now() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

/// Queues the owner's e-mail about a lock that a failed attempt set on their account's counter,
/// in the transaction that makes the lock final (a lock set by an attempt that then succeeds is
/// lifted, see [`throttle::refund`]); once per run of lockouts, so a stranger cannot flood the
/// mailbox.
pub(crate) fn tell_owner_of_lock(
    conn: &mut crate::db::DbConn,
    mailer: &crate::mail::Mailer,
    user: &users::User,
    lock: Option<&throttle::NewLock>,
) -> AppResult<bool> {
    let Some(lock) = lock.filter(|l| l.first_of_run) else { return Ok(false) };
    if !user.active {
        return Ok(false);
    }
    let locked_at = crate::db::now();
    let notice = crate::mail::Notice::AccountLocked { locked_at, minutes: (lock.secs + 59) / 60 };
    let email = mailer.to_user(user, &notice)?.once(format!(
        "account_locked:{}:{}:{}",
        user.id,
        lock.key,
        locked_at.and_utc().timestamp()
    ));
    Ok(crate::mail::outbox::enqueue(conn, email)?.is_some())
}

/// A wrong password, an unknown address, a missing or wrong second factor and a deactivated
/// account all fail alike (`invalid_credentials`); a locked address is `too_many_requests`
/// whether it exists or not.
///
/// Three steps: (1) one locking transaction looks the account up and reserves the attempt on
/// its throttle counter, counting it as a failure before anything slow happens (see
/// [`throttle`]); (2) the password is compared outside any transaction, in the bounded hashing
/// pool; (3) a second transaction signs in and clears the count, or charges the spraying
/// budgets and, when the reservation locked the account, tells its owner.
pub async fn sign_in(state: &AppState, ip: Option<String>, body: Credentials) -> AppResult<SignedIn> {
    // No address holds a NUL, and PostgreSQL text cannot even be compared with one.
    if body.email.len() > 254 || body.password.len() > 1024 || body.email.contains('\0') {
        return Err(AppError::invalid_credentials());
    }
    let keys = state.keys.clone();
    let mailer = state.mail.clone();
    let client_budget = throttle::budget(state.config.login_client_failures);
    let global_budget = throttle::budget(state.config.login_global_failures);
    let email = body.email.clone();
    let reserve_ip = ip.clone();
    let (user, key, budgets, reservation) = state
        .db
        .run(move |conn| {
            let user = users::find_by_email(conn, &email)?;
            let key = throttle::sign_in_key(conn, &email, user.as_ref().map(|u| u.id.as_str()), reserve_ip.as_deref())?;
            let mut budgets = Vec::new();
            if let Some(ip) = reserve_ip.as_deref() {
                budgets.push((throttle::client_key(ip), client_budget));
            }
            // The owner's own client does not share the unknown clients' budget, so a spraying
            // attack that exhausts it does not lock owners out.
            if !key.known_client {
                budgets.push((throttle::global_key(), global_budget));
            }
            let checked: Vec<String> = budgets.iter().map(|(k, _)| k.clone()).collect();
            let reservation = throttle::reserve(conn, &[(key.key.clone(), throttle::ACCOUNT)], &checked)?;
            Ok((user, key.key, budgets, reservation))
        })
        .await?;
    if let throttle::Reservation::Locked(secs) = reservation {
        return Err(AppError::too_many_requests(secs));
    }
    let password_ok = password::verify_bounded(body.password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    let outcome = state
        .db
        .run(move |conn| {
            let owner = user.as_ref().map(|u| users::find(conn, &u.id)).transpose()?.flatten();
            // Reread the account: it, or its organisation, may have been deactivated while the
            // password was checked. Either fails like a wrong password.
            let user = match user.filter(|_| password_ok) {
                Some(u) => users::find_in_service(conn, &u.id)?,
                None => None,
            };
            let second_factor_ok = match &user {
                None => false,
                Some(u) if !u.totp_enabled => true,
                Some(u) => match (u.totp_secret.as_deref(), body.totp_code.as_deref()) {
                    (Some(secret), Some(code)) => match totp::verify(secret, code, u.totp_last_step, unix_now()) {
                        Some(step) => {
                            users::set_totp_last_step(conn, &u.id, step)?;
                            true
                        }
                        // In place of the app's code, one of the owner's recovery codes, once.
                        None => recovery::redeem(conn, &mailer, u, code)?,
                    },
                    _ => false,
                },
            };
            match user {
                Some(u) if second_factor_ok => {
                    throttle::refund(conn, &key, &reservation)?;
                    let (session_id, pair) = tokens::open_session_with_id(conn, &keys, &u.id, ip)?;
                    Ok((Some(SignedIn { user_id: u.id, session_id, pair }), false))
                }
                _ => {
                    // The address's counter already holds this failure (it was reserved); a lock
                    // the reservation set is now certain, and the owner is told.
                    throttle::record_failure(conn, &budgets)?;
                    let mailed = match &owner {
                        Some(u) => tell_owner_of_lock(conn, &mailer, u, reservation.lock_on(&key))?,
                        None => false,
                    };
                    Ok((None, mailed))
                }
            }
        })
        .await?;
    outcome.0.ok_or_else(AppError::invalid_credentials)
}
