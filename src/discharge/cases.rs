//! Discharge cases: the queries behind `/discharge-cases`. A case belongs to one patient and one
//! hospital; its dates are the anchors every task deadline is computed from.

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api;
use crate::calendar::BusinessHours;
use crate::changes::CaseAction;
use crate::db::schema::{
    care_team_members, discharge_cases, discharge_tasks, organizations, patients, ward_coordinators,
};
use crate::db::{now, DbConn};
use crate::discharge::deadlines::{self, Anchors};
use crate::discharge::{CaseStatus, TaskStatus};
use crate::error::{AppError, AppResult};
use crate::vocab::TeamRole;

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = discharge_cases)]
pub struct Case {
    pub id: String,
    pub patient_id: String,
    pub hospital_id: String,
    pub opened_by: String,
    pub opener_member_id: String,
    pub admitted_at: Option<NaiveDateTime>,
    pub admitted_on: NaiveDate,
    pub planned_discharge_on: Option<NaiveDate>,
    pub discharged_on: Option<NaiveDate>,
    pub status: CaseStatus,
    pub department: Option<String>,
    pub hospital_ward: Option<String>,
    pub reason: Option<String>,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
    pub cancel_reason: Option<String>,
    pub closed_at: Option<NaiveDateTime>,
    pub cancelled_at: Option<NaiveDateTime>,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Case {
    /// The dates task deadlines are computed from. An admission known only by its date counts
    /// from noon JST that day ([`deadlines::jst_noon`]). Until a planned discharge date is set,
    /// the actual discharge date stands in for it, so that "before discharge" tasks of a patient
    /// discharged without a plan still get a deadline. `office` is the business calendar of the
    /// office receiving the admission ([`Case::deadline_anchors`] finds it).
    pub fn anchors(&self, office: BusinessHours) -> AppResult<Anchors> {
        let admitted_at = match self.admitted_at {
            Some(t) => t,
            None => deadlines::jst_noon(self.admitted_on)
                .ok_or_else(|| AppError::internal("admission date out of range"))?,
        };
        Ok(Anchors {
            admitted_at,
            planned_discharge_on: self.planned_discharge_on.or(self.discharged_on),
            discharged_on: self.discharged_on,
            office,
        })
    }

    /// The anchors with the business hours of the care-management office that receives the
    /// admission: the patient's care manager's organisation (the common hours without one).
    pub fn deadline_anchors(&self, conn: &mut DbConn) -> AppResult<Anchors> {
        self.anchors(crate::orgs::receiving_office_hours(conn, &self.patient_id)?)
    }
}

/// The hospital's contact person for the case (退院支援担当者).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    pub phone: Option<String>,
}

/// A case as every response shows it.
#[derive(Debug, Serialize)]
pub struct CaseView {
    pub id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub ward_code: String,
    pub hospital_id: String,
    pub hospital_name: String,
    pub opened_by: String,
    #[serde(serialize_with = "api::utc_opt")]
    pub admitted_at: Option<NaiveDateTime>,
    pub admitted_on: NaiveDate,
    pub planned_discharge_on: Option<NaiveDate>,
    pub discharged_on: Option<NaiveDate>,
    pub status: CaseStatus,
    pub department: Option<String>,
    pub hospital_ward: Option<String>,
    pub reason: Option<String>,
    pub contact: Option<Contact>,
    pub cancel_reason: Option<String>,
    /// An active team member is the patient's home physician (role primary_physician).
    pub has_home_physician: bool,
    pub open_tasks: i64,
    pub overdue_tasks: i64,
    #[serde(serialize_with = "api::utc_opt")]
    pub closed_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "api::utc_opt")]
    pub cancelled_at: Option<NaiveDateTime>,
    pub version: i32,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "api::utc")]
    pub updated_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, case: &Case) -> AppResult<()> {
    diesel::insert_into(discharge_cases::table).values(case.clone()).execute(conn)?;
    crate::changes::record(
        conn,
        crate::changes::Change::DischargeCase {
            patient_id: &case.patient_id,
            case_id: &case.id,
            action: CaseAction::Opened,
        },
    )
}

pub fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<Case>> {
    Ok(discharge_cases::table.find(id).select(Case::as_select()).first(conn).optional()?)
}

/// Every discharge case of a patient, oldest first (the FHIR export).
pub fn for_patient(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<Case>> {
    Ok(discharge_cases::table
        .filter(discharge_cases::patient_id.eq(patient_id))
        .order((discharge_cases::created_at.asc(), discharge_cases::id.asc()))
        .select(Case::as_select())
        .load(conn)?)
}

/// The patient's case that is still running (open or discharged): at most one at a time.
pub fn running_for_patient(conn: &mut DbConn, patient_id: &str) -> AppResult<Option<Case>> {
    Ok(discharge_cases::table
        .filter(discharge_cases::patient_id.eq(patient_id))
        .filter(discharge_cases::status.eq_any(CaseStatus::active_codes()))
        .select(Case::as_select())
        .first(conn)
        .optional()?)
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = discharge_cases)]
pub struct CaseChanges {
    pub planned_discharge_on: Option<Option<NaiveDate>>,
    pub discharged_on: Option<Option<NaiveDate>>,
    pub status: Option<CaseStatus>,
    pub department: Option<Option<String>>,
    pub hospital_ward: Option<Option<String>>,
    pub reason: Option<Option<String>>,
    pub contact_name: Option<Option<String>>,
    pub contact_phone: Option<Option<String>>,
    pub cancel_reason: Option<Option<String>>,
    pub closed_at: Option<Option<NaiveDateTime>>,
    pub cancelled_at: Option<Option<NaiveDateTime>>,
}

/// Applies changes at the expected version; `false` when someone changed the case first.
pub fn update(conn: &mut DbConn, id: &str, expected_version: i32, changes: CaseChanges) -> AppResult<bool> {
    let action = match changes.status {
        Some(CaseStatus::Discharged) => CaseAction::Discharged,
        Some(CaseStatus::Closed) => CaseAction::Closed,
        Some(CaseStatus::Cancelled) => CaseAction::Cancelled,
        Some(CaseStatus::Open) | None => CaseAction::Updated,
    };
    let n = diesel::update(
        discharge_cases::table.filter(discharge_cases::id.eq(id)).filter(discharge_cases::version.eq(expected_version)),
    )
    .set((changes, discharge_cases::version.eq(expected_version + 1), discharge_cases::updated_at.eq(now())))
    .execute(conn)?;
    if n == 1 {
        let patient_id: String = discharge_cases::table.find(id).select(discharge_cases::patient_id).first(conn)?;
        crate::changes::record(
            conn,
            crate::changes::Change::DischargeCase { patient_id: &patient_id, case_id: id, action },
        )?;
    }
    Ok(n == 1)
}

#[derive(Debug, Default, Clone)]
pub struct CaseFilter {
    pub status: Option<CaseStatus>,
    pub hospital_id: Option<String>,
    /// The patient's ward (区).
    pub ward_code: Option<String>,
    /// `true`: cases with an open task past its deadline; `false`: cases without one.
    pub overdue: Option<bool>,
}

/// Cases whose patient the caller may read — on whose team they are, or in a ward they
/// coordinate — matching the filter, newest first. The scope is part of the query, as in
/// [`crate::patients::search_visible`]: a hidden case can never match.
pub fn search_visible(
    conn: &mut DbConn,
    user_id: &str,
    filter: &CaseFilter,
    withheld: &[String],
    before: Option<&str>,
    limit: i64,
    at: NaiveDateTime,
) -> AppResult<Vec<Case>> {
    let on_team = care_team_members::table
        .filter(care_team_members::user_id.eq(user_id.to_string()))
        .filter(care_team_members::ended_at.is_null())
        .select(care_team_members::patient_id);
    let wards = ward_coordinators::table
        .filter(ward_coordinators::user_id.eq(user_id.to_string()))
        .select(ward_coordinators::ward_code);
    let mut q = discharge_cases::table
        .inner_join(patients::table.on(patients::id.eq(discharge_cases::patient_id)))
        .filter(
            discharge_cases::patient_id
                .eq_any(on_team)
                .or(patients::ward_code.eq_any(wards).and(patients::id.ne_all(withheld.to_vec()))),
        )
        .into_boxed();
    if let Some(s) = filter.status {
        q = q.filter(discharge_cases::status.eq(s.as_str()));
    }
    if let Some(h) = &filter.hospital_id {
        q = q.filter(discharge_cases::hospital_id.eq(h.clone()));
    }
    if let Some(w) = &filter.ward_code {
        q = q.filter(patients::ward_code.eq(w.clone()));
    }
    if let Some(overdue) = filter.overdue {
        let overdue_task = discharge_tasks::table
            .filter(discharge_tasks::case_id.eq(discharge_cases::id))
            .filter(discharge_tasks::status.eq_any(TaskStatus::open_codes()))
            .filter(discharge_tasks::due_at.lt(at));
        if overdue {
            q = q.filter(diesel::dsl::exists(overdue_task));
        } else {
            q = q.filter(diesel::dsl::not(diesel::dsl::exists(overdue_task)));
        }
    }
    if let Some(b) = before {
        q = q.filter(discharge_cases::id.lt(b.to_string()));
    }
    Ok(q.order(discharge_cases::id.desc()).limit(limit + 1).select(Case::as_select()).load(conn)?)
}

/// Views of cases, in the order given, with a handful of queries however many cases there are.
pub fn views(conn: &mut DbConn, cases: Vec<Case>, at: NaiveDateTime) -> AppResult<Vec<CaseView>> {
    let patient_ids: Vec<String> = cases.iter().map(|c| c.patient_id.clone()).collect();
    let hospital_ids: Vec<String> = cases.iter().map(|c| c.hospital_id.clone()).collect();
    let case_ids: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
    let people: HashMap<String, (String, String)> = patients::table
        .filter(patients::id.eq_any(&patient_ids))
        .select((patients::id, patients::family_name, patients::given_name, patients::ward_code))
        .load::<(String, String, String, String)>(conn)?
        .into_iter()
        .map(|(id, family, given, ward)| (id, (format!("{family} {given}"), ward)))
        .collect();
    let hospitals: HashMap<String, String> = organizations::table
        .filter(organizations::id.eq_any(&hospital_ids))
        .select((organizations::id, organizations::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let with_physician: HashSet<String> = care_team_members::table
        .filter(care_team_members::patient_id.eq_any(&patient_ids))
        .filter(care_team_members::role.eq(TeamRole::PrimaryPhysician.as_str()))
        .filter(care_team_members::ended_at.is_null())
        .select(care_team_members::patient_id)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    let open: Vec<(String, Option<NaiveDateTime>)> = discharge_tasks::table
        .filter(discharge_tasks::case_id.eq_any(&case_ids))
        .filter(discharge_tasks::status.eq_any(TaskStatus::open_codes()))
        .select((discharge_tasks::case_id, discharge_tasks::due_at))
        .load(conn)?;
    let mut counts: HashMap<String, (i64, i64)> = HashMap::new();
    for (case_id, due) in open {
        let entry = counts.entry(case_id).or_default();
        entry.0 += 1;
        if deadlines::is_overdue(due, true, at) {
            entry.1 += 1;
        }
    }
    cases
        .into_iter()
        .map(|c| {
            let (patient_name, ward_code) =
                people.get(&c.patient_id).cloned().ok_or_else(|| AppError::internal("case without patient"))?;
            let hospital_name =
                hospitals.get(&c.hospital_id).cloned().ok_or_else(|| AppError::internal("case without hospital"))?;
            let (open_tasks, overdue_tasks) = counts.get(&c.id).copied().unwrap_or_default();
            let contact = c.contact_name.map(|name| Contact { name, phone: c.contact_phone });
            Ok(CaseView {
                has_home_physician: with_physician.contains(&c.patient_id),
                id: c.id,
                patient_id: c.patient_id,
                patient_name,
                ward_code,
                hospital_id: c.hospital_id,
                hospital_name,
                opened_by: c.opened_by,
                admitted_at: c.admitted_at,
                admitted_on: c.admitted_on,
                planned_discharge_on: c.planned_discharge_on,
                discharged_on: c.discharged_on,
                status: c.status,
                department: c.department,
                hospital_ward: c.hospital_ward,
                reason: c.reason,
                contact,
                cancel_reason: c.cancel_reason,
                open_tasks,
                overdue_tasks,
                closed_at: c.closed_at,
                cancelled_at: c.cancelled_at,
                version: c.version,
                created_at: c.created_at,
                updated_at: c.updated_at,
            })
        })
        .collect()
}

/// The view of one case.
pub fn view(conn: &mut DbConn, case: Case, at: NaiveDateTime) -> AppResult<CaseView> {
    views(conn, vec![case], at)?.pop().ok_or_else(|| AppError::internal("case view missing"))
}
