//! Two-factor enrolment and the caller's own password check before a sensitive change, shared
//! by the API (`/me/totp`, `/me/password`) and the console's enrolment page.

use serde::Serialize;

use super::sign_in::{tell_owner_of_lock, unix_now, SignedIn};
use super::{password, recovery, throttle, tokens, totp, Bearer};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::CurrentUser;
use crate::db::{now, DbConn};
use crate::error::{AppError, AppResult};
use crate::mail::{Described, Mailer, Notice};
use crate::state::AppState;
use crate::users;

#[derive(Debug, Serialize)]
pub struct TotpEnrolment {
    pub secret: String,
    pub otpauth_url: String,
}

pub fn password_changed_meanwhile() -> AppError {
    AppError::conflict(
        "パスワードは同時に別の操作で変更されました。もう一度お試しください。",
        "The password was changed by another request meanwhile. Try again.",
    )
}

/// Checks the caller's own password before a sensitive change (`/me/password`, `/me/totp`).
/// The check is counted with sign-in's failures, on the counter a sign-in from this client
/// would use (reserved before the comparison, cleared when it is right), so a stolen access
/// token is no oracle for the password; the failure that reaches the limit ends the session.
/// Answers the account as it was checked (with its password hash at that time); a wrong
/// password is a 422 naming `field`, and the one that ends the session a 401.
pub async fn check_own_password(
    state: &AppState,
    bearer: &Bearer,
    ip: Option<String>,
    field: &'static str,
    password: String,
) -> AppResult<Box<users::User>> {
    let mailer = state.mail.clone();
    let reserving = bearer.clone();
    let (user, key, reservation) = state
        .db
        .run(move |conn| {
            let me = reserving.user_allowing_missing_second_factor(conn)?;
            let user = users::find(conn, &me.id)?.ok_or_else(AppError::invalid_token)?;
            let key = throttle::sign_in_key(conn, &user.email, Some(&user.id), ip.as_deref())?.key;
            let reservation = throttle::reserve(conn, &[(key.clone(), throttle::ACCOUNT)], &[])?;
            Ok((user, key, reservation))
        })
        .await?;
    if let throttle::Reservation::Locked(secs) = reservation {
        return Err(AppError::too_many_requests(secs));
    }
    let right = password::verify_bounded(password, Some(user.password_hash.clone())).await?;
    let limit_reached = reservation.lock_on(&key).is_some();
    let session = bearer.session_id.clone();
    let (answer, _) = state
        .db
        .run(move |conn| {
            if right {
                throttle::refund(conn, &key, &reservation)?;
                Ok((Ok(Box::new(user)), false))
            } else if limit_reached {
                tokens::revoke_session(conn, &session, "password_guessing")?;
                let mailed = tell_owner_of_lock(conn, &mailer, &user, reservation.lock_on(&key))?;
                Ok((Err(AppError::invalid_token()), mailed))
            } else {
                let wrong = AppError::field(
                    field,
                    "wrong_password",
                    "パスワードが正しくありません。",
                    "The password is not correct.",
                );
                Ok((Err(wrong), false))
            }
        })
        .await?;
    answer
}

/// A password changed by its owner (`POST /me/password`, the console's page): the current one
/// checked first (counted with sign-in's failures), the new one under the password rules
/// (422 naming `new_password`), hashed outside any transaction. Every session of the account
/// ends and a new one opens for the caller: answers it.
pub async fn change_password(
    state: &AppState,
    bearer: Bearer,
    ip: Option<String>,
    current: String,
    new: String,
) -> AppResult<SignedIn> {
    let user = check_own_password(state, &bearer, ip.clone(), "current_password", current).await?;
    password::check_policy("new_password", &new, &user.email, &user.name)?;
    let new_hash = password::hash_bounded(new).await?;
    let keys = state.keys.clone();
    state
        .db
        .run(move |conn| {
            let me = bearer.user_allowing_missing_second_factor(conn)?;
            // The current password was checked outside this transaction: change it only if it
            // is still the one that was checked.
            if me.id != user.id || !users::replace_password(conn, &user.id, &user.password_hash, &new_hash)? {
                return Err(password_changed_meanwhile());
            }
            tokens::revoke_all_sessions(conn, &user.id, "password_changed")?;
            let (session_id, pair) = tokens::open_session_with_id(conn, &keys, &user.id, ip)?;
            Ok(SignedIn { user_id: user.id.clone(), session_id, pair })
        })
        .await
}

/// Starts enrolment (`POST /me/totp`, the console's page): the caller's password checked
/// first; the secret takes effect once a code confirms it.
pub async fn enrol(state: &AppState, bearer: Bearer, ip: Option<String>, password: String) -> AppResult<TotpEnrolment> {
    let checked = check_own_password(state, &bearer, ip, "password", password).await?;
    state
        .db
        .run(move |conn| {
            let me = bearer.user_allowing_missing_second_factor(conn)?;
            let user = users::find(conn, &me.id)?.ok_or_else(AppError::invalid_token)?;
            if user.id != checked.id || user.password_hash != checked.password_hash {
                return Err(password_changed_meanwhile());
            }
            if user.totp_enabled {
                return Err(AppError::conflict(
                    "二要素認証はすでに有効です。変更するには一度無効にしてください。",
                    "Two-factor sign-in is already on. Turn it off first to enrol a new device.",
                ));
            }
            let (secret, url) =
                totp::new_secret(&user.email).ok_or_else(|| AppError::internal("totp secret generation"))?;
            users::set_totp(conn, &user.id, Some(&secret), false, None)?;
            Ok(TotpEnrolment { secret, otpauth_url: url })
        })
        .await
}

/// New recovery codes for the caller (`POST /me/totp/recovery-codes`, the console's page), the
/// old ones ended: the caller's password checked first, as for enrolment; only while two-factor
/// sign-in is on (409 otherwise).
pub async fn new_recovery_codes(
    state: &AppState,
    bearer: Bearer,
    ip: Option<String>,
    password: String,
) -> AppResult<recovery::RecoveryCodes> {
    let checked = check_own_password(state, &bearer, ip, "password", password).await?;
    state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let user = users::find(conn, &me.id)?.ok_or_else(AppError::invalid_token)?;
            if user.id != checked.id || user.password_hash != checked.password_hash {
                return Err(password_changed_meanwhile());
            }
            if !user.totp_enabled {
                return Err(AppError::conflict(
                    "回復コードは二要素認証を有効にしてから作れます。",
                    "Recovery codes are made once two-factor sign-in is on.",
                ));
            }
            recovery::replace(conn, &user.id)
        })
        .await
}

/// Turns two-factor sign-in off (`DELETE /me/totp`, the console's page) with a fresh code from
/// the app, counted like a failed sign-in when wrong; its recovery codes end with it. Not for a
/// system administrator (`access::turn_off_two_factor`).
pub async fn turn_off(state: &AppState, bearer: Bearer, code: String) -> AppResult<()> {
    state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            crate::access::turn_off_two_factor(&me)?;
            let user = users::find(conn, &me.id)?.ok_or_else(AppError::invalid_token)?;
            let (true, Some(secret)) = (user.totp_enabled, user.totp_secret.as_deref()) else {
                return Err(AppError::conflict("二要素認証は有効になっていません。", "Two-factor sign-in is not on."));
            };
            let key = totp_attempts_key(&user.id);
            let reservation = throttle::reserve(conn, &[(key.clone(), throttle::ACCOUNT)], &[])?;
            if let throttle::Reservation::Locked(secs) = reservation {
                return Ok(CodeCheck::Locked(secs));
            }
            if totp::verify(secret, &code, user.totp_last_step, unix_now()).is_none() {
                return Ok(CodeCheck::Wrong);
            }
            throttle::refund(conn, &key, &reservation)?;
            users::set_totp(conn, &user.id, None, false, None)?;
            recovery::discard(conn, &user.id)?;
            Ok(CodeCheck::Accepted(()))
        })
        .await?
        .into_result()
}

/// An administrator resets another person's two-factor sign-in (`DELETE /users/{id}/totp`,
/// after `access::second_factor_reset`): the secret and the recovery codes go, every session of
/// the account ends, the reset is audited and the person is e-mailed. 409 when it is not on.
pub fn reset_second_factor(conn: &mut DbConn, me: &CurrentUser, mailer: &Mailer, user: &users::User) -> AppResult<()> {
    if !user.totp_enabled {
        return Err(AppError::conflict(
            "この方の二要素認証は有効になっていません。",
            "Two-factor sign-in is not on for this person.",
        ));
    }
    users::set_totp(conn, &user.id, None, false, None)?;
    recovery::discard(conn, &user.id)?;
    tokens::revoke_all_sessions(conn, &user.id, "second_factor_reset")?;
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::User, Some(&user.id), None).detail("second factor reset"),
    )?;
    let admin_org =
        crate::orgs::find(conn, me.employer()?)?.ok_or_else(|| AppError::internal("user without organisation"))?;
    let reset_at = now();
    let notice = Notice::SecondFactorReset {
        admin: Described { profession: me.profession, organization: Some(admin_org.kind) },
        reset_at,
    };
    let email = mailer.to_user(user, &notice)?.once(format!(
        "second_factor_reset:{}:{}",
        user.id,
        reset_at.and_utc().timestamp()
    ));
    crate::mail::outbox::enqueue(conn, email)?;
    Ok(())
}

pub fn wrong_code() -> AppError {
    AppError::field("code", "wrong_code", "確認コードが正しくありません。", "The verification code is not correct.")
}

/// The answer to a submitted TOTP code. Wrong codes are counted like failed sign-ins, so a stolen
/// access token cannot be used to guess the six digits.
pub enum CodeCheck<T> {
    Accepted(T),
    Wrong,
    Locked(u64),
}

impl<T> CodeCheck<T> {
    pub fn into_result(self) -> AppResult<T> {
        match self {
            CodeCheck::Accepted(v) => Ok(v),
            CodeCheck::Wrong => Err(wrong_code()),
            CodeCheck::Locked(secs) => Err(AppError::too_many_requests(secs)),
        }
    }
}

pub fn totp_attempts_key(user_id: &str) -> String {
    throttle::email_key(&format!("totp:{user_id}"))
}

/// A code from the new secret switches two-factor sign-in on (`POST /me/totp/confirm`, the
/// console's page); wrong codes are counted like failed sign-ins. Answers the account.
pub async fn confirm(state: &AppState, bearer: Bearer, code: String) -> AppResult<users::User> {
    state
        .db
        .run(move |conn| {
            let me = bearer.user_allowing_missing_second_factor(conn)?;
            let user = users::find(conn, &me.id)?.ok_or_else(AppError::invalid_token)?;
            if user.totp_enabled {
                return Err(AppError::conflict("二要素認証はすでに有効です。", "Two-factor sign-in is already on."));
            }
            let secret = user.totp_secret.clone().ok_or_else(|| {
                AppError::conflict(
                    "先に POST /api/v1/me/totp で登録を始めてください。",
                    "Start enrolment with POST /api/v1/me/totp first.",
                )
            })?;
            let key = totp_attempts_key(&user.id);
            let reservation = throttle::reserve(conn, &[(key.clone(), throttle::ACCOUNT)], &[])?;
            if let throttle::Reservation::Locked(secs) = reservation {
                return Ok(CodeCheck::Locked(secs));
            }
            let Some(step) = totp::verify(&secret, &code, user.totp_last_step, unix_now()) else {
                return Ok(CodeCheck::Wrong);
            };
            throttle::refund(conn, &key, &reservation)?;
            users::set_totp(conn, &user.id, Some(&secret), true, Some(step))?;
            Ok(CodeCheck::Accepted(users::find(conn, &user.id)?.ok_or_else(AppError::invalid_token)?))
        })
        .await?
        .into_result()
}
