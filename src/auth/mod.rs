//! Who is calling. A handler that needs a signed-in person takes a [`Bearer`] argument (the
//! token's signature and claims, checked without the database) and, inside its one database
//! closure, turns it into a [`CurrentUser`] — reading the account and session afresh, so logout,
//! password change and deactivation (of the account or of its organisation) take effect on the
//! very next request.

pub mod handlers;
pub mod password;
pub mod throttle;
pub mod tokens;
pub mod totp;

use std::future::{ready, Ready};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use diesel::prelude::*;

use crate::db::schema::{organizations, sessions, users};
use crate::db::{now, DbConn};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::vocab::{AccountRole, Locale, Profession};

/// A verified access token, not yet checked against the database.
#[derive(Debug, Clone)]
pub struct Bearer {
    pub user_id: String,
    pub session_id: String,
    /// Where the request came from, for the audit trail.
    pub client_ip: Option<String>,
}

impl FromRequest for Bearer {
    type Error = AppError;
    type Future = Ready<Result<Bearer, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(bearer_from(req))
    }
}

fn bearer_from(req: &HttpRequest) -> AppResult<Bearer> {
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| AppError::internal("application state missing"))?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(AppError::invalid_token)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(AppError::invalid_token)?;
    let claims = state.keys.verify_access(token.trim())?;
    Ok(Bearer { user_id: claims.sub, session_id: claims.sid, client_ip: client_ip(req) })
}

/// The signed-in person, as the database says now.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub email: String,
    pub profession: Profession,
    pub role: AccountRole,
    pub locale: Locale,
    pub totp_enabled: bool,
    pub session_id: String,
    pub client_ip: Option<String>,
}

impl CurrentUser {
    pub fn is_system_admin(&self) -> bool {
        self.role == AccountRole::SystemAdmin
    }
}

impl Bearer {
    /// The caller, for any route: the session must be open and the account active, and a system
    /// administrator must have two-factor sign-in set up.
    pub fn user(&self, conn: &mut DbConn) -> AppResult<CurrentUser> {
        let me = self.user_allowing_missing_second_factor(conn)?;
        if me.is_system_admin() && !me.totp_enabled {
            return Err(AppError::two_factor_required());
        }
        Ok(me)
    }

    /// The caller, for the few routes a system administrator uses to set up two-factor sign-in.
    pub fn user_allowing_missing_second_factor(&self, conn: &mut DbConn) -> AppResult<CurrentUser> {
        type Row = (String, String, String, String, String, String, String, bool);
        let row: Option<Row> = sessions::table
            .inner_join(users::table.inner_join(organizations::table))
            .filter(sessions::id.eq(&self.session_id))
            .filter(sessions::user_id.eq(&self.user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now()))
            .filter(users::active.eq(true))
            // A deactivated organisation's people are out at once, even before their sessions
            // are revoked in the same transaction as the deactivation.
            .filter(organizations::active.eq(true))
            .select((
                users::id,
                users::organization_id,
                users::name,
                users::email,
                users::profession,
                users::role,
                users::locale,
                users::totp_enabled,
            ))
            .first(conn)
            .optional()?;
        let (id, organization_id, name, email, profession, role, locale, totp_enabled) =
            row.ok_or_else(AppError::invalid_token)?;
        Ok(CurrentUser {
            id,
            organization_id,
            name,
            email,
            profession: Profession::from_db(&profession)?,
            role: AccountRole::from_db(&role)?,
            locale: Locale::parse(&locale).unwrap_or(Locale::Ja),
            totp_enabled,
            session_id: self.session_id.clone(),
            client_ip: self.client_ip.clone(),
        })
    }
}

/// The client's address as the server saw it (for sessions and the audit trail).
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_string())
}
