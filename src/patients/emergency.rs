//! Emergency access (break-glass): a clinician not on the team states a reason and reads the
//! record for a limited time. It is audited with high priority, listed in the patient's access
//! log, and the team is told.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;

use crate::api;
use crate::db::schema::emergency_access;
use crate::db::{new_id, now, DbConn};
use crate::error::AppResult;

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
