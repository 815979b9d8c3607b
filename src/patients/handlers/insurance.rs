//! `/patients/{id}/insurance` (the numbers on the patient's insurance cards) and
//! `/patients/{id}/merge` (a duplicate registration merged into the patient that stays).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::access::{self, Need};
use crate::api::{self, Check, Id, Json};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::error::{AppError, AppResult};
use crate::patients::insurance::{self, Numbers};
use crate::state::AppState;

#[derive(Serialize)]
struct InsuranceView {
    patient_id: String,
    #[serde(flatten)]
    numbers: Numbers,
    #[serde(serialize_with = "api::utc_opt")]
    updated_at: Option<NaiveDateTime>,
}

impl InsuranceView {
    fn of(patient_id: String, recorded: insurance::Recorded) -> (i32, InsuranceView) {
        (recorded.version, InsuranceView { patient_id, numbers: recorded.numbers, updated_at: recorded.updated_at })
    }
}

/// `GET /patients/{id}/insurance`: what the team may read, audited as a read of the patient; the
/// `ETag` names the version a `PUT` replaces (`"0"` while nothing is recorded).
pub async fn get(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let (version, view) = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Read, Resource::Patient)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::Patient, Some(&patient_id), Some(&patient_id)).detail("insurance"),
            )?;
            Ok(InsuranceView::of(patient_id.clone(), insurance::of_patient(conn, &patient_id)?))
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, version, &view))
}

/// `PUT /patients/{id}/insurance`: a team member who may write records the numbers from the
/// cards, replacing what was recorded (a part left out or null is removed). Once numbers are
/// recorded, `If-Match` must name their version (428 without it, 412 when someone recorded
/// others first); the first recording may leave it out.
pub async fn put(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<Numbers>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let expected = api::if_match(&req)?;
    let numbers = body.into_inner();
    let mut check = Check::new();
    numbers.check(&mut check);
    check.finish()?;
    let (version, view) = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Write, Resource::Patient)?;
            // Without If-Match the caller means "nothing is recorded yet"; if something is, they
            // must say which version they replace.
            let Some(recorded) = insurance::record(conn, &patient_id, &numbers, &me.id, expected.unwrap_or(0))? else {
                return Err(if expected.is_some() {
                    AppError::precondition_failed()
                } else {
                    AppError::precondition_required()
                });
            };
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, Resource::Patient, Some(&patient_id), Some(&patient_id)).detail("insurance"),
            )?;
            Ok(InsuranceView::of(patient_id, recorded))
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, version, &view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Merge {
    /// The patient that stays.
    pub into: Id,
}

/// `POST /patients/{id}/merge`: the care manager of both registrations merges the duplicate
/// `{id}` into `into`. Nothing moves: the duplicate keeps its notes, cases and audit trail
/// (append-only) and points at the patient that stays; it leaves every list and search, and
/// identification by its id or its numbers finds the patient that stays. Both patients' audit
/// trails record the merge.
pub async fn merge(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
    body: Json<Merge>,
) -> AppResult<HttpResponse> {
    let duplicate_id = path.into_inner().into_string();
    let body = body.into_inner();
    let surviving_id = body.into.into_string();
    if duplicate_id == surviving_id {
        return Err(AppError::field(
            "into",
            "same_patient",
            "統合先(into)に同じ患者は指定できません。",
            "into must name another patient.",
        ));
    }
    let merged = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (duplicate, surviving) = access::merge_patients(conn, &me, &duplicate_id, &surviving_id)?;
            crate::patients::merge::merge(conn, &me, duplicate, surviving)
        })
        .await?;
    Ok(HttpResponse::Ok().json(merged))
}
