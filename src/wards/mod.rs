//! Wards (区): identified by local government code; data, not code — another city loads its own.

use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::Serialize;

use crate::app::AppState;
use crate::auth::Bearer;
use crate::db::schema::wards;
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

/// The coordinators of a ward (for escalations).
pub fn coordinators_of(conn: &mut DbConn, ward_code: &str) -> AppResult<Vec<String>> {
    Ok(ward_coordinators::table
        .filter(ward_coordinators::ward_code.eq(ward_code))
        .select(ward_coordinators::user_id)
        .load(conn)?)
}

/// `PUT /wards/{code}/coordinators/{user_id}` (system administrators): idempotent.
pub async fn assign_coordinator(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<(String, crate::api::Id)>,
) -> AppResult<HttpResponse> {
    let (code, user_id) = path.into_inner();
    let user_id = user_id.into_string();
    let created = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            crate::access::administer_system(&me)?;
            wards::table
                .find(&code)
                .select(wards::code)
                .first::<String>(conn)
                .optional()?
                .ok_or_else(crate::error::AppError::not_found)?;
            crate::users::find(conn, &user_id)?.filter(|u| u.active).ok_or_else(crate::error::AppError::not_found)?;
            if is_coordinator(conn, &code, &user_id)? {
                return Ok(false);
            }
            diesel::insert_into(ward_coordinators::table)
                .values((
                    ward_coordinators::ward_code.eq(&code),
                    ward_coordinators::user_id.eq(&user_id),
                    ward_coordinators::assigned_by.eq(&me.id),
                    ward_coordinators::assigned_at.eq(crate::db::now()),
                ))
                .execute(conn)?;
            // It grants read access to every patient of the ward: keep it in the trail.
            crate::audit::record(
                conn,
                &me,
                crate::audit::Event::new(
                    crate::audit::Action::Create,
                    "ward_coordinator",
                    Some(&format!("{code}/{user_id}")),
                    None,
                ),
            )?;
            Ok(true)
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
                    "ward_coordinator",
                    Some(&format!("{code}/{user_id}")),
                    None,
                ),
            )?;
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
