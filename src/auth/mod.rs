//! Who is calling. A handler that needs a signed-in person takes a [`Bearer`] argument (the
//! token's signature and claims, checked without the database) and, inside its one database
//! closure, turns it into a [`CurrentUser`] — reading the account and session afresh, so logout,
//! password change and deactivation (of the account or of its organisation) take effect on the
//! very next request.

pub mod enrolment;
pub mod extract;
pub mod handlers;
pub mod password;
pub mod recovery;
pub mod reset;
pub mod sign_in;
pub mod throttle;
pub mod tokens;
pub mod totp;

use diesel::prelude::*;

use crate::db::schema::{sessions, users};
use crate::db::{now, DbConn};
use crate::error::{AppError, AppResult};
use crate::vocab::{AccountRole, Locale, Profession};

/// A verified access token, not yet checked against the database.
#[derive(Debug, Clone)]
pub struct Bearer {
    pub user_id: String,
    pub session_id: String,
    /// Where the request came from, for the audit trail.
    pub client_ip: Option<String>,
}

/// The signed-in person, as the database says now.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: String,
    pub organization_id: Option<String>,
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

    /// The caller's organisation, once the access policy let them act as a professional
    /// (`users::employer_of`).
    pub fn employer(&self) -> AppResult<&str> {
        crate::users::employer_of(self.organization_id.as_deref())
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
        type Row = (String, Option<String>, String, String, String, String, String, bool);
        let row: Option<Row> = sessions::table
            .inner_join(users::table)
            .filter(sessions::id.eq(&self.session_id))
            .filter(sessions::user_id.eq(&self.user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now()))
            .filter(users::active.eq(true))
            // A deactivated organisation's people are out at once, even before their sessions
            // are revoked in the same transaction as the deactivation.
            .filter(crate::users::employer_in_service())
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

pub use extract::client_ip;
