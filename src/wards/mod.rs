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
