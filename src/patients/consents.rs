//! Consent (本人同意): the patient's agreement to share information within the care team —
//! who obtained it, when, its scope — and its revocation. A patient without active consent is
//! marked so in every response that shows the patient.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::access::{self, Need};
use crate::api::{self, Check};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::db::schema::consents;
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::vocab::{ConsentScope, ConsentSource};

#[derive(Queryable, Selectable, Insertable, Debug, Clone, Serialize)]
#[diesel(table_name = consents)]
pub struct Consent {
    pub id: String,
    pub patient_id: String,
    pub scope: String,
    pub obtained_from: String,
    pub obtained_on: NaiveDate,
    pub obtained_by: String,
    pub note: Option<String>,
    #[serde(serialize_with = "api::utc_opt")]
    pub revoked_at: Option<NaiveDateTime>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
}

/// The current consent of a patient, as shown with the patient.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConsentState {
    /// `active`, `revoked` or `none`.
    pub state: &'static str,
    /// True unless consent is active: the team should obtain it before sharing.
    pub missing: bool,
    pub consent_id: Option<String>,
    pub scope: Option<String>,
    pub obtained_on: Option<NaiveDate>,
}

impl ConsentState {
    pub fn none() -> ConsentState {
        ConsentState { state: "none", missing: true, consent_id: None, scope: None, obtained_on: None }
    }

    fn of(latest: Option<&Consent>) -> ConsentState {
        match latest {
            None => ConsentState::none(),
            Some(c) => ConsentState {
                state: if c.revoked_at.is_some() { "revoked" } else { "active" },
                missing: c.revoked_at.is_some(),
                consent_id: Some(c.id.clone()),
                scope: Some(c.scope.clone()),
                obtained_on: Some(c.obtained_on),
            },
        }
    }
}

/// The consent state of each patient (the latest consent record decides).
pub fn states(conn: &mut DbConn, patient_ids: &[String]) -> AppResult<HashMap<String, ConsentState>> {
    let rows: Vec<Consent> = consents::table
        .filter(consents::patient_id.eq_any(patient_ids))
        .order((consents::patient_id, consents::created_at.desc(), consents::id.desc()))
        .select(Consent::as_select())
        .load(conn)?;
    let mut out = HashMap::new();
    for id in patient_ids {
        let latest = rows.iter().find(|c| &c.patient_id == id);
        out.insert(id.clone(), ConsentState::of(latest));
    }
    Ok(out)
}

pub fn state(conn: &mut DbConn, patient_id: &str) -> AppResult<ConsentState> {
    let mut map = states(conn, &[patient_id.to_string()])?;
    Ok(map.remove(patient_id).unwrap_or_else(ConsentState::none))
}

/// When the patient's current consent was revoked, if it is (the latest record decides, as in
/// [`states`]): a consent obtained again after a revocation ends the revoked state.
pub fn revoked_at(conn: &mut DbConn, patient_id: &str) -> AppResult<Option<NaiveDateTime>> {
    let latest: Option<Option<NaiveDateTime>> = consents::table
        .filter(consents::patient_id.eq(patient_id))
        .order((consents::created_at.desc(), consents::id.desc()))
        .select(consents::revoked_at)
        .first(conn)
        .optional()?;
    Ok(latest.flatten())
}

/// Patients of the wards this user coordinates whose current consent was revoked before the
/// user became a coordinator of the ward.
pub fn revoked_before_coordinator(conn: &mut DbConn, user_id: &str) -> AppResult<Vec<String>> {
    use crate::db::schema::{patients, ward_coordinators};
    let candidates: Vec<(String, NaiveDateTime)> = consents::table
        .inner_join(patients::table)
        .inner_join(
            ward_coordinators::table.on(ward_coordinators::ward_code
                .eq(patients::ward_code)
                .and(ward_coordinators::user_id.eq(user_id.to_string()))),
        )
        .filter(consents::revoked_at.lt(ward_coordinators::assigned_at.nullable()))
        .select((consents::patient_id, ward_coordinators::assigned_at))
        .distinct()
        .load(conn)?;
    let mut out: Vec<String> = Vec::new();
    for (patient_id, assigned_at) in candidates {
        // Revocations are rare, so checking each candidate's current consent is cheap.
        if !out.contains(&patient_id) && revoked_at(conn, &patient_id)?.is_some_and(|r| r < assigned_at) {
            out.push(patient_id);
        }
    }
    Ok(out)
}

pub fn list(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<Consent>> {
    Ok(consents::table
        .filter(consents::patient_id.eq(patient_id))
        .order((consents::created_at.desc(), consents::id.desc()))
        .select(Consent::as_select())
        .load(conn)?)
}

#[derive(Serialize)]
struct ConsentList {
    items: Vec<Consent>,
}

/// `GET /patients/{id}/consents`: every consent record, newest first.
pub async fn list_handler(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let items = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Read, Resource::Consent)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::Consent, None, Some(&patient_id)))?;
            list(conn, &patient_id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ConsentList { items }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordConsent {
    pub scope: ConsentScope,
    pub obtained_from: ConsentSource,
    pub obtained_on: NaiveDate,
    pub note: Option<String>,
}

/// `POST /patients/{id}/consents`: the team member who obtained consent records it.
pub async fn create_handler(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
    body: web::Json<RecordConsent>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let body = body.into_inner();
    let mut check = Check::new();
    check.optional_text("note", body.note.as_deref(), 2000);
    if body.obtained_on > crate::patients::today_jst() {
        check.push("obtained_on", "in_future", "同意を得た日が未来になっています。", "obtained_on is in the future.");
    }
    check.finish()?;
    let consent = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Write, Resource::Consent)?;
            let consent = Consent {
                id: new_id(),
                patient_id: patient_id.clone(),
                scope: body.scope.as_str().into(),
                obtained_from: body.obtained_from.as_str().into(),
                obtained_on: body.obtained_on,
                obtained_by: me.id.clone(),
                note: body.note,
                revoked_at: None,
                revoked_by: None,
                revoke_reason: None,
                created_at: now(),
            };
            diesel::insert_into(consents::table).values(&consent).execute(conn)?;
            crate::changes::record(conn, crate::changes::Change::Consent { patient_id: &patient_id })?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Create, Resource::Consent, Some(&consent.id), Some(&patient_id)),
            )?;
            Ok(consent)
        })
        .await?;
    Ok(HttpResponse::Created().json(consent))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeConsent {
    pub reason: String,
}

/// `POST /patients/{id}/consents/{consent_id}/revoke`.
pub async fn revoke_handler(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<(crate::api::Id, crate::api::Id)>,
    body: web::Json<RevokeConsent>,
) -> AppResult<HttpResponse> {
    let (patient_id, consent_id) = path.into_inner();
    let (patient_id, consent_id) = (patient_id.into_string(), consent_id.into_string());
    let reason = body.into_inner().reason;
    let mut check = Check::new();
    check.text("reason", &reason, 1000);
    check.finish()?;
    let consent = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Write, Resource::Consent)?;
            let existing: Consent = consents::table
                .filter(consents::id.eq(&consent_id))
                .filter(consents::patient_id.eq(&patient_id))
                .select(Consent::as_select())
                .first(conn)
                .optional()?
                .ok_or_else(AppError::not_found)?;
            if existing.revoked_at.is_some() {
                return Err(AppError::conflict(
                    "この同意はすでに撤回されています。",
                    "This consent was already revoked.",
                ));
            }
            diesel::update(consents::table.find(&consent_id))
                .set((
                    consents::revoked_at.eq(Some(now())),
                    consents::revoked_by.eq(Some(&me.id)),
                    consents::revoke_reason.eq(Some(&reason)),
                ))
                .execute(conn)?;
            crate::changes::record(conn, crate::changes::Change::Consent { patient_id: &patient_id })?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, Resource::Consent, Some(&consent_id), Some(&patient_id)).detail("revoked"),
            )?;
            consents::table.find(&consent_id).select(Consent::as_select()).first(conn).map_err(AppError::from)
        })
        .await?;
    Ok(HttpResponse::Ok().json(consent))
}
