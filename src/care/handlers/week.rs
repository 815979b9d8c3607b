//! `/patients/{id}/visit-plans`, `/visit-plans/{id}…`, `/patients/{id}/appointments`,
//! `/appointments/{id}…`, and the week views `/patients/{id}/week` and `/me/week`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{created, Versions};
use crate::access::{self, Need};
use crate::api::{self, Check, Id, Json};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::care::week::{self, Week, WeekQuery};
use crate::care::{appointments, visits};
use crate::error::AppResult;
use crate::idempotency::{self, Answer};
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

/// `POST /patients/{id}/visit-plans`: a member enters their recurring visits; the care manager or
/// the lead anyone's. Offline-safe with `Idempotency-Key`.
pub async fn add_plan(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<visits::Entry>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let entry = body.into_inner();
    let key = idempotency::key_from(&req)?;
    let fingerprint = idempotency::fingerprint("POST", req.path(), &entry);
    let answer = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Write, Resource::VisitPlan)?;
            let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
                let mut check = Check::new();
                entry.check(&mut check);
                check.finish()?;
                let after = [entry.user_id.clone()];
                access::schedule(conn, &me, &patient_id, Resource::VisitPlan, None, &after, "user_id")?;
                let view = visits::add(conn, &patient_id, entry, &me.id)?;
                audit::record(
                    conn,
                    &me,
                    Event::new(Action::Create, Resource::VisitPlan, Some(&view.id), Some(&patient_id)),
                )?;
                Answer::json(StatusCode::CREATED, &view)
            })?;
            answer.audit_replay(conn, &me, Resource::VisitPlan, &patient_id)?;
            Ok(answer)
        })
        .await?;
    Ok(created(answer, "visit-plans"))
}

/// `GET /visit-plans/{id}`: the current version, with its `ETag`.
pub async fn get_plan(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let view = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let plan = access::visit_plan(conn, &me, &id, Need::Read)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::VisitPlan, Some(&id), Some(&plan.patient_id)))?;
            visits::view(conn, &plan)
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, view.version, &view))
}

/// `PUT /visit-plans/{id}`: a change — or the end, with `valid_until` — as a new version of the
/// one named by `If-Match` (428 without it, 412 when stale).
pub async fn change_plan(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<visits::Entry>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let entry = body.into_inner();
    let expected = api::require_if_match(&req)?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let plan = access::visit_plan(conn, &me, &id, Need::Write)?;
            let mut check = Check::new();
            entry.check(&mut check);
            check.finish()?;
            let before = [visits::current(conn, &plan)?.user_id];
            let after = [entry.user_id.clone()];
            access::schedule(conn, &me, &plan.patient_id, Resource::VisitPlan, Some(&before), &after, "user_id")?;
            let view = visits::change(conn, &plan, expected, entry, &me.id)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, Resource::VisitPlan, Some(&id), Some(&plan.patient_id))
                    .detail(format!("version:{}", view.version)),
            )?;
            Ok(view)
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, view.version, &view))
}

/// `GET /visit-plans/{id}/versions`: every version, oldest first.
pub async fn plan_versions(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let list = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let plan = access::visit_plan(conn, &me, &id, Need::Read)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::VisitPlan, Some(&id), Some(&plan.patient_id)).detail("versions"),
            )?;
            Ok(Versions { items: visits::history(conn, &id)?, id })
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

/// `POST /patients/{id}/appointments`: a one-off visit or a conference, booked by an attendee,
/// or by the care manager or the lead for anyone. Offline-safe with `Idempotency-Key`.
pub async fn add_appointment(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<appointments::Entry>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let entry = body.into_inner();
    let key = idempotency::key_from(&req)?;
    let fingerprint = idempotency::fingerprint("POST", req.path(), &entry);
    let answer = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Write, Resource::Appointment)?;
            let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
                let mut check = Check::new();
                entry.check(&mut check);
                check.finish()?;
                let after = entry.attendees.clone();
                access::schedule(conn, &me, &patient_id, Resource::Appointment, None, &after, "attendees")?;
                let view = appointments::add(conn, &patient_id, entry, &me.id)?;
                audit::record(
                    conn,
                    &me,
                    Event::new(Action::Create, Resource::Appointment, Some(&view.id), Some(&patient_id)),
                )?;
                Answer::json(StatusCode::CREATED, &view)
            })?;
            answer.audit_replay(conn, &me, Resource::Appointment, &patient_id)?;
            Ok(answer)
        })
        .await?;
    Ok(created(answer, "appointments"))
}

/// `GET /appointments/{id}`: the current version, with its `ETag`.
pub async fn get_appointment(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let view = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let a = access::appointment(conn, &me, &id, Need::Read)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::Appointment, Some(&id), Some(&a.patient_id)))?;
            appointments::view(conn, &a)
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, view.version, &view))
}

/// `PUT /appointments/{id}`: a change — a new time, the minutes, `status: cancelled` or
/// `entered_in_error` — as a new version of the one named by `If-Match` (428, 412).
pub async fn change_appointment(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<appointments::Entry>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let entry = body.into_inner();
    let expected = api::require_if_match(&req)?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let a = access::appointment(conn, &me, &id, Need::Write)?;
            let mut check = Check::new();
            entry.check(&mut check);
            check.finish()?;
            let before = appointments::current(conn, &a)?.attendee_ids();
            let after = entry.attendees.clone();
            access::schedule(conn, &me, &a.patient_id, Resource::Appointment, Some(&before), &after, "attendees")?;
            let view = appointments::change(conn, &a, expected, entry, &me.id)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, Resource::Appointment, Some(&id), Some(&a.patient_id))
                    .detail(format!("version:{}", view.version)),
            )?;
            Ok(view)
        })
        .await?;
    Ok(api::versioned(StatusCode::OK, view.version, &view))
}

/// `GET /appointments/{id}/versions`: every version, oldest first.
pub async fn appointment_versions(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let list = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let a = access::appointment(conn, &me, &id, Need::Read)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::Appointment, Some(&id), Some(&a.patient_id)).detail("versions"),
            )?;
            Ok(Versions { items: appointments::history(conn, &id)?, id })
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
