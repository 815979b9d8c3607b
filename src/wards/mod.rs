//! Wards (区): identified by local government code; data, not code — another city loads its own.
//! The ward coordinating physicians (区在宅療養調整医師) read the ward's patients; who they are
//! is asked here, and assigning them is `coordinators`.

pub mod coordinators;
pub mod handlers;

use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{ward_coordinators, wards};
use crate::db::DbConn;
use crate::error::AppResult;

#[derive(Queryable, Selectable, Serialize, Debug)]
#[diesel(table_name = wards)]
pub struct Ward {
    pub code: String,
    pub city_code: String,
    pub name: String,
    pub name_en: String,
}

pub fn all(conn: &mut DbConn) -> AppResult<Vec<Ward>> {
    Ok(wards::table.order(wards::code.asc()).select(Ward::as_select()).load(conn)?)
}

pub fn find(conn: &mut DbConn, code: &str) -> AppResult<Option<Ward>> {
    Ok(wards::table.find(code).select(Ward::as_select()).first(conn).optional()?)
}

// ---------------------------------------------------------------------------------------------
// Ward coordinating physicians: read-only access to the ward's patients.

pub fn is_coordinator(conn: &mut DbConn, ward_code: &str, user_id: &str) -> AppResult<bool> {
    let n: i64 = ward_coordinators::table
        .filter(ward_coordinators::ward_code.eq(ward_code))
        .filter(ward_coordinators::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// The wards a user is a coordinating physician of, by code.
pub fn coordinated_by(conn: &mut DbConn, user_id: &str) -> AppResult<Vec<Ward>> {
    Ok(wards::table
        .inner_join(ward_coordinators::table.on(ward_coordinators::ward_code.eq(wards::code)))
        .filter(ward_coordinators::user_id.eq(user_id))
        .order(wards::code.asc())
        .select(Ward::as_select())
        .load(conn)?)
}

/// When this user was made a coordinator of the ward, if they are one.
pub fn coordinator_since(
    conn: &mut DbConn,
    ward_code: &str,
    user_id: &str,
) -> AppResult<Option<chrono::NaiveDateTime>> {
    Ok(ward_coordinators::table
        .filter(ward_coordinators::ward_code.eq(ward_code))
        .filter(ward_coordinators::user_id.eq(user_id))
        .select(ward_coordinators::assigned_at)
        .first(conn)
        .optional()?)
}

/// The coordinators of a ward who can be reached (for escalations and notices): active accounts
/// of active organisations.
pub fn coordinators_of(conn: &mut DbConn, ward_code: &str) -> AppResult<Vec<String>> {
    use crate::db::schema::{organizations, users};
    Ok(ward_coordinators::table
        .inner_join(users::table.on(users::id.eq(ward_coordinators::user_id)))
        .inner_join(organizations::table.on(organizations::id.nullable().eq(users::organization_id)))
        .filter(ward_coordinators::ward_code.eq(ward_code))
        .filter(users::active.eq(true))
        .filter(organizations::active.eq(true))
        .select(ward_coordinators::user_id)
        .load(conn)?)
}
