//! `/patients/{id}/visit-plans`, `/visit-plans/{id}…`, `/patients/{id}/appointments`,
//! `/appointments/{id}…`, and the week views `/patients/{id}/week` and `/me/week`: the lists and
//! the weeks here, the records' own routes through [`records`](super::records).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::access::{self, Need};
use crate::api::{self, Id};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::care::week::{self, Week, WeekQuery};
use crate::care::{appointments, visits};
use crate::error::AppResult;
use crate::state::AppState;

#[derive(Serialize)]
struct List<T: Serialize> {
    patient_id: String,
    items: Vec<T>,
}

/// `?include_ended=true` on the list of plans.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PlanListQuery {
    pub include_ended: Option<bool>,
}

/// `GET /patients/{id}/visit-plans`: the plans as they stand (ended ones on request).
pub async fn list_plans(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
    query: api::Query<PlanListQuery>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let with_ended = query.include_ended.unwrap_or(false);
    let list = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Read, Resource::VisitPlan)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::VisitPlan, None, Some(&patient_id)))?;
            let items = visits::list(conn, &patient_id, with_ended, crate::patients::today_jst())?;
            Ok(List { patient_id, items })
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// `GET /patients/{id}/appointments`: the appointments, by start (entered-in-error ones left out).
pub async fn list_appointments(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let list = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Read, Resource::Appointment)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::Appointment, None, Some(&patient_id)))?;
            let items = appointments::list(conn, &patient_id, None, false)?;
            Ok(List { patient_id, items })
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

#[derive(Serialize)]
struct PatientWeek {
    patient_id: String,
    from: chrono::NaiveDate,
    until: chrono::NaiveDate,
    items: Vec<week::Item>,
}

/// `?from=` of the patient's week (no paging: seven days of one patient are a short list).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PatientWeekQuery {
    pub from: Option<chrono::NaiveDate>,
}

/// `GET /patients/{id}/week`: seven days from `from` (default: this week's Monday in Japan).
pub async fn patient_week(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
    query: api::Query<PatientWeekQuery>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let first = WeekQuery { from: query.from, ..WeekQuery::default() }.first_day();
    let answer = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Read, Resource::VisitPlan)?;
            let w = Week::from(first)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::VisitPlan, None, Some(&patient_id)).detail("week"),
            )?;
            let items = week::patient_week(conn, &patient_id, w)?;
            Ok(PatientWeek { patient_id, from: w.first, until: w.last, items })
        })
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

#[derive(Serialize)]
struct MyWeek {
    from: chrono::NaiveDate,
    until: chrono::NaiveDate,
    items: Vec<week::Item>,
    next_cursor: Option<String>,
}

/// `GET /me/week`: my visits and appointments across my patients, seven days from `from`, a
/// page at a time. Each patient a page shows is an audited read.
pub async fn my_week(
    state: web::Data<AppState>,
    bearer: Bearer,
    query: api::Query<WeekQuery>,
) -> AppResult<HttpResponse> {
    let query = query.into_inner();
    let answer = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let w = Week::from(query.first_day())?;
            let patients = access::my_week_patients(conn, &me)?;
            let page = week::member_week(conn, &me.id, &patients, w, &query.paging())?;
            let mut shown: Vec<&str> = page.items.iter().map(|i| i.patient_id.as_str()).collect();
            shown.sort_unstable();
            shown.dedup();
            let reads = shown
                .into_iter()
                .map(|p| Event::new(Action::Read, Resource::VisitPlan, None, Some(p)).detail("my week"))
                .collect();
            audit::record_all(conn, &me, reads)?;
            Ok(MyWeek { from: w.first, until: w.last, items: page.items, next_cursor: page.next_cursor })
        })
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}
