//! `/patients/{id}/allergies` and `/allergies/{id}` (with its versions and entered-in-error): the
//! list here, the rest through [`records`](super::records).

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::access::{self, Need};
use crate::api::Id;
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::care::allergies::{self, View};
use crate::error::AppResult;
use crate::state::AppState;

#[derive(Serialize)]
struct List {
    patient_id: String,
    items: Vec<View>,
}

/// `GET /patients/{id}/allergies`: the allergies and contraindications as they stand (entered-in-error
/// entries left out).
pub async fn list(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let list = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Read, Resource::Allergy)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::Allergy, None, Some(&patient_id)))?;
            let items = allergies::list(conn, &patient_id, false)?;
            Ok(List { patient_id, items })
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}
