//! Sign-in, token refresh, logout, the caller's own account, password change and TOTP.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{password, throttle, tokens, totp, Bearer};
use crate::api::Json;
use crate::auth::tokens::{RefreshOutcome, TokenPair};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::users;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
    pub totp_code: Option<String>,
}

enum LoginOutcome {
    SignedIn(TokenPair),
    Failed,
}

fn unix_now() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

/// Queues the owner's e-mail about a lock that a failed attempt set on their account's counter,
/// in the transaction that makes the lock final (a lock set by an attempt that then succeeds is
/// lifted, see [`throttle::refund`]); once per run of lockouts, so a stranger cannot flood the
/// mailbox.
fn tell_owner_of_lock(
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

/// `POST /auth/login`. A wrong password, an unknown address, a missing or wrong second factor and
/// a deactivated account all get the same 401; a locked address gets 429 whether it exists or not.
///
/// Three steps: (1) one locking transaction looks the account up and reserves the attempt on
/// its throttle counter, counting it as a failure before anything slow happens (see
/// [`throttle`]); (2) the password is compared outside any transaction, in the bounded hashing
/// pool; (3) a second transaction signs in and clears the count, or charges the spraying
/// budgets and, when the reservation locked the account, tells its owner.
pub async fn login(state: web::Data<AppState>, req: HttpRequest, body: Json<Login>) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    // No address holds a NUL, and PostgreSQL text cannot even be compared with one.
    if body.email.len() > 254 || body.password.len() > 1024 || body.email.contains('\0') {
        return Err(AppError::invalid_credentials());
    }
    let keys = state.keys.clone();
    let ip = super::client_ip(&req);
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
            // password was checked. Either answers the same 401 as a wrong password.
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
                        None => false,
                    },
                    _ => false,
                },
            };
            match user {
                Some(u) if second_factor_ok => {
                    throttle::refund(conn, &key, &reservation)?;
                    Ok((LoginOutcome::SignedIn(tokens::open_session(conn, &keys, &u.id, ip)?), false))
                }
                _ => {
                    // The address's counter already holds this failure (it was reserved); a lock
                    // the reservation set is now certain, and the owner is told.
                    throttle::record_failure(conn, &budgets)?;
                    let mailed = match &owner {
                        Some(u) => tell_owner_of_lock(conn, &mailer, u, reservation.lock_on(&key))?,
                        None => false,
                    };
                    Ok((LoginOutcome::Failed, mailed))
                }
            }
        })
        .await?;
    match outcome.0 {
        LoginOutcome::SignedIn(pair) => Ok(no_store(HttpResponse::Ok()).json(pair)),
        LoginOutcome::Failed => Err(AppError::invalid_credentials()),
    }
}

fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
    builder
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    pub refresh_token: String,
}

/// `POST /auth/refresh`: rotates the refresh token; a replayed one revokes its whole family.
pub async fn refresh(state: web::Data<AppState>, body: Json<Refresh>) -> AppResult<HttpResponse> {
    let presented = body.into_inner().refresh_token;
    if presented.len() > 200 {
        return Err(AppError::invalid_token());
    }
    let keys = state.keys.clone();
    let outcome = state.db.run(move |conn| tokens::rotate(conn, &keys, &presented)).await?;
    match outcome {
        RefreshOutcome::Rotated(pair) => Ok(no_store(HttpResponse::Ok()).json(pair)),
        RefreshOutcome::Invalid | RefreshOutcome::ReuseDetected => Err(AppError::invalid_token()),
    }
}

/// `POST /auth/logout`: ends the caller's session; its access and refresh tokens stop working.
pub async fn logout(state: web::Data<AppState>, bearer: Bearer) -> AppResult<HttpResponse> {
    state
        .db
        .run(move |conn| {
            let me = bearer.user_allowing_missing_second_factor(conn)?;
            tokens::revoke_session(conn, &me.session_id, "logout")
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /me`.
pub async fn me(state: web::Data<AppState>, bearer: Bearer) -> AppResult<HttpResponse> {
    let user = state
        .db
        .read(move |conn| {
            let me = bearer.user_allowing_missing_second_factor(conn)?;
            users::find(conn, &me.id)?.ok_or_else(AppError::invalid_token)
        })
        .await?;
    Ok(HttpResponse::Ok().json(user.view(true)))
}

/// Checks the caller's own password before a sensitive change (`/me/password`, `/me/totp`).
/// The check is counted with sign-in's failures, on the counter a sign-in from this client
/// would use (reserved before the comparison, cleared when it is right), so a stolen access
/// token is no oracle for the password; the failure that reaches the limit ends the session.
/// Answers the account as it was checked (with its password hash at that time); a wrong
/// password is a 422 naming `field`, and the one that ends the session a 401.
async fn check_own_password(
    state: &web::Data<AppState>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

fn password_changed_meanwhile() -> AppError {
    AppError::conflict(
        "パスワードは同時に別の操作で変更されました。もう一度お試しください。",
        "The password was changed by another request meanwhile. Try again.",
    )
}

/// `POST /me/password`: every session of the account ends; the answer carries a fresh one.
/// Both argon2 runs (checking the current password, hashing the new one) happen outside any
/// transaction.
pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    bearer: Bearer,
    body: Json<ChangePassword>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let keys = state.keys.clone();
    let ip = super::client_ip(&req);
    let user = check_own_password(&state, &bearer, ip.clone(), "current_password", body.current_password).await?;
    password::check_policy("new_password", &body.new_password, &user.email, &user.name)?;
    let new_hash = password::hash_bounded(body.new_password).await?;
    let pair = state
        .db
        .run(move |conn| {
            let me = bearer.user_allowing_missing_second_factor(conn)?;
            // The current password was checked outside this transaction: change it only if it
            // is still the one that was checked.
            if me.id != user.id || !users::replace_password(conn, &user.id, &user.password_hash, &new_hash)? {
                return Err(password_changed_meanwhile());
            }
            tokens::revoke_all_sessions(conn, &user.id, "password_changed")?;
            tokens::open_session(conn, &keys, &user.id, ip)
        })
        .await?;
    Ok(no_store(HttpResponse::Ok()).json(pair))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmPassword {
    pub password: String,
}

#[derive(Debug, Serialize)]
pub struct TotpEnrolment {
    pub secret: String,
    pub otpauth_url: String,
}

/// `POST /me/totp`: starts enrolment; the secret takes effect once a code confirms it.
pub async fn totp_enrol(
    state: web::Data<AppState>,
    req: HttpRequest,
    bearer: Bearer,
    body: Json<ConfirmPassword>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let ip = super::client_ip(&req);
    let checked = check_own_password(&state, &bearer, ip, "password", body.password).await?;
    let enrolment = state
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
        .await?;
    Ok(no_store(HttpResponse::Ok()).json(enrolment))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    pub code: String,
}

fn wrong_code() -> AppError {
    AppError::field("code", "wrong_code", "確認コードが正しくありません。", "The verification code is not correct.")
}

/// The answer to a submitted TOTP code. Wrong codes are counted like failed sign-ins, so a stolen
/// access token cannot be used to guess the six digits.
enum CodeCheck<T> {
    Accepted(T),
    Wrong,
    Locked(u64),
}

impl<T> CodeCheck<T> {
    fn into_result(self) -> AppResult<T> {
        match self {
            CodeCheck::Accepted(v) => Ok(v),
            CodeCheck::Wrong => Err(wrong_code()),
            CodeCheck::Locked(secs) => Err(AppError::too_many_requests(secs)),
        }
    }
}

fn totp_attempts_key(user_id: &str) -> String {
    throttle::email_key(&format!("totp:{user_id}"))
}

/// `POST /me/totp/confirm`: a code from the new secret switches two-factor sign-in on.
pub async fn totp_confirm(state: web::Data<AppState>, bearer: Bearer, body: Json<TotpCode>) -> AppResult<HttpResponse> {
    let code = body.into_inner().code;
    let user = state
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
        .into_result()?;
    Ok(HttpResponse::Ok().json(user.view(true)))
}

/// `DELETE /me/totp`: needs a current code; system administrators must keep it on.
pub async fn totp_disable(state: web::Data<AppState>, bearer: Bearer, body: Json<TotpCode>) -> AppResult<HttpResponse> {
    let code = body.into_inner().code;
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
            Ok(CodeCheck::Accepted(()))
        })
        .await?
        .into_result()?;
    Ok(HttpResponse::NoContent().finish())
}
