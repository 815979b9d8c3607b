//! Accounts: the people of an organisation, their profession and what they may administer.

pub mod accounts;
pub mod handlers;
pub mod offboarding;
pub mod preferences;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::api::{self, Page};
use crate::db::schema::{organizations, users};
use crate::db::{new_id, now, DbConn};
use crate::error::AppResult;
use crate::vocab::{AccountRole, FlagNotifications, Locale, Profession};

/// The employer half of "in service": an account of an active organisation, or of none (the
/// patient and their family belong to no organisation).
#[diesel::dsl::auto_type(no_type_alias)]
pub fn employer_in_service() -> _ {
    users::organization_id.is_null().or(users::organization_id
        .eq_any(organizations::table.filter(organizations::active.eq(true)).select(organizations::id.nullable())))
}

/// The organisation of an account the access policy has already let act as a professional (a
/// member joining a team, a note's author, a case's hospital). Not a decision: an account of no
/// organisation here is a bug, answered as an internal error; the decisions (403, 422) are
/// `access::my_organization` and `access::employer`.
pub fn employer_of(organization_id: Option<&str>) -> AppResult<&str> {
    organization_id.ok_or_else(|| crate::error::AppError::internal("a professional's account of no organisation"))
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub organization_id: Option<String>,
    pub email: String,
    pub name: String,
    pub name_kana: Option<String>,
    pub profession: Profession,
    pub role: AccountRole,
    pub active: bool,
    pub locale: Locale,
    pub password_hash: String,
    pub password_changed_at: NaiveDateTime,
    pub totp_secret: Option<String>,
    pub totp_enabled: bool,
    pub totp_last_step: Option<i64>,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub flag_notifications: FlagNotifications,
}

/// A user as the API shows them. `email`, `role`, `totp_enabled` and the alert preference are
/// shown to the person, to administrators of their organisation and to system administrators
/// (`access::sees_account_details`); the directory shows name and profession only.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub id: String,
    /// `None` for the patient and their family, who belong to no organisation.
    pub organization_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub name: String,
    pub name_kana: Option<String>,
    pub profession: Profession,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<AccountRole>,
    pub active: bool,
    pub locale: Locale,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp_enabled: Option<bool>,
    /// Which deterioration alerts this person receives by e-mail; shown with the e-mail address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag_notifications: Option<FlagNotifications>,
    pub version: i32,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
}

impl User {
    /// See [`employer_of`].
    pub fn employer(&self) -> AppResult<&str> {
        employer_of(self.organization_id.as_deref())
    }

    /// `details`: the e-mail address, role, two-factor state and alert preference.
    pub fn view(&self, details: bool) -> UserView {
        UserView {
            id: self.id.clone(),
            organization_id: self.organization_id.clone(),
            email: details.then(|| self.email.clone()),
            name: self.name.clone(),
            name_kana: self.name_kana.clone(),
            profession: self.profession,
            role: details.then_some(self.role),
            active: self.active,
            locale: self.locale,
            totp_enabled: details.then_some(self.totp_enabled),
            flag_notifications: details.then_some(self.flag_notifications),
            version: self.version,
            created_at: self.created_at,
        }
    }
}

pub struct NewUser<'a> {
    pub organization_id: Option<&'a str>,
    pub email: &'a str,
    pub name: &'a str,
    pub name_kana: Option<&'a str>,
    pub profession: Profession,
    pub role: AccountRole,
    pub locale: Locale,
    pub password_hash: String,
}

pub fn insert(conn: &mut DbConn, new: NewUser<'_>) -> AppResult<User> {
    let t = now();
    let user = User {
        id: new_id(),
        organization_id: new.organization_id.map(Into::into),
        email: api::normalize_email(new.email),
        name: new.name.into(),
        name_kana: new.name_kana.map(Into::into),
        profession: new.profession,
        role: new.role,
        active: true,
        locale: new.locale,
        password_hash: new.password_hash,
        password_changed_at: t,
        totp_secret: None,
        totp_enabled: false,
        totp_last_step: None,
        version: 1,
        created_at: t,
        updated_at: t,
        flag_notifications: FlagNotifications::All,
    };
    diesel::insert_into(users::table).values(&user).execute(conn)?;
    Ok(user)
}

pub fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<User>> {
    // No id holds a NUL, and PostgreSQL text cannot even be compared with one.
    if id.contains('\0') {
        return Ok(None);
    }
    Ok(users::table.find(id).select(User::as_select()).first(conn).optional()?)
}

/// The account, its row locked for the rest of the transaction (PostgreSQL `FOR UPDATE`; a
/// SQLite transaction already holds the database's one write lock), so that two requests
/// changing it at once take turns and the second sees what the first did.
pub fn find_for_update(conn: &mut DbConn, id: &str) -> AppResult<Option<User>> {
    if id.contains('\0') {
        return Ok(None);
    }
    Ok(match conn {
        DbConn::Postgres(c) => users::table.find(id).select(User::as_select()).for_update().first(c).optional()?,
        DbConn::Sqlite(c) => users::table.find(id).select(User::as_select()).first(c).optional()?,
    })
}

/// An account that may act and be told things now: active, in an active organisation. A
/// deactivated organisation's people are out of the service at once (the access policy, src/access.rs).
pub fn find_in_service(conn: &mut DbConn, id: &str) -> AppResult<Option<User>> {
    if id.contains('\0') {
        return Ok(None);
    }
    Ok(users::table
        .filter(users::id.eq(id))
        .filter(users::active.eq(true))
        .filter(employer_in_service())
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

/// Of these accounts, those in service (active, in an active organisation), in the order given.
pub fn in_service(conn: &mut DbConn, ids: &[String]) -> AppResult<Vec<String>> {
    let found: Vec<String> = users::table
        .filter(users::id.eq_any(ids))
        .filter(users::active.eq(true))
        .filter(employer_in_service())
        .select(users::id)
        .load(conn)?;
    Ok(ids.iter().filter(|id| found.contains(id)).cloned().collect())
}

/// The account an address names: the active one, or else the newest deactivated one (an
/// address can be used again once its account is deactivated, so several may share it).
pub fn find_by_email(conn: &mut DbConn, email: &str) -> AppResult<Option<User>> {
    Ok(users::table
        .filter(users::email.eq(api::normalize_email(email)))
        .order((users::active.desc(), users::created_at.desc(), users::id.desc()))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

/// Whether an active account has the address (a deactivated one leaves it free).
pub fn email_taken(conn: &mut DbConn, email: &str) -> AppResult<bool> {
    Ok(find_by_email(conn, email)?.is_some_and(|u| u.active))
}

const EMAIL_IN_USE_JA: &str = "このメールアドレスは、使用中の別のアカウントに登録されています。";
const EMAIL_IN_USE_EN: &str = "This e-mail address belongs to another account in use.";

/// 422 naming `email` (code `taken`) for a new account whose address an active account has.
pub fn email_taken_error() -> crate::error::AppError {
    crate::error::AppError::field("email", "taken", EMAIL_IN_USE_JA, EMAIL_IN_USE_EN)
}

/// 409 for reactivating an account whose address a new active account has taken meanwhile.
pub fn email_in_use() -> crate::error::AppError {
    crate::error::AppError::conflict(EMAIL_IN_USE_JA, EMAIL_IN_USE_EN)
}

/// The users of an organisation, in creation order, one page.
pub fn list_by_organization(
    conn: &mut DbConn,
    organization_id: &str,
    active_only: bool,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<User>> {
    let mut q = users::table.filter(users::organization_id.eq(organization_id)).into_boxed();
    if active_only {
        q = q.filter(users::active.eq(true));
    }
    if let Some(after) = after {
        q = q.filter(users::id.gt(after.to_string()));
    }
    Ok(q.order(users::id.asc()).limit(limit + 1).select(User::as_select()).load(conn)?)
}

pub fn page(rows: Vec<User>, limit: i64, details: impl Fn(&User) -> bool) -> Page<UserView> {
    let views: Vec<UserView> = rows.iter().map(|u| u.view(details(u))).collect();
    api::page(views, limit, |u| u.id.clone())
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub name: Option<String>,
    pub name_kana: Option<Option<String>>,
    pub profession: Option<String>,
    pub role: Option<String>,
    pub active: Option<bool>,
    pub locale: Option<String>,
    pub flag_notifications: Option<String>,
}

/// Applies changes and bumps the version; `false` when the version did not match.
pub fn update(conn: &mut DbConn, id: &str, expected_version: i32, changes: &UserChanges) -> AppResult<bool> {
    let n = diesel::update(users::table.filter(users::id.eq(id)).filter(users::version.eq(expected_version)))
        .set((changes, users::version.eq(expected_version + 1), users::updated_at.eq(now())))
        .execute(conn)?;
    Ok(n == 1)
}

/// Replaces the password hash only while it is still `expected`: the current password was
/// checked outside the transaction, so a change made meanwhile must not be overwritten.
/// Returns whether it was replaced.
pub fn replace_password(conn: &mut DbConn, id: &str, expected: &str, password_hash: &str) -> AppResult<bool> {
    let t = now();
    let changed = diesel::update(users::table.find(id).filter(users::password_hash.eq(expected)))
        .set((
            users::password_hash.eq(password_hash),
            users::password_changed_at.eq(t),
            users::version.eq(users::version + 1),
            users::updated_at.eq(t),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Sets a new password hash (a reset by e-mail: no current password to compare).
pub fn set_password(conn: &mut DbConn, id: &str, password_hash: &str) -> AppResult<()> {
    let t = now();
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(password_hash),
            users::password_changed_at.eq(t),
            users::version.eq(users::version + 1),
            users::updated_at.eq(t),
        ))
        .execute(conn)?;
    Ok(())
}

/// Stores a secret waiting for confirmation (`enabled = false`) or switches TOTP on or off.
pub fn set_totp(
    conn: &mut DbConn,
    id: &str,
    secret: Option<&str>,
    enabled: bool,
    last_step: Option<i64>,
) -> AppResult<()> {
    diesel::update(users::table.find(id))
        .set((
            users::totp_secret.eq(secret),
            users::totp_enabled.eq(enabled),
            users::totp_last_step.eq(last_step),
            users::updated_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn set_totp_last_step(conn: &mut DbConn, id: &str, step: i64) -> AppResult<()> {
    diesel::update(users::table.find(id)).set(users::totp_last_step.eq(Some(step))).execute(conn)?;
    Ok(())
}

/// Active system administrators in active organisations, optionally leaving one organisation
/// out (to ask whether deactivating it would leave the service without any).
pub fn count_system_admins(conn: &mut DbConn, except_organization: Option<&str>) -> AppResult<i64> {
    let mut q = users::table
        .inner_join(organizations::table)
        .filter(users::role.eq(AccountRole::SystemAdmin))
        .filter(users::active.eq(true))
        .filter(organizations::active.eq(true))
        .into_boxed();
    if let Some(org) = except_organization {
        q = q.filter(users::organization_id.ne(org.to_string()));
    }
    Ok(q.count().get_result(conn)?)
}
