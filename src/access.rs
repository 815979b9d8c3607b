//! THE access policy (DESIGN.md §5): every handler asks here, nothing else decides.
//!
//! Account administration: system administrators manage organisations and any account; an
//! organisation's administrators manage the accounts of their own organisation only; a person
//! may change their own name and language. Roles never grant patient data.

use crate::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::users::User;
use crate::vocab::AccountRole;

fn refuse() -> AppError {
    AppError::forbidden(
        "この操作を行う権限がありません。",
        "You do not have permission to do this.",
    )
}

pub fn create_organization(me: &CurrentUser) -> AppResult<()> {
    if me.is_system_admin() {
        Ok(())
    } else {
        Err(refuse())
    }
}

/// Watching e-mail delivery and putting given-up e-mails back in the queue: operators only.
pub fn operate_outbox(me: &CurrentUser) -> AppResult<()> {
    if me.is_system_admin() {
        Ok(())
    } else {
        Err(refuse())
    }
}

/// Changing an organisation's directory entry.
pub fn update_organization(me: &CurrentUser, organization_id: &str) -> AppResult<()> {
    if me.is_system_admin() || is_admin_of(me, organization_id) {
        Ok(())
    } else {
        Err(refuse())
    }
}

/// Whether the caller administers the accounts of this organisation (and so sees e-mail
/// addresses and inactive accounts).
pub fn manages_accounts_of(me: &CurrentUser, organization_id: &str) -> bool {
    me.is_system_admin() || is_admin_of(me, organization_id)
}

fn is_admin_of(me: &CurrentUser, organization_id: &str) -> bool {
    me.role == AccountRole::OrgAdmin && me.organization_id == organization_id
}

/// Creating an account with a role in an organisation. Only a system administrator makes
/// system administrators.
pub fn create_user(me: &CurrentUser, organization_id: &str, role: AccountRole) -> AppResult<()> {
    if me.is_system_admin() {
        return Ok(());
    }
    if is_admin_of(me, organization_id) && role != AccountRole::SystemAdmin {
        return Ok(());
    }
    Err(refuse())
}

/// What the caller may change about an account.
#[derive(Debug, PartialEq, Eq)]
pub enum UserEdit {
    /// Everything, including role and active state.
    Administer,
    /// Name, kana and language only.
    OwnProfile,
}

pub fn edit_user(me: &CurrentUser, target: &User) -> AppResult<UserEdit> {
    if manages_accounts_of(me, &target.organization_id) {
        // An organisation administrator cannot touch a system administrator's account.
        if !me.is_system_admin() && target.role == AccountRole::SystemAdmin.as_str() {
            return Err(refuse());
        }
        return Ok(UserEdit::Administer);
    }
    if me.id == target.id {
        return Ok(UserEdit::OwnProfile);
    }
    Err(refuse())
}

/// Granting a role through an edit.
pub fn grant_role(me: &CurrentUser, role: AccountRole) -> AppResult<()> {
    if role == AccountRole::SystemAdmin && !me.is_system_admin() {
        Err(refuse())
    } else {
        Ok(())
    }
}
