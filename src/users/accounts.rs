//! Editing an account, with what follows from the edit: a physician who stops being one stops
//! coordinating wards, and a deactivated account loses its sessions at once.

use serde::Deserialize;

use super::{User, UserChanges};
use crate::auth::{tokens, CurrentUser};
use crate::db::DbConn;
use crate::error::{AppError, AppResult};
use crate::vocab::{AccountRole, FlagNotifications, Locale, Profession};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub name_kana: Option<Option<String>>,
    pub profession: Option<Profession>,
    pub role: Option<AccountRole>,
    pub active: Option<bool>,
    pub locale: Option<Locale>,
    pub flag_notifications: Option<FlagNotifications>,
}

/// Applies an edit the caller was allowed by `access::user_edit`, at the version the caller saw
/// (412 when stale). The service always keeps one active system administrator (409).
pub fn edit(
    conn: &mut DbConn,
    me: &CurrentUser,
    user: &User,
    expected: Option<i32>,
    input: UpdateUser,
) -> AppResult<User> {
    if expected.is_some_and(|v| v != user.version) {
        return Err(AppError::precondition_failed());
    }
    let was_admin = user.role == AccountRole::SystemAdmin && user.active;
    let stays_admin = input.role.map_or(user.role == AccountRole::SystemAdmin, |r| r == AccountRole::SystemAdmin)
        && input.active.unwrap_or(user.active);
    if was_admin && !stays_admin && super::count_system_admins(conn, None)? <= 1 {
        return Err(AppError::conflict(
            "最後のシステム管理者は無効化・変更できません。",
            "The last system administrator cannot be deactivated or demoted.",
        ));
    }
    if input.active == Some(true) && !user.active && super::email_taken(conn, &user.email)? {
        // Its address went to a new account while it was deactivated.
        return Err(super::email_in_use());
    }
    let changes = UserChanges {
        name: input.name,
        name_kana: input.name_kana,
        profession: input.profession.map(|p| p.as_str().to_string()),
        role: input.role.map(|r| r.as_str().to_string()),
        active: input.active,
        locale: input.locale.map(|l| l.as_str().to_string()),
        flag_notifications: input.flag_notifications.map(|f| f.as_str().to_string()),
    };
    if !super::update(conn, &user.id, user.version, &changes)? {
        return Err(AppError::precondition_failed());
    }
    if input.profession.is_some_and(|p| p != Profession::Physician) && user.profession == Profession::Physician {
        // Coordinating physicians are physicians: the assignments end with the profession.
        crate::wards::coordinators::end_assignments_of(conn, me, &user.id, "profession changed")?;
    }
    if input.active == Some(false) {
        // Deactivation ends every session at once.
        tokens::revoke_all_sessions(conn, &user.id, "deactivated")?;
    }
    super::find(conn, &user.id)?.ok_or_else(AppError::not_found)
}
