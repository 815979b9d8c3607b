//! `/discharge-cases/{id}/tasks`, `/tasks/{id}` and `/me/tasks`: a case's tasks, an ad-hoc
//! task, one task read and worked on, and the caller's own list.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use super::{created, etagged, utc, Items};
use crate::access::{self, Need};
use crate::api::{self, Check, Id, Json, PageQuery};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::db::{new_id, now};
use crate::discharge::tasks::{self, Task};
use crate::discharge::workflow::{check_version, require_active, work_on_task, TaskMove};
use crate::discharge::{deadlines, notices, TaskStatus};
use crate::error::{AppError, AppResult};
use crate::idempotency::{self, Answer};
use crate::state::AppState;
use crate::vocab::{Profession, TeamRole};

/// `GET /discharge-cases/{id}/tasks`: every task of the case, in the templates' order.
pub async fn list_tasks(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
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

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    pub title: String,
    pub description: Option<String>,
    /// For older clients: a task for a profession goes to the team role of that profession
    /// (`tasks::ROLE_FOR_PROFESSION`) unless `team_role` is given.
    pub profession: Option<Profession>,
    pub team_role: Option<TeamRole>,
    pub assignee_id: Option<Id>,
    pub due_at: Option<DateTime<FixedOffset>>,
    /// By the end of this day in Japan.
    pub due_on: Option<NaiveDate>,
}

/// `POST /discharge-cases/{id}/tasks`: an ad-hoc task, for a role on the team (or a profession,
/// which names one) or a team member.
/// Offline-safe with `Idempotency-Key`.
pub async fn add_task(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<NewTask>,
) -> AppResult<HttpResponse> {
    let case_id = path.into_inner().into_string();
    let key = idempotency::key_from(&req)?;
    let body = body.into_inner();
    let fingerprint = idempotency::fingerprint("POST", req.path(), &body);
    let mut check = Check::new();
    check.required_line("title", &body.title, 200);
    check.optional_text("description", body.description.as_deref(), 2000);
    check.optional_id("assignee_id", body.assignee_id.as_ref());
    if body.team_role.is_none() && body.profession.is_none() && body.assignee_id.is_none() {
        check.push(
            "team_role",
            "assignment_required",
            "担当する役割 team_role(または職種 profession)か担当者 assignee_id を指定してください。",
            "Assign the task to a role on the care team (team_role, or a profession) or to a team member (assignee_id).",
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
    let answer = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (case, _) = access::case(conn, &me, &case_id, Need::Write)?;
            let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
                require_active(&case)?;
                let mut profession = body.profession;
                let mut team_role = body.team_role.or(body.profession.map(tasks::role_for_profession));
                if let Some(assignee) = &body.assignee_id {
                    access::task_assignee(conn, &case.patient_id, assignee)?;
                    if profession.is_none() {
                        profession = crate::users::find(conn, assignee)?.map(|u| u.profession);
                    }
                    if team_role.is_none() {
                        team_role = tasks::assignee_role(conn, &case.patient_id, assignee)?;
                    }
                }
                let at = now();
                let task = Task {
                    id: new_id(),
                    case_id: case.id.clone(),
                    patient_id: case.patient_id.clone(),
                    template_key: None,
                    title: body.title,
                    description: body.description,
                    source: None,
                    profession,
                    assignee_id: body.assignee_id.map(Id::into_string),
                    anchor: None,
                    offset_days: None,
                    due_rule: None,
                    business_hours_rule: None,
                    due_at,
                    status: TaskStatus::Requested,
                    status_reason: None,
                    completed_at: None,
                    completed_by: None,
                    sort_order: tasks::AD_HOC_SORT_ORDER,
                    created_by: me.id.clone(),
                    version: 1,
                    created_at: at,
                    updated_at: at,
                    team_role,
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
                Answer::json(StatusCode::CREATED, &tasks::view(conn, task, at)?)
            })?;
            answer.audit_replay(conn, &me, Resource::DischargeTask, &case.patient_id)?;
            Ok(answer)
        })
        .await?;
    let location = format!("/api/v1/tasks/{}", answer.id().unwrap_or_default());
    Ok(created(answer, location))
}

/// `GET /tasks/{id}`.
pub async fn get_task(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
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
    Ok(etagged(view.version, &view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTask {
    pub status: Option<TaskStatus>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub status_reason: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub assignee_id: Option<Option<Id>>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub profession: Option<Option<Profession>>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub team_role: Option<Option<TeamRole>>,
    /// Ad-hoc tasks only: a task from a template follows its rule.
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub due_at: Option<Option<DateTime<FixedOffset>>>,
}

/// `PATCH /tasks/{id}`: status, assignment and (ad-hoc tasks) deadline. `If-Match` required.
pub async fn update_task(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<UpdateTask>,
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
    let assignee_id: Option<Option<String>> = body.assignee_id.clone().map(|a| a.map(Id::into_string));
    let mailer = state.mail.clone();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (task, case) = access::task(conn, &me, &id, Need::Write)?;
            let expected = if_match.ok_or_else(AppError::precondition_required)?;
            check_version(Some(expected), task.version)?;
            require_active(&case)?;
            if let Some(Some(assignee)) = &assignee_id {
                access::task_assignee(conn, &task.patient_id, assignee)?;
            }
            let change = TaskMove {
                status: body.status,
                status_reason: body.status_reason,
                assignee_id,
                profession: body.profession,
                team_role: body.team_role,
                due_at: body.due_at.map(|d| d.map(utc)),
            };
            let updated = work_on_task(conn, &me, &mailer, task, expected, change)?;
            tasks::view(conn, updated, now())
        })
        .await?;
    Ok(etagged(view.version, &view))
}

/// `GET /me/tasks`: the tasks the caller does — assigned to them, or of a role they hold on the
/// case's team — and, as a case's opener or the team lead, the tasks nobody can do, across the
/// patients on whose team they are now; overdue first, then by deadline.
pub async fn my_tasks(
    state: web::Data<AppState>,
    bearer: Bearer,
    query: api::Query<PageQuery>,
) -> AppResult<HttpResponse> {
    let limit = query.limit()?;
    let after = match query.after()? {
        None => None,
        Some(position) => Some(tasks::parse_my_tasks_position(&position).ok_or_else(api::invalid_cursor)?),
    };
    let page = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let rows = tasks::mine(conn, &me.id, after.as_ref(), limit)?;
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
