//! `/discharge-cases`, `/tasks`, `/me/tasks` and `/discharge-task-templates`: parse, ask the
//! access policy, call the queries of this module in the request's one transaction, answer.

use actix_web::http::StatusCode;
use actix_web::{http::header, web, HttpRequest, HttpResponse};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeDelta};
use serde::{Deserialize, Serialize};

use super::cases::{self, Case, CaseChanges, CaseFilter, Contact};
use super::conferences::{self, Attendee, AttendeeRow, Conference};
use super::deadlines;
use super::tasks::{self, Comment, Task, TaskChanges};
use super::{notices, templates, CaseStatus, TaskStatus};
use crate::access::{self, Need, PatientIdentity};
use crate::api::{self, Check, PageQuery};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::{Bearer, CurrentUser};
use crate::db::{new_id, now, truncate, DbConn};
use crate::error::{AppError, AppResult};
use crate::patients::handlers::{check_ward, RegisterPatient};
use crate::patients::{self, team, today_jst};
use crate::state::AppState;
use crate::vocab::{OrgKind, PatientStatus, Profession, TeamRole};

/// How far ahead of the server's clock a reported time may be (clients' clocks drift).
const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

// ---------------------------------------------------------------------------------------------
// Shared steps.

/// A created record, or the one a retried request with the same `Idempotency-Key` created.
struct Created<T> {
    view: T,
    replayed: bool,
}

fn created<T: Serialize>(c: Created<T>, location: String, version: Option<i32>) -> HttpResponse {
    let mut res = HttpResponse::Created();
    res.insert_header((header::LOCATION, location));
    if let Some(v) = version {
        res.insert_header((header::ETAG, api::etag(v)));
    }
    if c.replayed {
        res.insert_header(("Idempotent-Replayed", "true"));
    }
    res.json(c.view)
}

fn etagged<T: Serialize>(status: StatusCode, version: i32, view: &T) -> HttpResponse {
    HttpResponse::build(status).insert_header((header::ETAG, api::etag(version))).json(view)
}

fn key_reused() -> AppError {
    AppError::field(
        "Idempotency-Key",
        "reused",
        "この Idempotency-Key は別の内容のリクエストですでに使われています。新しいキーを指定してください。",
        "This Idempotency-Key was already used for a different request. Send a new key.",
    )
}

/// Tasks, conferences and comments are worked on while the case is open or discharged.
fn require_active(case: &Case) -> AppResult<()> {
    let status = case.status()?;
    if status.is_active() {
        Ok(())
    } else {
        Err(AppError::conflict(
            format!("この入退院調整は {status} のため変更できません。"),
            format!("This discharge case is {status} and can no longer be changed."),
        ))
    }
}

/// `If-Match`, when sent, must name the current version.
fn check_version(expected: Option<i32>, current: i32) -> AppResult<()> {
    match expected {
        Some(v) if v != current => Err(AppError::precondition_failed()),
        _ => Ok(()),
    }
}

/// The assignee of a task must be on the patient's team now.
fn check_assignee(conn: &mut DbConn, patient_id: &str, user_id: &str) -> AppResult<()> {
    if team::active_member(conn, patient_id, user_id)?.is_some() {
        Ok(())
    } else {
        Err(AppError::field(
            "assignee_id",
            "not_on_team",
            "担当者はこの患者のケアチームの現メンバーから選んでください。",
            "The assignee must be an active member of the patient's care team.",
        ))
    }
}

fn utc(t: DateTime<FixedOffset>) -> NaiveDateTime {
    truncate(t.naive_utc())
}

fn check_not_future(check: &mut Check, field: &str, t: NaiveDateTime) {
    if t > now() + CLOCK_SKEW {
        check.push(
            field,
            "in_future",
            format!("{field} が未来の日時になっています。"),
            format!("{field} is in the future."),
        );
    }
}

fn check_contact(check: &mut Check, contact: Option<&Contact>) {
    if let Some(c) = contact {
        check.required_line("contact.name", &c.name, 100);
        check.phone("contact.phone", c.phone.as_deref());
    }
}

/// Sets the patient's status on admission or discharge, when the move makes sense.
fn move_patient(conn: &mut DbConn, patient_id: &str, to: PatientStatus) -> AppResult<()> {
    let patient = patients::find(conn, patient_id)?.ok_or_else(|| AppError::internal("case without patient"))?;
    let current = patient.status()?;
    if current != to && current.can_become(to) {
        patients::set_status(conn, patient_id, to)?;
    }
    Ok(())
}

/// Ends the care-team membership a case gave its opener (role hospital_staff), if still open.
fn end_opener_membership(conn: &mut DbConn, me: &CurrentUser, case: &Case) -> AppResult<()> {
    let Some(member) = team::find(conn, &case.patient_id, &case.opener_member_id)? else { return Ok(()) };
    if member.ended_at.is_none() && member.role == TeamRole::HospitalStaff.as_str() {
        team::end(conn, &member.id, today_jst(), &me.id)?;
        audit::record(
            conn,
            me,
            Event::new(Action::Update, Resource::CareTeamMember, Some(&member.id), Some(&case.patient_id))
                .detail("discharge case ended"),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cases.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenCase {
    /// An existing patient …
    pub patient_id: Option<crate::api::Id>,
    /// … identified, when the caller is not on the patient's team, by these two.
    pub birth_date: Option<NaiveDate>,
    pub family_name_kana: Option<String>,
    /// Or a patient registered with the case.
    pub patient: Option<RegisterPatient>,
    pub admitted_at: Option<DateTime<FixedOffset>>,
    pub admitted_on: Option<NaiveDate>,
    pub planned_discharge_on: Option<NaiveDate>,
    pub department: Option<String>,
    pub hospital_ward: Option<String>,
    pub reason: Option<String>,
    pub contact: Option<Contact>,
}

impl OpenCase {
    /// Checks the request; gives the admission instant (if known) and day.
    fn check(&self) -> AppResult<(Option<NaiveDateTime>, NaiveDate)> {
        let mut check = Check::new();
        check.optional_id("patient_id", self.patient_id.as_ref());
        match (&self.patient_id, &self.patient) {
            (Some(_), Some(_)) => check.push(
                "patient",
                "one_of",
                "patient_id と patient はどちらか一方だけを指定してください。",
                "Give either patient_id or patient, not both.",
            ),
            (None, None) => check.push(
                "patient_id",
                "required",
                "patient_id(登録済みの患者)または patient(新規登録)を指定してください。",
                "Give patient_id (a registered patient) or patient (a new registration).",
            ),
            (None, Some(p)) => {
                p.check(&mut check, "patient.");
                if p.status.is_some_and(|s| s != PatientStatus::Hospitalized) {
                    check.push(
                        "patient.status",
                        "invalid_initial_status",
                        "入院調整で登録する患者の状態は hospitalized です。",
                        "A patient registered with a discharge case is hospitalized.",
                    );
                }
                if self.birth_date.is_some() || self.family_name_kana.is_some() {
                    check.push(
                        "birth_date",
                        "only_with_patient_id",
                        "birth_date と family_name_kana は patient_id で患者を指定するときに使います。",
                        "birth_date and family_name_kana identify a patient given by patient_id.",
                    );
                }
            }
            (Some(_), None) => {
                if self.birth_date.is_some() != self.family_name_kana.is_some() {
                    check.push(
                        "family_name_kana",
                        "identity_incomplete",
                        "患者の確認には birth_date と family_name_kana の両方を指定してください。",
                        "Identify the patient with both birth_date and family_name_kana.",
                    );
                }
            }
        }
        if let Some(kana) = &self.family_name_kana {
            check.kana("family_name_kana", Some(kana), 100);
        }
        let admitted_at = self.admitted_at.map(utc);
        let admitted_on = match (admitted_at, self.admitted_on) {
            (Some(_), Some(_)) => {
                check.push(
                    "admitted_on",
                    "one_of",
                    "admitted_at と admitted_on はどちらか一方だけを指定してください。",
                    "Give either admitted_at or admitted_on, not both.",
                );
                None
            }
            (None, None) => {
                check.push(
                    "admitted_at",
                    "required",
                    "入院日時 admitted_at(または入院日 admitted_on)を指定してください。",
                    "Give the admission time admitted_at (or the admission date admitted_on).",
                );
                None
            }
            (Some(t), None) => {
                check_not_future(&mut check, "admitted_at", t);
                deadlines::jst_day(t)
            }
            (None, Some(d)) => {
                if d > today_jst() {
                    check.push(
                        "admitted_on",
                        "in_future",
                        "入院日が未来になっています。",
                        "admitted_on is in the future.",
                    );
                }
                Some(d)
            }
        };
        if let (Some(planned), Some(admitted)) = (self.planned_discharge_on, admitted_on) {
            if planned < admitted {
                check.push(
                    "planned_discharge_on",
                    "before_admission",
                    "退院予定日が入院日より前です。",
                    "planned_discharge_on is before the admission.",
                );
            }
        }
        check.line("department", self.department.as_deref(), 100);
        check.line("hospital_ward", self.hospital_ward.as_deref(), 100);
        check.optional_text("reason", self.reason.as_deref(), 2000);
        check_contact(&mut check, self.contact.as_ref());
        check.finish()?;
        let admitted_on = admitted_on.ok_or_else(|| AppError::internal("admission day missing after checks"))?;
        Ok((admitted_at, admitted_on))
    }
}

/// `POST /discharge-cases`: hospital staff open a case for an admitted patient.
pub async fn open(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    body: web::Json<OpenCase>,
) -> AppResult<HttpResponse> {
    let key = api::idempotency_key(&req)?;
    let body = body.into_inner();
    let (admitted_at, admitted_on) = body.check()?;
    let mailer = state.mail.clone();
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let at = now();
            if let Some(key) = &key {
                if let Some(existing) = cases::find_by_idempotency_key(conn, &me.id, key)? {
                    if body.patient_id.as_ref().is_some_and(|p| *p != existing.patient_id) {
                        return Err(key_reused());
                    }
                    let (case, _) = access::case(conn, &me, &existing.id, Need::Read)?;
                    audit::record(
                        conn,
                        &me,
                        Event::new(Action::Read, Resource::DischargeCase, Some(&case.id), Some(&case.patient_id))
                            .detail("replay"),
                    )?;
                    return Ok(Created { view: cases::view(conn, case, at)?, replayed: true });
                }
            }
            let org = crate::orgs::find(conn, &me.organization_id)?
                .ok_or_else(|| AppError::internal("user without organisation"))?;
            access::open_discharge_case(OrgKind::from_db(&org.kind)?)?;
            let (patient, member) = match (body.patient_id, body.patient) {
                (Some(id), _) => {
                    let identity = match (body.birth_date, body.family_name_kana.as_deref()) {
                        (Some(birth_date), Some(family_name_kana)) => {
                            Some(PatientIdentity { birth_date, family_name_kana })
                        }
                        _ => None,
                    };
                    access::patient_for_new_case(conn, &me, &id, identity, &mailer)?
                }
                (None, Some(registration)) => {
                    check_ward(conn, &registration.ward_code)?;
                    let patient =
                        patients::insert(conn, registration.into_new_patient(PatientStatus::Hospitalized), &me.id)?;
                    audit::record(
                        conn,
                        &me,
                        Event::new(Action::Create, Resource::Patient, Some(&patient.id), Some(&patient.id)),
                    )?;
                    (patient, None)
                }
                (None, None) => return Err(AppError::internal("patient missing after checks")),
            };
            if let Some(running) = cases::running_for_patient(conn, &patient.id)? {
                return Err(AppError::conflict(
                    format!(
                        "この患者には進行中の入退院調整があります(状態: {})。終了または取消してから開始してください。",
                        running.status
                    ),
                    format!(
                        "This patient already has a running discharge case ({}). Close or cancel it first.",
                        running.status
                    ),
                ));
            }
            let current = patient.status()?;
            if current != PatientStatus::Hospitalized && !current.can_become(PatientStatus::Hospitalized) {
                return Err(AppError::conflict(
                    format!("患者の状態が {current} のため入退院調整を開始できません。"),
                    format!("A discharge case cannot be opened for a patient who is {current}."),
                ));
            }
            move_patient(conn, &patient.id, PatientStatus::Hospitalized)?;
            let opener_member_id = match member {
                Some(m) => m.id,
                None => {
                    let m = team::add(
                        conn,
                        &patient.id,
                        &me.id,
                        &me.organization_id,
                        TeamRole::HospitalStaff,
                        false,
                        today_jst(),
                        &me.id,
                    )?;
                    audit::record(
                        conn,
                        &me,
                        Event::new(Action::Create, Resource::CareTeamMember, Some(&m.id), Some(&patient.id)),
                    )?;
                    m.id
                }
            };
            let (contact_name, contact_phone) = match body.contact {
                Some(c) => (Some(c.name), c.phone),
                None => (None, None),
            };
            let case = Case {
                id: new_id(),
                patient_id: patient.id.clone(),
                hospital_id: me.organization_id.clone(),
                opened_by: me.id.clone(),
                opener_member_id,
                admitted_at,
                admitted_on,
                planned_discharge_on: body.planned_discharge_on,
                discharged_on: None,
                status: CaseStatus::Open.as_str().into(),
                department: body.department,
                hospital_ward: body.hospital_ward,
                reason: body.reason,
                contact_name,
                contact_phone,
                cancel_reason: None,
                closed_at: None,
                cancelled_at: None,
                idempotency_key: key,
                version: 1,
                created_at: at,
                updated_at: at,
            };
            cases::insert(conn, &case)?;
            let generated = tasks::generate(conn, &case, &me.id)?;
            notices::case_opened(conn, &mailer, &case, &me.id)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Create, Resource::DischargeCase, Some(&case.id), Some(&case.patient_id))
                    .detail(format!("tasks:{}", generated.len())),
            )?;
            Ok(Created { view: cases::view(conn, case, at)?, replayed: false })
        })
        .await;
    let done = done?;
    let (location, version) = (format!("/api/v1/discharge-cases/{}", done.view.id), done.view.version);
    Ok(created(done, location, Some(version)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListCases {
    pub status: Option<CaseStatus>,
    pub hospital_id: Option<crate::api::Id>,
    pub ward: Option<String>,
    pub overdue: Option<bool>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// `GET /discharge-cases`: the cases of the patients the caller may read; each listed case is
/// audited as a read.
pub async fn list(state: web::Data<AppState>, bearer: Bearer, query: web::Query<ListCases>) -> AppResult<HttpResponse> {
    let q = query.into_inner();
    let paging = PageQuery { limit: q.limit, cursor: q.cursor.clone() };
    let (limit, before) = (paging.limit()?, paging.after()?);
    let mut check = Check::new();
    check.optional_id("hospital_id", q.hospital_id.as_ref());
    check.finish()?;
    let hospital_id = q.hospital_id.map(crate::api::Id::into_string);
    let filter = CaseFilter { status: q.status, hospital_id, ward_code: q.ward, overdue: q.overdue };
    let page = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let at = now();
            let withheld = access::withheld_from_coordinator(conn, &me)?;
            let rows = cases::search_visible(conn, &me.id, &filter, &withheld, before.as_deref(), limit, at)?;
            let reads = rows
                .iter()
                .take(limit as usize)
                .map(|c| {
                    Event::new(Action::Read, Resource::DischargeCase, Some(&c.id), Some(&c.patient_id)).detail("list")
                })
                .collect();
            audit::record_all(conn, &me, reads)?;
            let views = cases::views(conn, rows, at)?;
            Ok(api::page(views, limit, |c| c.id.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /discharge-cases/{id}`.
pub async fn get(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (case, _) = access::case(conn, &me, &id, Need::Read)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::DischargeCase, Some(&case.id), Some(&case.patient_id)),
            )?;
            cases::view(conn, case, now())
        })
        .await?;
    Ok(etagged(StatusCode::OK, view.version, &view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateCase {
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub planned_discharge_on: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub department: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub hospital_ward: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub reason: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub contact: Option<Option<Contact>>,
}

/// `PATCH /discharge-cases/{id}`: the hospital changes the planned discharge date (open tasks'
/// deadlines move with it) and the case's details. `If-Match` required.
pub async fn update(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
    body: web::Json<UpdateCase>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let body = body.into_inner();
    let if_match = api::if_match(&req)?;
    let mut check = Check::new();
    if let Some(d) = &body.department {
        check.line("department", d.as_deref(), 100);
    }
    if let Some(w) = &body.hospital_ward {
        check.line("hospital_ward", w.as_deref(), 100);
    }
    if let Some(r) = &body.reason {
        check.optional_text("reason", r.as_deref(), 2000);
    }
    if let Some(c) = &body.contact {
        check_contact(&mut check, c.as_ref());
    }
    check.finish()?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (case, relation) = access::case(conn, &me, &id, Need::Write)?;
            access::manage_discharge_case(conn, &me, &relation, &case)?;
            let expected = if_match.ok_or_else(AppError::precondition_required)?;
            check_version(Some(expected), case.version)?;
            require_active(&case)?;
            let planned_changes = body.planned_discharge_on.is_some_and(|p| p != case.planned_discharge_on);
            if let Some(planned) = body.planned_discharge_on {
                if planned_changes && case.status()? != CaseStatus::Open {
                    return Err(AppError::conflict(
                        "退院後は退院予定日を変更できません。",
                        "The planned discharge date cannot change once the patient is discharged.",
                    ));
                }
                if planned.is_some_and(|p| p < case.admitted_on) {
                    return Err(AppError::field(
                        "planned_discharge_on",
                        "before_admission",
                        "退院予定日が入院日より前です。",
                        "planned_discharge_on is before the admission.",
                    ));
                }
            }
            let (contact_name, contact_phone) = match body.contact {
                None => (None, None),
                Some(None) => (Some(None), Some(None)),
                Some(Some(c)) => (Some(Some(c.name)), Some(c.phone)),
            };
            let changes = CaseChanges {
                planned_discharge_on: body.planned_discharge_on,
                department: body.department,
                hospital_ward: body.hospital_ward,
                reason: body.reason,
                contact_name,
                contact_phone,
                ..Default::default()
            };
            if !cases::update(conn, &case.id, expected, &changes)? {
                return Err(AppError::precondition_failed());
            }
            let case = cases::find(conn, &case.id)?.ok_or_else(AppError::not_found)?;
            if planned_changes {
                tasks::recompute_deadlines(conn, &case)?;
            }
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, Resource::DischargeCase, Some(&case.id), Some(&case.patient_id)),
            )?;
            cases::view(conn, case, now())
        })
        .await?;
    Ok(etagged(StatusCode::OK, view.version, &view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discharge {
    pub discharged_on: NaiveDate,
}

/// `POST /discharge-cases/{id}/discharge`: the patient left hospital. The patient is home again,
/// the post-discharge deadlines start, and the team is told.
pub async fn discharge(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
    body: web::Json<Discharge>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let discharged_on = body.into_inner().discharged_on;
    let expected = api::if_match(&req)?;
    if discharged_on > today_jst() {
        return Err(AppError::field(
            "discharged_on",
            "in_future",
            "退院日が未来になっています。",
            "discharged_on is in the future.",
        ));
    }
    let mailer = state.mail.clone();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (case, relation) = access::case(conn, &me, &id, Need::Write)?;
            access::manage_discharge_case(conn, &me, &relation, &case)?;
            check_version(expected, case.version)?;
            let status = case.status()?;
            if status != CaseStatus::Open {
                return Err(AppError::conflict(
                    format!("退院を記録できるのは open の入退院調整だけです(現在: {status})。"),
                    format!("Only an open case can be discharged; this one is {status}."),
                ));
            }
            if discharged_on < case.admitted_on {
                return Err(AppError::field(
                    "discharged_on",
                    "before_admission",
                    "退院日が入院日より前です。",
                    "discharged_on is before the admission.",
                ));
            }
            let changes = CaseChanges {
                status: Some(CaseStatus::Discharged.as_str().into()),
                discharged_on: Some(Some(discharged_on)),
                ..Default::default()
            };
            if !cases::update(conn, &case.id, case.version, &changes)? {
                return Err(AppError::precondition_failed());
            }
            let case = cases::find(conn, &case.id)?.ok_or_else(AppError::not_found)?;
            tasks::recompute_deadlines(conn, &case)?;
            move_patient(conn, &case.patient_id, PatientStatus::Home)?;
            notices::patient_discharged(conn, &mailer, &case, &me.id)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, Resource::DischargeCase, Some(&case.id), Some(&case.patient_id))
                    .detail("discharged"),
            )?;
            cases::view(conn, case, now())
        })
        .await?;
    Ok(etagged(StatusCode::OK, view.version, &view))
}

/// `POST /discharge-cases/{id}/close`: coordination is over. Every task must be completed or
/// cancelled first; the case's hospital-staff membership ends.
pub async fn close(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let expected = api::if_match(&req)?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (case, relation) = access::case(conn, &me, &id, Need::Write)?;
            access::manage_discharge_case(conn, &me, &relation, &case)?;
            check_version(expected, case.version)?;
            let status = case.status()?;
            if status != CaseStatus::Discharged {
                return Err(AppError::conflict(
                    format!("終了できるのは退院済み(discharged)の入退院調整だけです(現在: {status})。入院中の調整は退院を記録するか取消してください。"),
                    format!("Only a discharged case can be closed; this one is {status}. Record the discharge or cancel the case."),
                ));
            }
            let open = tasks::open_count(conn, &case.id)?;
            if open > 0 {
                return Err(AppError::conflict(
                    format!("未完了のタスクが {open} 件あります。完了または取消してから終了してください。"),
                    format!("{open} task(s) are still open. Complete or cancel them before closing the case."),
                ));
            }
            let changes = CaseChanges {
                status: Some(CaseStatus::Closed.as_str().into()),
                closed_at: Some(Some(now())),
                ..Default::default()
            };
            if !cases::update(conn, &case.id, case.version, &changes)? {
                return Err(AppError::precondition_failed());
            }
            end_opener_membership(conn, &me, &case)?;
            audit::record(conn, &me, Event::new(Action::Update, Resource::DischargeCase, Some(&case.id), Some(&case.patient_id)).detail("closed"))?;
            let case = cases::find(conn, &case.id)?.ok_or_else(AppError::not_found)?;
            cases::view(conn, case, now())
        })
        .await?;
    Ok(etagged(StatusCode::OK, view.version, &view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cancel {
    pub reason: String,
}

/// `POST /discharge-cases/{id}/cancel`: the case is void (e.g. transferred to another hospital).
/// Its open tasks are cancelled, the patient is home again, the opener's membership ends.
pub async fn cancel(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
    body: web::Json<Cancel>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let reason = body.into_inner().reason;
    let expected = api::if_match(&req)?;
    let mut check = Check::new();
    check.text("reason", &reason, 1000);
    check.finish()?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (case, relation) = access::case(conn, &me, &id, Need::Write)?;
            access::manage_discharge_case(conn, &me, &relation, &case)?;
            check_version(expected, case.version)?;
            let status = case.status()?;
            if status != CaseStatus::Open {
                return Err(AppError::conflict(
                    format!("取消できるのは open の入退院調整だけです(現在: {status})。"),
                    format!("Only an open case can be cancelled; this one is {status}."),
                ));
            }
            tasks::cancel_open(conn, &case.id, "入退院調整の取消 (discharge case cancelled)")?;
            let changes = CaseChanges {
                status: Some(CaseStatus::Cancelled.as_str().into()),
                cancel_reason: Some(Some(reason)),
                cancelled_at: Some(Some(now())),
                ..Default::default()
            };
            if !cases::update(conn, &case.id, case.version, &changes)? {
                return Err(AppError::precondition_failed());
            }
            move_patient(conn, &case.patient_id, PatientStatus::Home)?;
            end_opener_membership(conn, &me, &case)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Update, Resource::DischargeCase, Some(&case.id), Some(&case.patient_id))
                    .detail("cancelled"),
            )?;
            let case = cases::find(conn, &case.id)?.ok_or_else(AppError::not_found)?;
            cases::view(conn, case, now())
        })
        .await?;
    Ok(etagged(StatusCode::OK, view.version, &view))
}

// ---------------------------------------------------------------------------------------------
// Conferences.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConference {
    pub held_at: DateTime<FixedOffset>,
    pub place: Option<String>,
    #[serde(default)]
    pub video: bool,
    pub attendees: Vec<Attendee>,
    pub content: String,
}

#[derive(Serialize)]
struct Items<T: Serialize> {
    items: Vec<T>,
}

/// `POST /discharge-cases/{id}/conferences`: records the discharge conference and completes the
/// case's `joint_discharge_conference` task if it is open.
pub async fn record_conference(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
    body: web::Json<NewConference>,
) -> AppResult<HttpResponse> {
    let case_id = path.into_inner().into_string();
    let key = api::idempotency_key(&req)?;
    let body = body.into_inner();
    let held_at = utc(body.held_at);
    let mut check = Check::new();
    check_not_future(&mut check, "held_at", held_at);
    check.line("place", body.place.as_deref(), 200);
    if !body.video && body.place.as_deref().is_none_or(|p| p.trim().is_empty()) {
        check.push(
            "place",
            "place_or_video",
            "開催場所 place を入力するか、ビデオ通話なら video を true にしてください。",
            "Give the place, or set video to true for a video conference.",
        );
    }
    if body.attendees.is_empty() || body.attendees.len() > 50 {
        check.push("attendees", "count", "参加者を1〜50人記録してください。", "Record 1 to 50 attendees.");
    }
    for (i, a) in body.attendees.iter().enumerate() {
        check.required_line(&format!("attendees[{i}].name"), &a.name, 100);
        check.line(&format!("attendees[{i}].organization"), a.organization.as_deref(), 200);
    }
    check.text("content", &body.content, 10_000);
    check.finish()?;
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            if let Some(key) = &key {
                if let Some(existing) = conferences::find_by_idempotency_key(conn, &me.id, key)? {
                    if existing.case_id != case_id {
                        return Err(key_reused());
                    }
                    access::case(conn, &me, &case_id, Need::Read)?;
                    audit::record(
                        conn,
                        &me,
                        Event::new(
                            Action::Read,
                            Resource::DischargeConference,
                            Some(&existing.id),
                            Some(&existing.patient_id),
                        )
                        .detail("replay"),
                    )?;
                    return Ok(Created { view: conferences::view(conn, existing)?, replayed: true });
                }
            }
            let (case, _) = access::case(conn, &me, &case_id, Need::Write)?;
            require_active(&case)?;
            let conference = Conference {
                id: new_id(),
                case_id: case.id.clone(),
                patient_id: case.patient_id.clone(),
                held_at,
                place: body.place.filter(|p| !p.trim().is_empty()),
                video: body.video,
                content: body.content,
                recorded_by: me.id.clone(),
                idempotency_key: key,
                created_at: now(),
            };
            let attendees: Vec<AttendeeRow> = body
                .attendees
                .into_iter()
                .enumerate()
                .map(|(i, a)| AttendeeRow {
                    id: new_id(),
                    conference_id: conference.id.clone(),
                    patient_id: case.patient_id.clone(),
                    position: i as i32,
                    name: a.name,
                    profession: a.profession.as_str().into(),
                    organization: a.organization,
                })
                .collect();
            conferences::insert(conn, &conference, &attendees)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Create, Resource::DischargeConference, Some(&conference.id), Some(&case.patient_id)),
            )?;
            if let Some(task_id) =
                tasks::complete_open_from_template(conn, &case.id, conferences::CONFERENCE_TEMPLATE_KEY, &me.id)?
            {
                audit::record(
                    conn,
                    &me,
                    Event::new(Action::Update, Resource::DischargeTask, Some(&task_id), Some(&case.patient_id))
                        .detail("completed by conference"),
                )?;
            }
            Ok(Created { view: conferences::view(conn, conference)?, replayed: false })
        })
        .await?;
    let location = format!("/api/v1/discharge-cases/{}/conferences", done.view.case_id);
    Ok(created(done, location, None))
}

/// `GET /discharge-cases/{id}/conferences`.
pub async fn list_conferences(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let case_id = path.into_inner().into_string();
    let items = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (case, _) = access::case(conn, &me, &case_id, Need::Read)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::DischargeConference, None, Some(&case.patient_id)).detail("list"),
            )?;
            conferences::for_case(conn, &case.id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}

// ---------------------------------------------------------------------------------------------
// Tasks.

/// `GET /discharge-cases/{id}/tasks`: every task of the case, in the templates' order.
pub async fn list_tasks(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let case_id = path.into_inner().into_string();
    let items = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (case, _) = access::case(conn, &me, &case_id, Need::Read)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::DischargeTask, None, Some(&case.patient_id)).detail("list"),
            )?;
            let rows = tasks::for_case(conn, &case.id)?;
            tasks::views(conn, rows, now())
        })
        .await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    pub title: String,
    pub description: Option<String>,
    pub profession: Option<Profession>,
    pub assignee_id: Option<crate::api::Id>,
    pub due_at: Option<DateTime<FixedOffset>>,
    /// By the end of this day in Japan.
    pub due_on: Option<NaiveDate>,
}

/// `POST /discharge-cases/{id}/tasks`: an ad-hoc task, for a profession or a team member.
pub async fn add_task(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
    body: web::Json<NewTask>,
) -> AppResult<HttpResponse> {
    let case_id = path.into_inner().into_string();
    let key = api::idempotency_key(&req)?;
    let body = body.into_inner();
    let mut check = Check::new();
    check.required_line("title", &body.title, 200);
    check.optional_text("description", body.description.as_deref(), 2000);
    check.optional_id("assignee_id", body.assignee_id.as_ref());
    if body.profession.is_none() && body.assignee_id.is_none() {
        check.push(
            "profession",
            "assignment_required",
            "担当職種 profession か担当者 assignee_id を指定してください。",
            "Assign the task to a profession or to a team member (assignee_id).",
        );
    }
    let due_at = match (body.due_at, body.due_on) {
        (Some(_), Some(_)) => {
            check.push(
                "due_on",
                "one_of",
                "due_at と due_on はどちらか一方だけを指定してください。",
                "Give either due_at or due_on, not both.",
            );
            None
        }
        (Some(t), None) => Some(utc(t)),
        (None, Some(d)) => deadlines::end_of_jst_day(d),
        (None, None) => None,
    };
    check.finish()?;
    let mailer = state.mail.clone();
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let at = now();
            if let Some(key) = &key {
                if let Some(existing) = tasks::find_by_idempotency_key(conn, &me.id, key)? {
                    if existing.case_id != case_id {
                        return Err(key_reused());
                    }
                    let (task, _) = access::task(conn, &me, &existing.id, Need::Read)?;
                    audit::record(
                        conn,
                        &me,
                        Event::new(Action::Read, Resource::DischargeTask, Some(&task.id), Some(&task.patient_id))
                            .detail("replay"),
                    )?;
                    return Ok(Created { view: tasks::view(conn, task, at)?, replayed: true });
                }
            }
            let (case, _) = access::case(conn, &me, &case_id, Need::Write)?;
            require_active(&case)?;
            let mut profession = body.profession.map(|p| p.as_str().to_string());
            if let Some(assignee) = &body.assignee_id {
                check_assignee(conn, &case.patient_id, assignee)?;
                if profession.is_none() {
                    profession = crate::users::find(conn, assignee)?.map(|u| u.profession);
                }
            }
            let task = Task {
                id: new_id(),
                case_id: case.id.clone(),
                patient_id: case.patient_id.clone(),
                template_key: None,
                title: body.title,
                description: body.description,
                source: None,
                profession,
                assignee_id: body.assignee_id.map(crate::api::Id::into_string),
                anchor: None,
                offset_days: None,
                due_rule: None,
                business_hours_rule: None,
                due_at,
                status: TaskStatus::Requested.as_str().into(),
                status_reason: None,
                completed_at: None,
                completed_by: None,
                sort_order: tasks::AD_HOC_SORT_ORDER,
                created_by: me.id.clone(),
                idempotency_key: key,
                version: 1,
                created_at: at,
                updated_at: at,
            };
            tasks::insert(conn, &task)?;
            if let Some(assignee) = &task.assignee_id {
                notices::task_assigned(conn, &mailer, &task, assignee, &me.id)?;
            }
            audit::record(
                conn,
                &me,
                Event::new(Action::Create, Resource::DischargeTask, Some(&task.id), Some(&task.patient_id)),
            )?;
            Ok(Created { view: tasks::view(conn, task, at)?, replayed: false })
        })
        .await?;
    let (location, version) = (format!("/api/v1/tasks/{}", done.view.id), done.view.version);
    Ok(created(done, location, Some(version)))
}

/// `GET /tasks/{id}`.
pub async fn get_task(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (task, _) = access::task(conn, &me, &id, Need::Read)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::DischargeTask, Some(&task.id), Some(&task.patient_id)),
            )?;
            tasks::view(conn, task, now())
        })
        .await?;
    Ok(etagged(StatusCode::OK, view.version, &view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTask {
    pub status: Option<TaskStatus>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub status_reason: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub assignee_id: Option<Option<crate::api::Id>>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub profession: Option<Option<Profession>>,
    /// Ad-hoc tasks only: a task from a template follows its rule.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub due_at: Option<Option<DateTime<FixedOffset>>>,
}

/// `PATCH /tasks/{id}`: status, assignment and (ad-hoc tasks) deadline. `If-Match` required.
pub async fn update_task(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
    body: web::Json<UpdateTask>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let body = body.into_inner();
    let if_match = api::if_match(&req)?;
    let mut check = Check::new();
    if let Some(r) = &body.status_reason {
        check.optional_text("status_reason", r.as_deref(), 1000);
    }
    if let Some(assignee) = &body.assignee_id {
        check.optional_id("assignee_id", assignee.as_ref());
    }
    check.finish()?;
    let assignee_id: Option<Option<String>> = body.assignee_id.clone().map(|a| a.map(crate::api::Id::into_string));
    let mailer = state.mail.clone();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (task, case) = access::task(conn, &me, &id, Need::Write)?;
            let expected = if_match.ok_or_else(AppError::precondition_required)?;
            check_version(Some(expected), task.version)?;
            require_active(&case)?;
            let current = task.status()?;
            if let Some(next) = body.status {
                if next != current && !current.can_become(next) {
                    let allowed: Vec<&str> = current.next().iter().map(|s| s.as_str()).collect();
                    let allowed = if allowed.is_empty() { "(なし / none)".to_string() } else { allowed.join(", ") };
                    return Err(AppError::conflict(
                        format!("タスクの状態を {current} から {next} に変更することはできません。{current} から変更できる状態: {allowed}"),
                        format!("A task cannot move from {current} to {next}. From {current} it may move to: {allowed}"),
                    ));
                }
            }
            if let Some(Some(assignee)) = &assignee_id {
                check_assignee(conn, &task.patient_id, assignee)?;
            }
            let assignee_after = assignee_id.clone().unwrap_or_else(|| task.assignee_id.clone());
            let profession_after = match &body.profession {
                Some(p) => p.map(|p| p.as_str().to_string()),
                None => task.profession.clone(),
            };
            if assignee_after.is_none() && profession_after.is_none() {
                return Err(AppError::field(
                    "assignee_id",
                    "assignment_required",
                    "タスクには担当職種か担当者のどちらかが必要です。",
                    "A task stays assigned to a profession or to a team member.",
                ));
            }
            if body.due_at.is_some() && task.template_key.is_some() {
                return Err(AppError::field(
                    "due_at",
                    "rule_based",
                    "テンプレートから作られたタスクの期限は入院日・退院(予定)日から決まります。日付を変更してください。",
                    "A task from a template is due by its rule; change the case's dates instead.",
                ));
            }
            let completing = body.status == Some(TaskStatus::Completed) && current != TaskStatus::Completed;
            let changes = TaskChanges {
                status: body.status.map(|s| s.as_str().to_string()),
                status_reason: body.status_reason,
                assignee_id: assignee_id.clone(),
                profession: body.profession.map(|p| p.map(|p| p.as_str().to_string())),
                due_at: body.due_at.map(|d| d.map(utc)),
                completed_at: completing.then(|| Some(now())),
                completed_by: completing.then(|| Some(me.id.clone())),
                ..Default::default()
            };
            if !tasks::update(conn, &task.id, expected, &changes)? {
                return Err(AppError::precondition_failed());
            }
            let updated = tasks::find(conn, &task.id)?.ok_or_else(AppError::not_found)?;
            if let Some(Some(assignee)) = &assignee_id {
                if task.assignee_id.as_ref() != Some(assignee) {
                    notices::task_assigned(conn, &mailer, &updated, assignee, &me.id)?;
                }
            }
            audit::record(conn, &me, Event::new(Action::Update, Resource::DischargeTask, Some(&task.id), Some(&task.patient_id)))?;
            tasks::view(conn, updated, now())
        })
        .await?;
    Ok(etagged(StatusCode::OK, view.version, &view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    pub text: String,
}

/// `POST /tasks/{id}/comments`: a comment, shown in the task.
pub async fn add_comment(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
    body: web::Json<NewComment>,
) -> AppResult<HttpResponse> {
    let task_id = path.into_inner().into_string();
    let key = api::idempotency_key(&req)?;
    let text = body.into_inner().text;
    let mut check = Check::new();
    check.text("text", &text, 2000);
    check.finish()?;
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            if let Some(key) = &key {
                if let Some(existing) = tasks::find_comment_by_idempotency_key(conn, &me.id, key)? {
                    if existing.task_id != task_id {
                        return Err(key_reused());
                    }
                    access::task(conn, &me, &task_id, Need::Read)?;
                    audit::record(
                        conn,
                        &me,
                        Event::new(
                            Action::Read,
                            Resource::DischargeTaskComment,
                            Some(&existing.id),
                            Some(&existing.patient_id),
                        )
                        .detail("replay"),
                    )?;
                    return Ok(Created { view: tasks::comment_view(conn, &existing)?, replayed: true });
                }
            }
            let (task, case) = access::task(conn, &me, &task_id, Need::Write)?;
            require_active(&case)?;
            let comment = Comment {
                id: new_id(),
                task_id: task.id.clone(),
                patient_id: task.patient_id.clone(),
                author_id: me.id.clone(),
                text,
                idempotency_key: key,
                created_at: now(),
            };
            tasks::insert_comment(conn, &comment)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Create, Resource::DischargeTaskComment, Some(&comment.id), Some(&task.patient_id)),
            )?;
            Ok(Created { view: tasks::comment_view(conn, &comment)?, replayed: false })
        })
        .await?;
    let location = format!("/api/v1/tasks/{}", done.view.task_id);
    Ok(created(done, location, None))
}

/// `GET /me/tasks`: the caller's open tasks and their profession's unassigned ones, across the
/// patients on whose team they are now; overdue first, then by deadline.
pub async fn my_tasks(
    state: web::Data<AppState>,
    bearer: Bearer,
    query: web::Query<PageQuery>,
) -> AppResult<HttpResponse> {
    let limit = query.limit()?;
    let after = match query.after()? {
        None => None,
        Some(position) => Some(tasks::parse_my_tasks_position(&position).ok_or_else(crate::api::invalid_cursor)?),
    };
    let page = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let rows = tasks::mine(conn, &me.id, me.profession, after.as_ref(), limit)?;
            let reads = rows
                .iter()
                .take(limit as usize)
                .map(|t| {
                    Event::new(Action::Read, Resource::DischargeTask, Some(&t.id), Some(&t.patient_id))
                        .detail("me_tasks")
                })
                .collect();
            audit::record_all(conn, &me, reads)?;
            let views = tasks::views(conn, rows, now())?;
            Ok(api::page(views, limit, tasks::my_tasks_position))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

// ---------------------------------------------------------------------------------------------
// Templates.

/// `GET /discharge-task-templates`: every template with its deadline rule, for anyone signed in
/// (they hold no patient data).
pub async fn list_templates(state: web::Data<AppState>, bearer: Bearer) -> AppResult<HttpResponse> {
    let items = state
        .db
        .run(move |conn| {
            bearer.user(conn)?;
            templates::all_templates(conn)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}
