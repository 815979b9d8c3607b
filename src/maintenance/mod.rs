//! What an office's operator runs beside the service: `renkei mail test` (is e-mail set up?),
//! `renkei backup` (a consistent copy of the SQLite default while the service runs), and the
//! start log's next step when no administrator exists yet.

pub mod backup;
pub mod mail_test;

use diesel::prelude::*;

use crate::db::schema::users;
use crate::db::DbConn;
use crate::error::AppResult;
use crate::vocab::AccountRole;

/// The command that makes the first system administrator, as the start log and the README say it.
pub const CREATE_ADMIN_COMMAND: &str =
    "echo 'a-long-passphrase' | renkei admin create --email admin@example.jp --name 管理者 --password-stdin";

/// Whether any active system administrator exists (without one nobody can create organisations).
pub fn system_admin_exists(conn: &mut DbConn) -> AppResult<bool> {
    let count: i64 = users::table
        .filter(users::role.eq(AccountRole::SystemAdmin))
        .filter(users::active.eq(true))
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}
