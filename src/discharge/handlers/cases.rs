//! `/discharge-cases`: open, list, read, change and move a case through its life.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{check_contact, check_not_future, created, etagged, utc};
use crate::access::{self, Need, PatientIdentity, RequestedPatient};
use crate::api::{self, Check, Id, Json, PageQuery};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::db::now;
use crate::discharge::cases::{self, CaseFilter, Contact};
use crate::discharge::workflow::{self, CaseDetails, CasePatient, NewCase, Step};
use crate::discharge::{deadlines, CaseStatus};
use crate::error::{AppError, AppResult};
use crate::idempotency::{self, Answer};
use crate::patients::handlers::{check_ward, RegisterPatient};
use crate::patients::insurance::Identifier;
use crate::patients::today_jst;
use crate::state::AppState;
use crate::vocab::PatientStatus;

/// A patient registered with the case, kept as sent too, so that the request's fingerprint
/// (`idempotency::fingerprint`) covers it: the registration form itself cannot be serialised.
#[derive(Debug)]
pub struct Registration {
    sent: serde_json::Value,
    form: RegisterPatient,
}

impl<'de> Deserialize<'de> for Registration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Registration, D::Error> {
        let sent = serde_json::Value::deserialize(d)?;
        let form = RegisterPatient::deserialize(&sent).map_err(serde::de::Error::custom)?;
        Ok(Registration { sent, form })
    }
}

impl Serialize for Registration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.sent.serialize(s)
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpenCase {
    /// An existing patient …
    pub patient_id: Option<Id>,
    /// … or an existing patient found by the insurance number on their card …
    pub insurance_number: Option<Identifier>,
    /// … identified, when the caller is not on the patient's team (and always with an
    /// insurance number), by these two.
    pub birth_date: Option<NaiveDate>,
    pub family_name_kana: Option<String>,
    /// Or a patient registered with the case.
    pub patient: Option<Registration>,
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
        let named = [self.patient_id.is_some(), self.insurance_number.is_some(), self.patient.is_some()];
        if named.iter().filter(|n| **n).count() > 1 {
            check.push(
                "patient",
                "one_of",
                "patient_id、insurance_number、patient はどれか一つだけを指定してください。",
                "Give one of patient_id, insurance_number or patient.",
            );
        }
        match (&self.patient_id, &self.insurance_number, &self.patient) {
            (None, None, None) => check.push(
                "patient_id",
                "required",
                "patient_id(登録済みの患者)、insurance_number(保険証の番号)または patient(新規登録)を指定してください。",
                "Give patient_id (a registered patient), insurance_number (the numbers on the insurance card) or patient (a new registration).",
            ),
            (None, None, Some(p)) => {
                p.form.check(&mut check, "patient.");
                if p.form.status.is_some_and(|s| s != PatientStatus::Hospitalized) {
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
                        "birth_date と family_name_kana は patient_id か insurance_number で患者を指定するときに使います。",
                        "birth_date and family_name_kana identify a patient given by patient_id or insurance_number.",
                    );
                }
            }
            (None, Some(number), None) => {
                number.check(&mut check, "insurance_number.");
                if self.birth_date.is_none() || self.family_name_kana.is_none() {
                    check.push(
                        "family_name_kana",
                        "identity_incomplete",
                        "保険証の番号で患者を探すときは birth_date と family_name_kana も指定してください。",
                        "To find a patient by insurance number, give birth_date and family_name_kana too.",
                    );
                }
            }
            (Some(_), None, None) if self.birth_date.is_some() != self.family_name_kana.is_some() => check.push(
                "family_name_kana",
                "identity_incomplete",
                "患者の確認には birth_date と family_name_kana の両方を指定してください。",
                "Identify the patient with both birth_date and family_name_kana.",
            ),
            _ => {}
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

/// `POST /discharge-cases`: hospital staff open a case for an admitted patient. Offline-safe
/// with `Idempotency-Key`.
pub async fn open(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    body: Json<OpenCase>,
) -> AppResult<HttpResponse> {
    let key = idempotency::key_from(&req)?;
    let body = body.into_inner();
    let fingerprint = idempotency::fingerprint("POST", req.path(), &body);
    let (admitted_at, admitted_on) = body.check()?;
    let mailer = state.mail.clone();
    let answer = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::open_case(conn, &me)?;
            let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
                let identity = match (body.birth_date, body.family_name_kana.as_deref()) {
                    (Some(birth_date), Some(family_name_kana)) => {
                        Some(PatientIdentity { birth_date, family_name_kana })
                    }
                    _ => None,
                };
                let requested = match (&body.patient_id, &body.insurance_number) {
                    (Some(id), _) => Some(RequestedPatient::Id(id.as_str())),
                    (None, Some(number)) => Some(RequestedPatient::Insurance(number)),
                    (None, None) => None,
                };
                let patient = match (requested, body.patient) {
                    (Some(requested), _) => {
                        let (patient, member) = access::patient_for_new_case(conn, &me, requested, identity, &mailer)?;
                        CasePatient::Registered(Box::new(patient), member)
                    }
                    (None, Some(registration)) => {
                        check_ward(conn, &registration.form.ward_code)?;
                        if registration.form.spo2_target_88_92 {
                            access::decide_spo2_target(me.profession)?;
                        }
                        CasePatient::New(registration.form.into_new_patient(PatientStatus::Hospitalized))
                    }
                    (None, None) => return Err(AppError::internal("patient missing after checks")),
                };
                let case = NewCase {
                    patient,
                    admitted_at,
                    admitted_on,
                    planned_discharge_on: body.planned_discharge_on,
                    department: body.department,
                    hospital_ward: body.hospital_ward,
                    reason: body.reason,
                    contact: body.contact,
                };
                let case = workflow::transition(conn, &me, Step::Open { case: Box::new(case), mailer: &mailer })?;
                Answer::json(StatusCode::CREATED, &cases::view(conn, case, now())?)
            })?;
            if answer.replayed {
                let id = answer.id().ok_or_else(|| AppError::internal("stored case answer without id"))?;
                let (case, _) = access::case(conn, &me, &id, Need::Read)?;
                audit::record(
                    conn,
                    &me,
                    Event::new(Action::Read, Resource::DischargeCase, Some(&case.id), Some(&case.patient_id))
                        .detail("idempotent replay"),
                )?;
            }
            Ok(answer)
        })
        .await?;
    let location = format!("/api/v1/discharge-cases/{}", answer.id().unwrap_or_default());
    Ok(created(answer, location))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListCases {
    pub status: Option<CaseStatus>,
    pub hospital_id: Option<Id>,
    pub ward: Option<String>,
    pub overdue: Option<bool>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// `GET /discharge-cases`: the cases of the patients the caller may read; each listed case is
/// audited as a read.
pub async fn list(state: web::Data<AppState>, bearer: Bearer, query: api::Query<ListCases>) -> AppResult<HttpResponse> {
    let q = query.into_inner();
    let paging = PageQuery { limit: q.limit, cursor: q.cursor.clone() };
    let (limit, before) = (paging.limit()?, paging.after()?);
    let mut check = Check::new();
    check.optional_id("hospital_id", q.hospital_id.as_ref());
    check.finish()?;
    let hospital_id = q.hospital_id.map(Id::into_string);
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
pub async fn get(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
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
    Ok(etagged(view.version, &view))
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
    path: web::Path<Id>,
    body: Json<UpdateCase>,
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
    let details = CaseDetails {
        planned_discharge_on: body.planned_discharge_on,
        department: body.department,
        hospital_ward: body.hospital_ward,
        reason: body.reason,
        contact: body.contact,
    };
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let case = access::case_to_manage(conn, &me, &id)?;
            let expected = if_match.ok_or_else(AppError::precondition_required)?;
            let case = workflow::transition(conn, &me, Step::Update { case, expected, details })?;
            cases::view(conn, case, now())
        })
        .await?;
    Ok(etagged(view.version, &view))
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
    path: web::Path<Id>,
    body: Json<Discharge>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let on = body.into_inner().discharged_on;
    let expected = api::if_match(&req)?;
    if on > today_jst() {
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
            let case = access::case_to_manage(conn, &me, &id)?;
            let case = workflow::transition(conn, &me, Step::Discharge { case, expected, on, mailer: &mailer })?;
            cases::view(conn, case, now())
        })
        .await?;
    Ok(etagged(view.version, &view))
}

/// `POST /discharge-cases/{id}/close`: coordination is over. Every task must be completed or
/// cancelled first; the case's hospital-staff membership ends.
pub async fn close(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let expected = api::if_match(&req)?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let case = access::case_to_manage(conn, &me, &id)?;
            let case = workflow::transition(conn, &me, Step::Close { case, expected })?;
            cases::view(conn, case, now())
        })
        .await?;
    Ok(etagged(view.version, &view))
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
    path: web::Path<Id>,
    body: Json<Cancel>,
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
            let case = access::case_to_manage(conn, &me, &id)?;
            let case = workflow::transition(conn, &me, Step::Cancel { case, expected, reason })?;
            cases::view(conn, case, now())
        })
        .await?;
    Ok(etagged(view.version, &view))
}
