//! Emergency access (break-glass): a clinician not on the team states a reason and reads the
//! record for a limited time. It is audited with high priority, listed in the patient's access
//! log, and the team is told.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;

use super::{team, Patient};
use crate::api;
use crate::audit::{self, Action, Event, Resource};
use crate::auth::CurrentUser;
use crate::db::schema::emergency_access;
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};
use crate::mail::{self, Mailer};

#[derive(Queryable, Selectable, Insertable, Debug, Clone, Serialize)]
#[diesel(table_name = emergency_access)]
pub struct Grant {
    pub id: String,
    pub patient_id: String,
    pub user_id: String,
    pub reason: String,
    #[serde(serialize_with = "api::utc")]
    pub granted_at: NaiveDateTime,
    #[serde(serialize_with = "api::utc")]
    pub expires_at: NaiveDateTime,
}

pub fn active_grant(conn: &mut DbConn, patient_id: &str, user_id: &str) -> AppResult<Option<Grant>> {
    Ok(emergency_access::table
        .filter(emergency_access::patient_id.eq(patient_id))
        .filter(emergency_access::user_id.eq(user_id))
        .filter(emergency_access::expires_at.gt(now()))
        .order(emergency_access::expires_at.desc())
        .select(Grant::as_select())
        .first(conn)
        .optional()?)
}

pub fn grant(conn: &mut DbConn, patient_id: &str, user_id: &str, reason: &str, minutes: i64) -> AppResult<Grant> {
    let t = now();
    let g = Grant {
        id: new_id(),
        patient_id: patient_id.into(),
        user_id: user_id.into(),
        reason: reason.into(),
        granted_at: t,
        expires_at: t + Duration::minutes(minutes),
    };
    diesel::insert_into(emergency_access::table).values(&g).execute(conn)?;
    Ok(g)
}

/// Opens the record of a patient for the caller (allowed by `access::emergency_access`) for
/// `minutes`, audited with high priority, and tells the team. 409 for a member of the team, who
/// needs no emergency access.
pub fn open(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    patient: &Patient,
    reason: &str,
    minutes: i64,
) -> AppResult<Grant> {
    if team::active_member(conn, &patient.id, &me.id)?.is_some() {
        return Err(AppError::conflict(
            "ケアチームのメンバーには緊急アクセスは不要です。",
            "Care-team members do not need emergency access.",
        ));
    }
    let grant = grant(conn, &patient.id, &me.id, reason, minutes)?;
    audit::record(
        conn,
        me,
        Event::new(Action::Execute, Resource::EmergencyAccess, Some(&grant.id), Some(&patient.id)).high_priority(),
    )?;
    // The team is told who opened the record (by profession and kind of organisation: a typed
    // name could carry a link), and when.
    // Only clinicians of an organisation break the glass (`access::request_emergency_access`).
    let org =
        crate::orgs::find(conn, me.employer()?)?.ok_or_else(|| AppError::internal("user without organisation"))?;
    let accessor = mail::Described { profession: me.profession, organization: Some(org.kind) };
    let notice = mail::Notice::EmergencyAccess {
        accessor,
        accessed_at: grant.granted_at,
        patient: patient.email_label(mailer.patient_label()),
        patient_id: patient.id.clone(),
    };
    let team = team::active_user_ids(conn, &patient.id)?;
    mail::notify(conn, mailer, &team, &notice, Some(&patient.id), &format!("emergency:{}", grant.id))?;
    Ok(grant)
}
