//! Assigning and removing ward coordinating physicians. An assignment grants read access to
//! every patient of the ward, so each one, and each removal, is kept in the audit trail.

use diesel::prelude::*;

use super::{coordinators_of, Ward};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::CurrentUser;
use crate::db::schema::ward_coordinators;
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};
use crate::mail::{self, Mailer};
use crate::patients::team::person_kind;
use crate::users::User;

/// How the audit trail names an assignment.
fn assignment_id(ward_code: &str, user_id: &str) -> String {
    format!("{ward_code}/{user_id}")
}

/// Makes `user` a coordinator of `ward` (the caller was allowed by
/// `access::coordinator_assignment`). Idempotent: `false` when they already were one. The
/// ward's other coordinators are told of a new one.
pub fn assign(conn: &mut DbConn, me: &CurrentUser, mailer: &Mailer, ward: Ward, user: &User) -> AppResult<bool> {
    let others = coordinators_of(conn, &ward.code)?;
    let row = (
        ward_coordinators::ward_code.eq(&ward.code),
        ward_coordinators::user_id.eq(&user.id),
        ward_coordinators::assigned_by.eq(&me.id),
        ward_coordinators::assigned_at.eq(now()),
    );
    // An upsert: two concurrent assignments of the same person insert once.
    let inserted = crate::per_backend!(conn, |c| diesel::insert_into(ward_coordinators::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c))?;
    if inserted == 0 {
        return Ok(false);
    }
    audit::record(
        conn,
        me,
        Event::new(Action::Create, Resource::WardCoordinator, Some(&assignment_id(&ward.code, &user.id)), None),
    )?;
    let notice = mail::Notice::CoordinatorAssigned {
        coordinator: person_kind(conn, user.profession, user.organization_id.as_deref())?,
        actor: person_kind(conn, me.profession, me.organization_id.as_deref())?,
        assigned_at: now(),
        ward_name: ward.name,
        ward_name_en: ward.name_en,
    };
    mail::notify(conn, mailer, &others, &notice, None, &format!("coordinator:{}:{}:{}", ward.code, user.id, new_id()))?;
    Ok(true)
}

/// Ends one assignment (the caller was allowed by `access::administer_system`); 404 when there
/// is none.
pub fn remove(conn: &mut DbConn, me: &CurrentUser, ward_code: &str, user_id: &str) -> AppResult<()> {
    let n = diesel::delete(
        ward_coordinators::table
            .filter(ward_coordinators::ward_code.eq(ward_code))
            .filter(ward_coordinators::user_id.eq(user_id)),
    )
    .execute(conn)?;
    if n == 0 {
        return Err(AppError::not_found());
    }
    audit::record(
        conn,
        me,
        Event::new(Action::Delete, Resource::WardCoordinator, Some(&assignment_id(ward_code, user_id)), None),
    )
}

/// Ends every coordinator assignment of a person (their profession stopped being physician, or
/// they left their organisation), each audited as a removal by the one who changed it, with
/// `why`. Returns how many ended.
pub fn end_assignments_of(conn: &mut DbConn, me: &CurrentUser, user_id: &str, why: &str) -> AppResult<usize> {
    let codes: Vec<String> = ward_coordinators::table
        .filter(ward_coordinators::user_id.eq(user_id))
        .select(ward_coordinators::ward_code)
        .load(conn)?;
    diesel::delete(ward_coordinators::table.filter(ward_coordinators::user_id.eq(user_id))).execute(conn)?;
    for code in &codes {
        audit::record(
            conn,
            me,
            Event::new(Action::Delete, Resource::WardCoordinator, Some(&assignment_id(code, user_id)), None)
                .detail(why),
        )?;
    }
    Ok(codes.len())
}
