//! `/patients`, `/patients/{id}`, emergency access and the access log; the care team and the
//! consents in their own files.

pub mod consents;
pub mod insurance;
pub mod invitations;
pub mod participants;
pub mod team;

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::consents::ConsentState;
use super::{emergency, EmergencyContact, NewPatient, PatientChanges, SearchFilter};
use crate::access::{self, Need};
use crate::api::{self, Check, Json, PageQuery};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::db::DbConn;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::vocab::{CareLevel, PatientStatus, Sex};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterPatient {
    pub family_name: String,
    pub given_name: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub ward_code: String,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub care_level: CareLevel,
    pub status: Option<PatientStatus>,
    pub emergency_contact: Option<EmergencyContact>,
    #[serde(default)]
    pub spo2_target_88_92: bool,
}

fn check_birth_date(check: &mut Check, field: &str, birth: NaiveDate) {
    let today = super::today_jst();
    if birth > today || super::age_on(birth, today) > 130 {
        check.push(field, "out_of_range", "生年月日が正しくありません。", format!("{field} is not plausible."));
    }
}

fn check_contact(check: &mut Check, prefix: &str, contact: Option<&EmergencyContact>) {
    if let Some(c) = contact {
        check.required_line(&format!("{prefix}emergency_contact.name"), &c.name, 100);
        check.line(&format!("{prefix}emergency_contact.relationship"), c.relationship.as_deref(), 50);
        check.phone(&format!("{prefix}emergency_contact.phone"), c.phone.as_deref());
    }
}

impl RegisterPatient {
    /// Checks the fields of a registration; `prefix` names where it sits in the request body
    /// (`""` for `POST /patients`, `"patient."` when a hospital registers a patient while
    /// opening a discharge case). The initial status is checked by the caller.
    pub fn check(&self, check: &mut Check, prefix: &str) {
        let f = |name: &str| format!("{prefix}{name}");
        check.required_line(&f("family_name"), &self.family_name, 50);
        check.required_line(&f("given_name"), &self.given_name, 50);
        check.kana(&f("family_name_kana"), Some(&self.family_name_kana), 100);
        check.kana(&f("given_name_kana"), Some(&self.given_name_kana), 100);
        check_birth_date(check, &f("birth_date"), self.birth_date);
        check.line(&f("address"), self.address.as_deref(), 300);
        check.phone(&f("phone"), self.phone.as_deref());
        check_contact(check, prefix, self.emergency_contact.as_ref());
    }

    /// The patient to insert, with this status.
    pub fn into_new_patient(self, status: PatientStatus) -> NewPatient {
        NewPatient {
            family_name: self.family_name,
            given_name: self.given_name,
            family_name_kana: self.family_name_kana,
            given_name_kana: self.given_name_kana,
            birth_date: self.birth_date,
            sex: self.sex,
            ward_code: self.ward_code,
            address: self.address,
            phone: self.phone,
            care_level: self.care_level,
            status,
            emergency_contact: self.emergency_contact,
            spo2_target_88_92: self.spo2_target_88_92,
        }
    }
}

pub(crate) fn check_ward(conn: &mut DbConn, code: &str) -> AppResult<()> {
    if crate::orgs::ward_exists(conn, code)? {
        Ok(())
    } else {
        Err(AppError::field(
            "ward_code",
            "unknown_ward",
            format!("区コード {code} は登録されていません。"),
            format!("Ward code {code} is not known."),
        ))
    }
}

/// Views of patients with their consent state, in the order given.
fn views(conn: &mut DbConn, rows: &[super::Patient]) -> AppResult<Vec<super::PatientView>> {
    let ids: Vec<String> = rows.iter().map(|p| p.id.clone()).collect();
    let mut states = super::consents::states(conn, &ids)?;
    Ok(rows.iter().map(|p| p.view(states.remove(&p.id).unwrap_or_else(ConsentState::none))).collect())
}

fn etagged(status: actix_web::http::StatusCode, view: &super::PatientView) -> HttpResponse {
    HttpResponse::build(status).insert_header((header::ETAG, api::etag(view.version))).json(view)
}

/// `POST /patients`: a care manager or hospital staff member registers a patient and becomes
/// the first member of the team (a care manager as its lead).
pub async fn register(
    state: web::Data<AppState>,
    bearer: Bearer,
    body: Json<RegisterPatient>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let mut check = Check::new();
    body.check(&mut check, "");
    let status = body.status.unwrap_or(PatientStatus::Home);
    if !matches!(status, PatientStatus::Home | PatientStatus::Hospitalized) {
        check.push(
            "status",
            "invalid_initial_status",
            "登録時の状態は home か hospitalized です。",
            "A new patient is home or hospitalized.",
        );
    }
    check.finish()?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let org = crate::orgs::find(conn, access::my_organization(&me)?)?
                .ok_or_else(|| AppError::internal("user without organisation"))?;
            let role = access::register_patient(&me, org.kind)?;
            check_ward(conn, &body.ward_code)?;
            let target = body.spo2_target_88_92;
            if target {
                access::decide_spo2_target(me.profession)?;
            }
            let patient = super::insert(conn, body.into_new_patient(status), &me.id)?;
            // The registrant leads the team until they hand the lead over.
            super::team::add(conn, &patient.id, &me.id, me.employer()?, role, true, super::today_jst(), &me.id)?;
            let mut event = Event::new(Action::Create, Resource::Patient, Some(&patient.id), Some(&patient.id));
            if target {
                event = event.detail(super::spo2_target_detail(true));
            }
            audit::record(conn, &me, event)?;
            Ok(patient.view(ConsentState::none()))
        })
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/patients/{}", view.id)))
        .insert_header((header::ETAG, api::etag(view.version)))
        .json(view))
}

/// Which patients a search covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListScope {
    /// Patients on my care teams only.
    Team,
    /// Also the wards I coordinate.
    #[default]
    All,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub scope: Option<ListScope>,
    pub q: Option<String>,
    pub kana: Option<String>,
    pub ward: Option<String>,
    pub status: Option<PatientStatus>,
    pub care_level: Option<CareLevel>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// `GET /patients`: search within the caller's scope only; each listed patient's read is audited.
pub async fn list(state: web::Data<AppState>, bearer: Bearer, query: api::Query<ListQuery>) -> AppResult<HttpResponse> {
    let q = query.into_inner();
    let paging = PageQuery { limit: q.limit, cursor: q.cursor.clone() };
    let (limit, before) = (paging.limit()?, paging.after()?);
    let mut check = Check::new();
    check.line("q", q.q.as_deref(), 100);
    check.line("kana", q.kana.as_deref(), 100);
    let team_only = q.scope.unwrap_or_default() == ListScope::Team;
    check.finish()?;
    let filter = SearchFilter {
        team_only,
        q: q.q.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
        kana: q.kana.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
        ward_code: q.ward,
        status: q.status,
        care_level: q.care_level,
    };
    let page = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let withheld = access::withheld_from_coordinator(conn, &me)?;
            let rows = super::search_visible(conn, &me.id, &filter, &withheld, before.as_deref(), limit)?;
            let reads = rows
                .iter()
                .take(limit as usize)
                .map(|p| Event::new(Action::Read, Resource::Patient, Some(&p.id), Some(&p.id)).detail("list"))
                .collect();
            audit::record_all(conn, &me, reads)?;
            let views = views(conn, &rows)?;
            Ok(api::page(views, limit, |p| p.id.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /patients/{id}`.
pub async fn get(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let view = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let (patient, _) = access::patient(conn, &me, &id, Need::Read, Resource::Patient)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::Patient, Some(&id), Some(&id)))?;
            Ok(patient.view(super::consents::state(conn, &id)?))
        })
        .await?;
    Ok(etagged(actix_web::http::StatusCode::OK, &view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePatient {
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name_kana: Option<String>,
    pub given_name_kana: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub sex: Option<Sex>,
    pub ward_code: Option<String>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub address: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub phone: Option<Option<String>>,
    pub care_level: Option<CareLevel>,
    pub status: Option<PatientStatus>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub emergency_contact: Option<Option<EmergencyContact>>,
    pub spo2_target_88_92: Option<bool>,
}

/// `PATCH /patients/{id}`: `If-Match` required (428 without it, 412 when stale).
pub async fn update(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
    body: Json<UpdatePatient>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let body = body.into_inner();
    let if_match = api::if_match(&req)?;
    let mut check = Check::new();
    if let Some(v) = &body.family_name {
        check.required_line("family_name", v, 50);
    }
    if let Some(v) = &body.given_name {
        check.required_line("given_name", v, 50);
    }
    if let Some(v) = &body.family_name_kana {
        check.kana("family_name_kana", Some(v), 100);
    }
    if let Some(v) = &body.given_name_kana {
        check.kana("given_name_kana", Some(v), 100);
    }
    if let Some(b) = body.birth_date {
        check_birth_date(&mut check, "birth_date", b);
    }
    if let Some(a) = &body.address {
        check.line("address", a.as_deref(), 300);
    }
    if let Some(p) = &body.phone {
        check.phone("phone", p.as_deref());
    }
    if let Some(c) = &body.emergency_contact {
        check_contact(&mut check, "", c.as_ref());
    }
    check.finish()?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (patient, _) = access::patient(conn, &me, &id, Need::Write, Resource::Patient)?;
            let expected = if_match.ok_or_else(AppError::precondition_required)?;
            if expected != patient.version {
                return Err(AppError::precondition_failed());
            }
            if let Some(next) = body.status {
                let current = patient.status;
                if next != current && !current.can_become(next) {
                    return Err(AppError::conflict(
                        format!("状態を {current} から {next} に変更することはできません。"),
                        format!("A patient cannot move from {current} to {next}."),
                    ));
                }
            }
            if let Some(w) = &body.ward_code {
                check_ward(conn, w)?;
            }
            // Recording or withdrawing the 88–92% target is a clinician's decision; sending the
            // value the patient already has decides nothing.
            let target = body.spo2_target_88_92.filter(|&t| t != patient.spo2_target_88_92);
            if target.is_some() {
                access::decide_spo2_target(me.profession)?;
            }
            let family_kana = body.family_name_kana.clone().unwrap_or_else(|| patient.family_name_kana.clone());
            let given_kana = body.given_name_kana.clone().unwrap_or_else(|| patient.given_name_kana.clone());
            let (ec_name, ec_rel, ec_phone) = match body.emergency_contact {
                None => (None, None, None),
                Some(None) => (Some(None), Some(None), Some(None)),
                Some(Some(c)) => (Some(Some(c.name)), Some(c.relationship), Some(c.phone)),
            };
            let changes = PatientChanges {
                name_kana_search: Some(super::kana_search_key(&family_kana, &given_kana)),
                family_name: body.family_name,
                given_name: body.given_name,
                family_name_kana: body.family_name_kana,
                given_name_kana: body.given_name_kana,
                birth_date: body.birth_date,
                sex: body.sex,
                ward_code: body.ward_code,
                address: body.address,
                phone: body.phone,
                care_level: body.care_level,
                status: body.status,
                emergency_contact_name: ec_name,
                emergency_contact_relationship: ec_rel,
                emergency_contact_phone: ec_phone,
                spo2_target_88_92: target,
            };
            if !super::update(conn, &id, expected, &changes)? {
                return Err(AppError::precondition_failed());
            }
            let mut event = Event::new(Action::Update, Resource::Patient, Some(&id), Some(&id));
            if let Some(recorded) = target {
                event = event.detail(super::spo2_target_detail(recorded));
            }
            audit::record(conn, &me, event)?;
            let patient = super::find(conn, &id)?.ok_or_else(AppError::not_found)?;
            Ok(patient.view(super::consents::state(conn, &id)?))
        })
        .await?;
    Ok(etagged(actix_web::http::StatusCode::OK, &view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyAccessRequest {
    pub reason: String,
}

/// `POST /patients/{id}/emergency-access`: break-glass read access for a clinician not on the
/// team, with a stated reason, for a limited time; audited with high priority.
pub async fn emergency_access(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
    body: Json<EmergencyAccessRequest>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let reason = body.into_inner().reason;
    let mut check = Check::new();
    check.text("reason", &reason, 1000);
    if reason.trim().chars().count() < 10 {
        check.push(
            "reason",
            "too_short",
            "理由を10文字以上で具体的に書いてください。",
            "State the reason in at least 10 characters.",
        );
    }
    check.finish()?;
    let minutes = state.config.emergency_access_minutes;
    let mailer = state.mail.clone();
    let grant = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let patient = access::emergency_access(conn, &me, &id)?;
            emergency::open(conn, &me, &mailer, &patient, &reason, minutes)
        })
        .await?;
    Ok(HttpResponse::Created().json(grant))
}

#[derive(Debug, Serialize)]
struct AccessLogEntry {
    id: String,
    #[serde(serialize_with = "api::utc")]
    occurred_at: chrono::NaiveDateTime,
    actor_id: Option<String>,
    actor_name: Option<String>,
    action: String,
    resource_type: String,
    resource_id: Option<String>,
    outcome: String,
    priority: String,
    /// In plain words, for the patient and the key person as much as for the lead.
    summary: String,
    summary_en: String,
}

/// `GET /patients/{id}/access-log`: who opened this record — for the team lead.
pub async fn access_log(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
    query: api::Query<PageQuery>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let (limit, before) = (query.limit()?, query.after()?);
    let page = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &id, Need::ReadAccessLog, Resource::AccessLog)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::AccessLog, None, Some(&id)))?;
            let filter = audit::Filter { patient_id: Some(id.clone()), ..Default::default() };
            let rows = audit::search(conn, &filter, before.as_deref(), limit)?;
            let entries = with_actor_names(conn, rows)?;
            Ok(api::page(entries, limit, |e| e.id.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

fn with_actor_names(conn: &mut DbConn, rows: Vec<audit::AuditEvent>) -> AppResult<Vec<AccessLogEntry>> {
    let mut out = Vec::with_capacity(rows.len());
    let mut actors: std::collections::HashMap<String, Option<super::access_log::Actor>> =
        std::collections::HashMap::new();
    for e in rows {
        if let Some(a) = &e.actor_id {
            if !actors.contains_key(a) {
                let actor = super::access_log::actor(conn, a)?;
                actors.insert(a.clone(), actor);
            }
        }
        let actor = e.actor_id.as_ref().and_then(|a| actors.get(a)).and_then(Option::as_ref);
        let (summary, summary_en) =
            super::access_log::plain(e.occurred_at, actor, &e.action, &e.resource_type, e.outcome == "denied");
        out.push(AccessLogEntry {
            id: e.id,
            occurred_at: e.occurred_at,
            actor_id: e.actor_id,
            actor_name: actor.map(|a| a.name.clone()),
            action: e.action,
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            outcome: e.outcome,
            priority: e.priority,
            summary,
            summary_en,
        });
    }
    Ok(out)
}
