//! `/patients/{id}/insurance` (the numbers on the patient's insurance cards) and
//! `/patients/{id}/merge` (a duplicate registration merged into the patient that stays).

use actix_web::{web, HttpResponse};
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

/// `GET /patients/{id}/insurance`: what the team may read, audited as a read of the patient.
pub async fn get(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Read, Resource::Patient)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::Patient, Some(&patient_id), Some(&patient_id)).detail("insurance"),
            )?;
            let (numbers, updated_at) = insurance::of_patient(conn, &patient_id)?;
            Ok(InsuranceView { patient_id, numbers, updated_at })
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `PUT /patients/{id}/insurance`: a team member who may write records the numbers from the
/// cards, replacing what was recorded (a part left out or null is removed).
pub async fn put(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
    body: Json<Numbers>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let numbers = body.into_inner();
    let mut check = Check::new();
    numbers.check(&mut check);
    check.finish()?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Write, Resource::Patient)?;
            let numbers = insurance::record(conn, &patient_id, &numbers, &me.id)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, Resource::Patient, Some(&patient_id), Some(&patient_id)).detail("insurance"),
            )?;
            let (_, updated_at) = insurance::of_patient(conn, &patient_id)?;
            Ok(InsuranceView { patient_id, numbers, updated_at })
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Merge {
    /// The patient that stays.
    pub into: Id,
}

#[derive(Serialize)]
struct Merged {
    id: String,
    superseded_by: String,
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
            if surviving.superseded_by.is_some() {
                return Err(AppError::field(
                    "into",
                    "already_merged",
                    "統合先(into)の患者はすでに別の患者に統合されています。残る方の患者を指定してください。",
                    "The patient named by into was itself merged into another: name the patient that stays.",
                ));
            }
            if duplicate.birth_date != surviving.birth_date {
                return Err(AppError::field(
                    "into",
                    "different_birth_date",
                    "生年月日が異なる患者は統合できません。同じ方の重複登録か確かめてください。",
                    "Patients with different birth dates cannot be merged: check that both registrations are the same person.",
                ));
            }
            if !crate::patients::supersede(conn, &duplicate, &surviving.id)? {
                return Err(AppError::conflict(
                    "この患者はすでに統合されているか、他の人が変更しました。",
                    "This patient was merged already or changed by someone else.",
                ));
            }
            let detail = format!("merged into {}", surviving.id);
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, Resource::Patient, Some(&duplicate.id), Some(&duplicate.id))
                    .detail(detail),
            )?;
            let detail = format!("merged from {}", duplicate.id);
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, Resource::Patient, Some(&surviving.id), Some(&surviving.id))
                    .detail(detail),
            )?;
            Ok(Merged { id: duplicate.id, superseded_by: surviving.id })
        })
        .await?;
    Ok(HttpResponse::Ok().json(merged))
}
