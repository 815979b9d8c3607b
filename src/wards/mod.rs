//! Wards (区): identified by local government code; data, not code — another city loads its own.

use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::Serialize;

use crate::audit::Resource;
use crate::auth::Bearer;
use crate::db::schema::wards;
use crate::db::DbConn;
use crate::error::AppResult;
use crate::state::AppState;

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

#[derive(Serialize)]
struct WardList {
    items: Vec<Ward>,
}

/// `GET /wards`: every signed-in user may read the list.
pub async fn list(state: web::Data<AppState>, bearer: Bearer) -> AppResult<HttpResponse> {
    let items = state
        .db
        .run(move |conn| {
            bearer.user(conn)?;
            all(conn)
        })
        .await?;
    Ok(HttpResponse::Ok().json(WardList { items }))
}

// ---------------------------------------------------------------------------------------------
// Ward coordinating physicians (区在宅療養調整医師): read-only access to the ward's patients.

use crate::db::schema::ward_coordinators;

pub fn is_coordinator(conn: &mut DbConn, ward_code: &str, user_id: &str) -> AppResult<bool> {
    let n: i64 = ward_coordinators::table
        .filter(ward_coordinators::ward_code.eq(ward_code))
        .filter(ward_coordinators::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
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
        .inner_join(organizations::table.on(organizations::id.eq(users::organization_id)))
        .filter(ward_coordinators::ward_code.eq(ward_code))
        .filter(users::active.eq(true))
        .filter(organizations::active.eq(true))
        .select(ward_coordinators::user_id)
        .load(conn)?)
}

/// Ends every coordinator assignment of a person (their profession stopped being physician),
/// each audited as a removal by the one who changed it.
pub fn end_assignments_of(conn: &mut DbConn, me: &crate::auth::CurrentUser, user_id: &str) -> AppResult<()> {
    let codes: Vec<String> = ward_coordinators::table
        .filter(ward_coordinators::user_id.eq(user_id))
        .select(ward_coordinators::ward_code)
        .load(conn)?;
    diesel::delete(ward_coordinators::table.filter(ward_coordinators::user_id.eq(user_id))).execute(conn)?;
    for code in codes {
        crate::audit::record(
            conn,
            me,
            crate::audit::Event::new(
                crate::audit::Action::Delete,
                Resource::WardCoordinator,
                Some(&format!("{code}/{user_id}")),
                None,
            )
            .detail("profession changed"),
        )?;
    }
    Ok(())
}

/// `PUT /wards/{code}/coordinators/{user_id}` (system administrators, for another person who is
/// a physician): idempotent. The ward's other coordinators are told of a new one.
pub async fn assign_coordinator(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<(String, crate::api::Id)>,
) -> AppResult<HttpResponse> {
    let (code, user_id) = path.into_inner();
    let user_id = user_id.into_string();
    let mailer = state.mail.clone();
    let (created, _) = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            crate::access::administer_system(&me)?;
            let ward = wards::table
                .find(&code)
                .select(Ward::as_select())
                .first(conn)
                .optional()?
                .ok_or_else(crate::error::AppError::not_found)?;
            let user = crate::users::find_in_service(conn, &user_id)?.ok_or_else(crate::error::AppError::not_found)?;
            crate::access::assign_coordinator(conn, &me, &code, &user)?;
            let others = coordinators_of(conn, &code)?;
            let row = (
                ward_coordinators::ward_code.eq(&code),
                ward_coordinators::user_id.eq(&user_id),
                ward_coordinators::assigned_by.eq(&me.id),
                ward_coordinators::assigned_at.eq(crate::db::now()),
            );
            // An upsert: two concurrent assignments of the same person insert once.
            let inserted = crate::per_backend!(conn, |c| diesel::insert_into(ward_coordinators::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(c))?;
            if inserted == 0 {
                return Ok((false, 0));
            }
            // It grants read access to every patient of the ward: keep it in the trail.
            crate::audit::record(
                conn,
                &me,
                crate::audit::Event::new(
                    crate::audit::Action::Create,
                    Resource::WardCoordinator,
                    Some(&format!("{code}/{user_id}")),
                    None,
                ),
            )?;
            let notice = crate::mail::Notice::CoordinatorAssigned {
                ward_name: ward.name,
                ward_name_en: ward.name_en,
                coordinator: crate::patients::team::person_kind(conn, &user.profession, &user.organization_id)?,
                actor: crate::patients::team::person_kind(conn, me.profession.as_str(), &me.organization_id)?,
                assigned_at: crate::db::now(),
            };
            let queued = crate::mail::notify(
                conn,
                &mailer,
                &others,
                &notice,
                None,
                &format!("coordinator:{code}:{user_id}:{}", crate::db::new_id()),
            )?;
            Ok((true, queued))
        })
        .await?;
    Ok(if created { HttpResponse::Created().finish() } else { HttpResponse::NoContent().finish() })
}

/// `DELETE /wards/{code}/coordinators/{user_id}` (system administrators).
pub async fn remove_coordinator(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<(String, crate::api::Id)>,
) -> AppResult<HttpResponse> {
    let (code, user_id) = path.into_inner();
    let user_id = user_id.into_string();
    state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            crate::access::administer_system(&me)?;
            let n = diesel::delete(
                ward_coordinators::table
                    .filter(ward_coordinators::ward_code.eq(&code))
                    .filter(ward_coordinators::user_id.eq(&user_id)),
            )
            .execute(conn)?;
            if n == 0 {
                return Err(crate::error::AppError::not_found());
            }
            crate::audit::record(
                conn,
                &me,
                crate::audit::Event::new(
                    crate::audit::Action::Delete,
                    Resource::WardCoordinator,
                    Some(&format!("{code}/{user_id}")),
                    None,
                ),
            )?;
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
