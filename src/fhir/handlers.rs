//! `GET /patients/{id}/fhir`: the patient's record as a FHIR R4 Bundle.

use actix_web::{web, HttpResponse};

use crate::access::{self, Need};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::db::now;
use crate::error::AppResult;
use crate::state::AppState;

/// `GET /patients/{id}/fhir`: read like any other view of the record: scoped by the access
/// policy (404 for a patient the caller may not see) and audited.
pub async fn export(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let base_url = state.config.public_url.clone();
    let bundle = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (patient, relation) = access::patient(conn, &me, &id, Need::Read, Resource::Fhir)?;
            access::export_record(conn, &me, &patient, &relation)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::Fhir, Some(&id), Some(&id)).detail("export: FHIR R4 Bundle"),
            )?;
            let record = super::load(conn, patient)?;
            Ok(super::bundle(&record, now(), &base_url))
        })
        .await?;
    Ok(HttpResponse::Ok().content_type(super::CONTENT_TYPE).json(bundle))
}
