//! Sign-in, token refresh, logout, the caller's own account, password change and TOTP.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::enrolment;
use super::sign_in::{self, Credentials};
use super::{reset, tokens, Bearer};
use crate::api::Json;
use crate::auth::tokens::RefreshOutcome;
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

/// `POST /auth/login`. A wrong password, an unknown address, a missing or wrong second factor and
/// a deactivated account all get the same 401; a locked address gets 429 whether it exists or not
/// (see [`sign_in::sign_in`]).
pub async fn login(state: web::Data<AppState>, req: HttpRequest, body: Json<Login>) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let credentials = Credentials { email: body.email, password: body.password, totp_code: body.totp_code };
    let signed_in = sign_in::sign_in(&state, super::client_ip(&req), credentials).await?;
    Ok(no_store(HttpResponse::Ok()).json(signed_in.pair))
}

fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
    builder
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    pub email: String,
}

/// `POST /password-reset`: 202 and the same body whether the address has an account or not;
/// throttled per address and per client (`reset::request`).
pub async fn request_password_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<PasswordResetRequest>,
) -> AppResult<HttpResponse> {
    let email = body.into_inner().email;
    match reset::ask(&state, email, super::client_ip(&req)).await? {
        reset::Requested::Accepted => {
            Ok(no_store(HttpResponse::Accepted()).json(serde_json::json!({"status": "accepted"})))
        }
        reset::Requested::Locked(secs) => Err(AppError::too_many_requests(secs)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirm {
    pub token: String,
    pub new_password: String,
}

/// `POST /password-reset/confirm`: the token of the e-mail sets a new password (the usual rules,
/// hashed outside any transaction); every session of the account ends.
pub async fn confirm_password_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<PasswordResetConfirm>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    reset::set_password(&state, body.token, body.new_password, super::client_ip(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
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
    let ip = super::client_ip(&req);
    let signed_in = enrolment::change_password(&state, bearer, ip, body.current_password, body.new_password).await?;
    let pair = signed_in.pair;
    Ok(no_store(HttpResponse::Ok()).json(pair))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmPassword {
    pub password: String,
}

/// `POST /me/totp/recovery-codes`: ten new single-use recovery codes, shown this once.
pub async fn new_recovery_codes(
    state: web::Data<AppState>,
    req: HttpRequest,
    bearer: Bearer,
    body: Json<ConfirmPassword>,
) -> AppResult<HttpResponse> {
    let ip = super::client_ip(&req);
    let codes = enrolment::new_recovery_codes(&state, bearer, ip, body.into_inner().password).await?;
    Ok(no_store(HttpResponse::Created()).json(codes))
}

/// `GET /me/totp/recovery-codes`: how many unused recovery codes the caller has left.
pub async fn recovery_codes(state: web::Data<AppState>, bearer: Bearer) -> AppResult<HttpResponse> {
    let found = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            super::recovery::state(conn, &me.id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(found))
}

/// `POST /me/totp`: starts enrolment; the secret takes effect once a code confirms it.
pub async fn totp_enrol(
    state: web::Data<AppState>,
    req: HttpRequest,
    bearer: Bearer,
    body: Json<ConfirmPassword>,
) -> AppResult<HttpResponse> {
    let ip = super::client_ip(&req);
    let enrolment = enrolment::enrol(&state, bearer, ip, body.into_inner().password).await?;
    Ok(no_store(HttpResponse::Ok()).json(enrolment))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    pub code: String,
}

/// `POST /me/totp/confirm`: a code from the new secret switches two-factor sign-in on.
pub async fn totp_confirm(state: web::Data<AppState>, bearer: Bearer, body: Json<TotpCode>) -> AppResult<HttpResponse> {
    let user = enrolment::confirm(&state, bearer, body.into_inner().code).await?;
    Ok(HttpResponse::Ok().json(user.view(true)))
}

/// `DELETE /me/totp`: needs a current code; system administrators must keep it on.
pub async fn totp_disable(state: web::Data<AppState>, bearer: Bearer, body: Json<TotpCode>) -> AppResult<HttpResponse> {
    enrolment::turn_off(&state, bearer, body.into_inner().code).await?;
    Ok(HttpResponse::NoContent().finish())
}
