//! `/discharge-task-templates`: the templates a case's tasks are made from.

use actix_web::{web, HttpResponse};

use super::Items;
use crate::auth::Bearer;
use crate::discharge::templates;
use crate::error::AppResult;
use crate::state::AppState;

/// `GET /discharge-task-templates`: every template with its deadline rule, for anyone signed in
/// (they hold no patient data).
pub async fn list_templates(state: web::Data<AppState>, bearer: Bearer) -> AppResult<HttpResponse> {
    let items = state
        .db
        .run(move |conn| {
            bearer.user(conn)?;
            templates::all_templates(conn)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}
