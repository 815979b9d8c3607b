//! Consent (本人同意): the patient's agreement to share information within the care team —
//! who obtained it, when, its scope — and its revocation. A patient without active consent is
//! marked so in every response that shows the patient.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api;
use crate::audit::{self, Action, Event, Resource};
use crate::auth::CurrentUser;
use crate::changes::{self, Change};
use crate::db::schema::consents;
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};
use crate::vocab::{ConsentScope, ConsentSource, ConsentStatus};

#[derive(Queryable, Selectable, Insertable, Debug, Clone, Serialize)]
#[diesel(table_name = consents)]
pub struct Consent {
    pub id: String,
    pub patient_id: String,
    pub scope: ConsentScope,
    pub obtained_from: ConsentSource,
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
    pub state: ConsentStatus,
    /// True unless consent is active: the team should obtain it before sharing.
    pub missing: bool,
    pub consent_id: Option<String>,
    pub scope: Option<ConsentScope>,
    pub obtained_on: Option<NaiveDate>,
}

impl ConsentState {
    pub fn none() -> ConsentState {
        ConsentState { state: ConsentStatus::None, missing: true, consent_id: None, scope: None, obtained_on: None }
    }

    fn of(latest: Option<&Consent>) -> ConsentState {
        match latest {
            None => ConsentState::none(),
            Some(c) => ConsentState {
                state: if c.revoked_at.is_some() { ConsentStatus::Revoked } else { ConsentStatus::Active },
                missing: c.revoked_at.is_some(),
                consent_id: Some(c.id.clone()),
                scope: Some(c.scope),
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

/// A consent record of this patient.
pub fn find(conn: &mut DbConn, patient_id: &str, consent_id: &str) -> AppResult<Option<Consent>> {
    Ok(consents::table
        .filter(consents::id.eq(consent_id))
        .filter(consents::patient_id.eq(patient_id))
        .select(Consent::as_select())
        .first(conn)
        .optional()?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordConsent {
    pub scope: ConsentScope,
    pub obtained_from: ConsentSource,
    pub obtained_on: NaiveDate,
    pub note: Option<String>,
}

/// Records consent obtained by the caller (a member who may write the patient's data), audited.
pub fn record(conn: &mut DbConn, me: &CurrentUser, patient_id: &str, input: RecordConsent) -> AppResult<Consent> {
    let consent = Consent {
        id: new_id(),
        patient_id: patient_id.to_string(),
        scope: input.scope,
        obtained_from: input.obtained_from,
        obtained_on: input.obtained_on,
        obtained_by: me.id.clone(),
        note: input.note,
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
        created_at: now(),
    };
    diesel::insert_into(consents::table).values(&consent).execute(conn)?;
    changes::record(conn, Change::Consent { patient_id })?;
    audit::record(conn, me, Event::new(Action::Create, Resource::Consent, Some(&consent.id), Some(patient_id)))?;
    Ok(consent)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeConsent {
    pub reason: String,
}

/// Revokes a consent now (409 when it already is), audited. Further provision stops from this
/// moment (see `access`, "Consent and its revocation").
pub fn revoke(conn: &mut DbConn, me: &CurrentUser, consent: &Consent, reason: &str) -> AppResult<Consent> {
    if consent.revoked_at.is_some() {
        return Err(AppError::conflict("この同意はすでに撤回されています。", "This consent was already revoked."));
    }
    diesel::update(consents::table.find(&consent.id))
        .set((
            consents::revoked_at.eq(Some(now())),
            consents::revoked_by.eq(Some(&me.id)),
            consents::revoke_reason.eq(Some(reason)),
        ))
        .execute(conn)?;
    let patient_id = consent.patient_id.as_str();
    changes::record(conn, Change::Consent { patient_id })?;
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::Consent, Some(&consent.id), Some(patient_id)).detail("revoked"),
    )?;
    Ok(consents::table.find(&consent.id).select(Consent::as_select()).first(conn)?)
}
