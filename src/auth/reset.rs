//! A forgotten password, reset by e-mail. A request for an address answers the same whether an
//! account has it or not; for an account in service it queues an e-mail carrying a one-time
//! link token: 32 random bytes, stored only as their SHA-256, valid for 30 minutes, used once.
//! Requests are throttled per address and per client on the sign-in throttle's counters (their
//! own keys, so asking for a reset never locks anyone's sign-in). Confirming sets the new
//! password under the usual rules and ends every session of the account. A new account made
//! without a password gets the same kind of link in its welcome e-mail, valid for days.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::throttle::{self, Rule};
use super::tokens::{random_token, sha256_hex};
use crate::audit::{self, Action, Event, Resource};
use crate::db::schema::password_reset_tokens;
use crate::db::{now, DbConn};
use crate::error::{AppError, AppResult};
use crate::mail::{self, Mailer, Notice};
use crate::state::AppState;
use crate::users::{self, User};

/// How long a link works.
pub const TOKEN_MINUTES: i64 = 30;

/// How long a new account's link works: as long as a care-team invitation's (its people are
/// invited the same way, and may not read their mail every day).
pub const WELCOME_DAYS: i64 = 7;

/// Requests per address before it is locked (a minute, doubling up to fifteen, like sign-in).
const ADDRESS: Rule = throttle::ACCOUNT;

/// The counter of reset requests for an address (apart from its sign-in counter).
fn address_key(email: &str) -> String {
    throttle::email_key(&format!("password-reset:{}", email.trim().to_lowercase()))
}

/// The counter of reset requests from one client, across every address it names.
fn client_key(ip: &str) -> String {
    throttle::client_key(&format!("password-reset:{ip}"))
}

/// What a request came to: `Locked` is answered 429 whether the address exists or not.
pub enum Requested {
    Accepted,
    Locked(u64),
}

/// Counts the request and, for an account in service, issues a token and queues its e-mail, in
/// one transaction. Every request is counted (there is no "success" to refund).
pub fn request(
    conn: &mut DbConn,
    mailer: &Mailer,
    email: &str,
    ip: Option<&str>,
    client_budget: Rule,
) -> AppResult<Requested> {
    let mut counters = vec![(address_key(email), ADDRESS)];
    if let Some(ip) = ip {
        counters.push((client_key(ip), client_budget));
    }
    if let throttle::Reservation::Locked(secs) = throttle::reserve(conn, &counters, &[])? {
        return Ok(Requested::Locked(secs));
    }
    let Some(found) = users::find_by_email(conn, email)? else { return Ok(Requested::Accepted) };
    let Some(user) = users::find_in_service(conn, &found.id)? else { return Ok(Requested::Accepted) };
    let (token, hash, expires_at) = issue(conn, &user.id, Duration::minutes(TOKEN_MINUTES), ip)?;
    let notice = Notice::PasswordReset { token, expires_at };
    let email = mailer.to_user(&user, &notice)?.once(format!("password_reset:{hash}"));
    mail::outbox::enqueue(conn, email)?;
    Ok(Requested::Accepted)
}

/// A new account made without a password: its owner is e-mailed a link to set one, valid as
/// long as a care-team invitation (the same one-time, hashed link as a reset). Until it is
/// used, no password signs in to the account.
pub fn welcome(conn: &mut DbConn, mailer: &Mailer, user: &User) -> AppResult<()> {
    let valid = Duration::days(WELCOME_DAYS);
    let (token, hash, expires_at) = issue(conn, &user.id, valid, None)?;
    let notice = Notice::AccountCreated { token, expires_at };
    let email = mailer.to_user(user, &notice)?.once(format!("account_created:{hash}"));
    mail::outbox::enqueue(conn, email)?;
    Ok(())
}

/// A one-time link token for the account: the token for the e-mail, the hash kept, and when it
/// stops working.
fn issue(
    conn: &mut DbConn,
    user_id: &str,
    valid: Duration,
    ip: Option<&str>,
) -> AppResult<(String, String, NaiveDateTime)> {
    let token = random_token(32);
    let t = now();
    let expires_at = t + valid;
    let hash = sha256_hex(&token);
    diesel::insert_into(password_reset_tokens::table)
        .values((
            password_reset_tokens::token_hash.eq(&hash),
            password_reset_tokens::user_id.eq(user_id),
            password_reset_tokens::created_at.eq(t),
            password_reset_tokens::expires_at.eq(expires_at),
            password_reset_tokens::client_ip.eq(ip),
        ))
        .execute(conn)?;
    Ok((token, hash, expires_at))
}

/// The whole of asking for a link, for the API and the console: the address checked (422 naming
/// `email`), the request counted and, for an account in service, the e-mail queued.
pub async fn ask(state: &AppState, email: String, ip: Option<String>) -> AppResult<Requested> {
    let mut check = crate::api::Check::new();
    check.email("email", &email);
    check.finish()?;
    let mailer = state.mail.clone();
    let budget = throttle::budget(state.config.login_client_failures);
    state.db.run(move |conn| request(conn, &mailer, &email, ip.as_deref(), budget)).await
}

/// The whole of setting a password with a link's token, for the API and the console: the
/// holder is found, the password checked under the usual rules (422 naming `new_password`) and
/// hashed outside any transaction, then the token is used.
pub async fn set_password(state: &AppState, token: String, new_password: String, ip: Option<String>) -> AppResult<()> {
    let presented = token.clone();
    let user = state.db.run(move |conn| holder(conn, &presented)).await?;
    super::password::check_policy("new_password", &new_password, &user.email, &user.name)?;
    let hash = super::password::hash_bounded(new_password).await?;
    state.db.run(move |conn| confirm(conn, &token, &user, &hash, ip)).await
}

fn invalid_token() -> AppError {
    AppError::field(
        "token",
        "invalid_or_expired",
        "このリンクは無効か、有効期限が切れています。もう一度パスワードの再設定を申し込んでください。",
        "This link is not valid or has expired. Please ask for a new password reset.",
    )
}

/// The account a token resets, while the token is unused and unexpired and the account in
/// service; otherwise 422 naming `token`.
pub fn holder(conn: &mut DbConn, presented: &str) -> AppResult<User> {
    if !crate::auth::tokens::is_link_token(presented) {
        // No link ever carries such a token.
        return Err(invalid_token());
    }
    let found: Option<(String, NaiveDateTime)> = password_reset_tokens::table
        .filter(password_reset_tokens::token_hash.eq(sha256_hex(presented)))
        .filter(password_reset_tokens::used_at.is_null())
        .select((password_reset_tokens::user_id, password_reset_tokens::expires_at))
        .first(conn)
        .optional()?;
    let Some((user_id, _)) = found.filter(|(_, e)| *e > now()) else { return Err(invalid_token()) };
    users::find_in_service(conn, &user_id)?.ok_or_else(invalid_token)
}

/// Uses the token (once: a second use finds it used) and sets the password hashed outside the
/// transaction; every token and session of the account ends. 422 naming `token` when the token
/// was used or expired meanwhile.
pub fn confirm(
    conn: &mut DbConn,
    presented: &str,
    user: &User,
    password_hash: &str,
    ip: Option<String>,
) -> AppResult<()> {
    let t = now();
    let claimed = diesel::update(
        password_reset_tokens::table
            .filter(password_reset_tokens::token_hash.eq(sha256_hex(presented)))
            .filter(password_reset_tokens::user_id.eq(&user.id))
            .filter(password_reset_tokens::used_at.is_null())
            .filter(password_reset_tokens::expires_at.gt(t)),
    )
    .set(password_reset_tokens::used_at.eq(Some(t)))
    .execute(conn)?;
    if claimed != 1 || users::find_in_service(conn, &user.id)?.is_none() {
        return Err(invalid_token());
    }
    // The other links of the account stop working too.
    diesel::update(
        password_reset_tokens::table
            .filter(password_reset_tokens::user_id.eq(&user.id))
            .filter(password_reset_tokens::used_at.is_null()),
    )
    .set(password_reset_tokens::used_at.eq(Some(t)))
    .execute(conn)?;
    users::set_password(conn, &user.id, password_hash)?;
    super::tokens::revoke_all_sessions(conn, &user.id, "password_reset")?;
    audit::append(
        conn,
        Some(&user.id),
        ip,
        Event::new(Action::Update, Resource::User, Some(&user.id), None).detail("password reset by e-mail"),
    )
}
