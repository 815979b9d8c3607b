//! Discharge tasks: generated from the templates when a case opens, or added by hand; done by a
//! role on the case's care team or by one team member (`routing`); worked through FHIR Task's
//! statuses; commented on.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::api;
use crate::changes::TaskAction;
use crate::db::schema::{care_team_members, discharge_task_comments, discharge_tasks, organizations, users};
use crate::db::{new_id, now, DbConn};
use crate::discharge::cases::Case;
use crate::discharge::deadlines::{self, TemplateRule};
use crate::discharge::routing::{self, TaskRef};
use crate::discharge::templates::{self, Anchor, DueRule};
use crate::discharge::TaskStatus;
use crate::error::{AppError, AppResult};
use crate::vocab::{Profession, TeamRole};

/// Where ad-hoc tasks sort within a case: after every seeded template.
pub const AD_HOC_SORT_ORDER: i32 = 1000;

/// The team role that does a task given to a profession by a client that names no role (the
/// `profession` field older clients send). A nurse's task is the visiting nurse's and a social
/// worker's the hospital's, as in the seeded templates; the migration
/// `2026-12-05-000100_discharge_task_roles_and_deadlines` mapped the stored rows the same way.
pub const ROLE_FOR_PROFESSION: &[(Profession, TeamRole)] = &[
    (Profession::Physician, TeamRole::PrimaryPhysician),
    (Profession::Nurse, TeamRole::VisitingNurse),
    (Profession::Pharmacist, TeamRole::Pharmacist),
    (Profession::CareManager, TeamRole::CareManager),
    (Profession::Dentist, TeamRole::Dentist),
    (Profession::Therapist, TeamRole::Therapist),
    (Profession::Helper, TeamRole::Helper),
    (Profession::SocialWorker, TeamRole::HospitalStaff),
    (Profession::Other, TeamRole::Other),
];

/// The team role for a task given to this profession ([`ROLE_FOR_PROFESSION`]).
pub fn role_for_profession(profession: Profession) -> TeamRole {
    ROLE_FOR_PROFESSION.iter().find(|(p, _)| *p == profession).map_or(TeamRole::Other, |(_, r)| *r)
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = discharge_tasks)]
pub struct Task {
    pub id: String,
    pub case_id: String,
    pub patient_id: String,
    pub template_key: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub source: Option<String>,
    pub profession: Option<Profession>,
    pub assignee_id: Option<String>,
    pub anchor: Option<Anchor>,
    pub offset_days: Option<i32>,
    pub due_rule: Option<DueRule>,
    pub business_hours_rule: Option<bool>,
    pub due_at: Option<NaiveDateTime>,
    pub status: TaskStatus,
    pub status_reason: Option<String>,
    pub completed_at: Option<NaiveDateTime>,
    pub completed_by: Option<String>,
    pub sort_order: i32,
    pub created_by: String,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub team_role: Option<TeamRole>,
}

impl Task {
    /// What routing needs of the task.
    pub fn routing_ref(&self) -> AppResult<TaskRef<'_>> {
        Ok(TaskRef {
            id: &self.id,
            case_id: &self.case_id,
            patient_id: &self.patient_id,
            assignee_id: self.assignee_id.as_deref(),
            team_role: self.team_role,
        })
    }

    /// The deadline rule copied from the task's template; `None` for an ad-hoc task, whose
    /// deadline is set by hand.
    pub fn rule(&self) -> Option<TemplateRule> {
        let (Some(anchor), Some(offset_days), Some(due_rule)) = (self.anchor, self.offset_days, self.due_rule) else {
            return None;
        };
        Some(TemplateRule {
            anchor,
            offset_days,
            due_rule,
            business_hours_rule: self.business_hours_rule.unwrap_or(false),
        })
    }
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = discharge_task_comments)]
pub struct Comment {
    pub id: String,
    pub task_id: String,
    pub patient_id: String,
    pub author_id: String,
    pub text: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Serialize)]
pub struct CommentView {
    pub id: String,
    pub task_id: String,
    pub author_id: String,
    pub author_name: String,
    pub text: String,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
}

/// A task as every response shows it, with its comments, oldest first.
#[derive(Debug, Serialize)]
pub struct TaskView {
    pub id: String,
    pub case_id: String,
    pub patient_id: String,
    pub template_key: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub source: Option<String>,
    /// Kept for older clients; routing follows `team_role`.
    pub profession: Option<Profession>,
    /// The role on the case's care team that does the task.
    pub team_role: Option<TeamRole>,
    pub assignee_id: Option<String>,
    /// Nobody on the team can do it now: no assignee on the team and nobody in its role. Such a
    /// task is in the lists of the case's opener and the team lead.
    pub unassigned: bool,
    #[serde(serialize_with = "api::utc_opt")]
    pub due_at: Option<NaiveDateTime>,
    /// Still open and past its deadline.
    pub overdue: bool,
    pub status: TaskStatus,
    pub status_reason: Option<String>,
    #[serde(serialize_with = "api::utc_opt")]
    pub completed_at: Option<NaiveDateTime>,
    pub completed_by: Option<String>,
    pub version: i32,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "api::utc")]
    pub updated_at: NaiveDateTime,
    pub comments: Vec<CommentView>,
}

/// One task per active template, each with the deadline its rule gives from the case's dates
/// (none yet when its anchor date is not known).
pub fn generate(conn: &mut DbConn, case: &Case, created_by: &str) -> AppResult<Vec<Task>> {
    let anchors = case.deadline_anchors(conn)?;
    let t = now();
    let mut out = Vec::new();
    for template in templates::active_templates(conn)? {
        let rule = template.rule();
        let task = Task {
            id: new_id(),
            case_id: case.id.clone(),
            patient_id: case.patient_id.clone(),
            template_key: Some(template.key.clone()),
            title: template.title.clone(),
            description: template.note.clone(),
            source: Some(template.source.clone()),
            profession: Some(template.profession),
            team_role: Some(template.team_role),
            assignee_id: None,
            anchor: Some(rule.anchor),
            offset_days: Some(rule.offset_days),
            due_rule: Some(rule.due_rule),
            business_hours_rule: Some(rule.business_hours_rule),
            due_at: deadlines::due_at(&rule, &anchors),
            status: TaskStatus::Requested,
            status_reason: None,
            completed_at: None,
            completed_by: None,
            sort_order: template.sort_order,
            created_by: created_by.into(),
            version: 1,
            created_at: t,
            updated_at: t,
        };
        out.push(task);
    }
    // A batch insert is spelled per backend: the multi-backend connection has no batch form.
    crate::per_backend!(conn, |c| diesel::insert_into(discharge_tasks::table).values(out.clone()).execute(c))?;
    if let Some(t) = out.first() {
        crate::changes::record(
            conn,
            crate::changes::Change::Task {
                patient_id: &t.patient_id,
                case_id: &t.case_id,
                task_id: None,
                action: TaskAction::Created,
            },
        )?;
    }
    Ok(out)
}

/// The role a member holds on the patient's team now, for a task given to them that names no
/// role of its own.
pub fn assignee_role(conn: &mut DbConn, patient_id: &str, user_id: &str) -> AppResult<Option<TeamRole>> {
    Ok(crate::patients::team::active_member(conn, patient_id, user_id)?.map(|m| m.role))
}

pub fn insert(conn: &mut DbConn, task: &Task) -> AppResult<()> {
    diesel::insert_into(discharge_tasks::table).values(task.clone()).execute(conn)?;
    crate::changes::record(
        conn,
        crate::changes::Change::Task {
            patient_id: &task.patient_id,
            case_id: &task.case_id,
            task_id: Some(&task.id),
            action: TaskAction::Created,
        },
    )
}

pub fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<Task>> {
    Ok(discharge_tasks::table.find(id).select(Task::as_select()).first(conn).optional()?)
}

/// A case's tasks in the order of the templates, ad-hoc ones after them by creation.
pub fn for_case(conn: &mut DbConn, case_id: &str) -> AppResult<Vec<Task>> {
    Ok(discharge_tasks::table
        .filter(discharge_tasks::case_id.eq(case_id))
        .order((discharge_tasks::sort_order.asc(), discharge_tasks::id.asc()))
        .select(Task::as_select())
        .load(conn)?)
}

/// The number of a case's tasks still open.
pub fn open_count(conn: &mut DbConn, case_id: &str) -> AppResult<i64> {
    Ok(discharge_tasks::table
        .filter(discharge_tasks::case_id.eq(case_id))
        .filter(discharge_tasks::status.eq_any(TaskStatus::open_codes()))
        .count()
        .get_result(conn)?)
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = discharge_tasks)]
pub struct TaskChanges {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub profession: Option<Option<Profession>>,
    pub team_role: Option<Option<TeamRole>>,
    pub assignee_id: Option<Option<String>>,
    pub due_at: Option<Option<NaiveDateTime>>,
    pub status: Option<TaskStatus>,
    pub status_reason: Option<Option<String>>,
    pub completed_at: Option<Option<NaiveDateTime>>,
    pub completed_by: Option<Option<String>>,
}

/// Applies changes at the expected version; `false` when someone changed the task first.
pub fn update(conn: &mut DbConn, id: &str, expected_version: i32, changes: TaskChanges) -> AppResult<bool> {
    // A change of status says most; then who does it; anything else is an edit.
    let action = if changes.status.is_some() {
        TaskAction::StatusChanged
    } else if changes.assignee_id.is_some() || changes.team_role.is_some() || changes.profession.is_some() {
        TaskAction::Assigned
    } else {
        TaskAction::Updated
    };
    let n = diesel::update(
        discharge_tasks::table.filter(discharge_tasks::id.eq(id)).filter(discharge_tasks::version.eq(expected_version)),
    )
    .set((changes, discharge_tasks::version.eq(expected_version + 1), discharge_tasks::updated_at.eq(now())))
    .execute(conn)?;
    if n == 1 {
        let (patient_id, case_id): (String, String) = discharge_tasks::table
            .find(id)
            .select((discharge_tasks::patient_id, discharge_tasks::case_id))
            .first(conn)?;
        crate::changes::record(
            conn,
            crate::changes::Change::Task { patient_id: &patient_id, case_id: &case_id, task_id: Some(id), action },
        )?;
    }
    Ok(n == 1)
}

/// Moves the deadlines of a case's open rule-based tasks to what the case's dates now give
/// (a new planned discharge date, the actual discharge). A task whose deadline moves gets a new
/// version, so that someone holding the old one is told it changed. Returns how many moved.
pub fn recompute_deadlines(conn: &mut DbConn, case: &Case) -> AppResult<usize> {
    let anchors = case.deadline_anchors(conn)?;
    let open: Vec<Task> = discharge_tasks::table
        .filter(discharge_tasks::case_id.eq(&case.id))
        .filter(discharge_tasks::status.eq_any(TaskStatus::open_codes()))
        .filter(discharge_tasks::anchor.is_not_null())
        .select(Task::as_select())
        .load(conn)?;
    let mut moved = 0;
    for task in open {
        let Some(rule) = task.rule() else { continue };
        let due = deadlines::due_at(&rule, &anchors);
        if due != task.due_at {
            diesel::update(discharge_tasks::table.find(&task.id))
                .set((
                    discharge_tasks::due_at.eq(due),
                    discharge_tasks::version.eq(discharge_tasks::version + 1),
                    discharge_tasks::updated_at.eq(now()),
                ))
                .execute(conn)?;
            moved += 1;
        }
    }
    if moved > 0 {
        crate::changes::record(
            conn,
            crate::changes::Change::Task {
                patient_id: &case.patient_id,
                case_id: &case.id,
                task_id: None,
                action: TaskAction::DeadlinesMoved,
            },
        )?;
    }
    Ok(moved)
}

/// Cancels every open task of a case (the case itself was cancelled), with the reason given.
pub fn cancel_open(conn: &mut DbConn, case_id: &str, reason: &str) -> AppResult<usize> {
    Ok(diesel::update(
        discharge_tasks::table
            .filter(discharge_tasks::case_id.eq(case_id))
            .filter(discharge_tasks::status.eq_any(TaskStatus::open_codes())),
    )
    .set((
        discharge_tasks::status.eq(TaskStatus::Cancelled.as_str()),
        discharge_tasks::status_reason.eq(Some(reason)),
        discharge_tasks::version.eq(discharge_tasks::version + 1),
        discharge_tasks::updated_at.eq(now()),
    ))
    .execute(conn)?)
}

/// Completes the open task of a case made from this template, if there is one (recording the
/// discharge conference completes `joint_discharge_conference`). Returns the task completed.
pub fn complete_open_from_template(
    conn: &mut DbConn,
    case_id: &str,
    template_key: &str,
    by: &str,
) -> AppResult<Option<String>> {
    let open: Option<Task> = discharge_tasks::table
        .filter(discharge_tasks::case_id.eq(case_id))
        .filter(discharge_tasks::template_key.eq(template_key))
        .filter(discharge_tasks::status.eq_any(TaskStatus::open_codes()))
        .order(discharge_tasks::id.asc())
        .select(Task::as_select())
        .first(conn)
        .optional()?;
    let Some(task) = open else { return Ok(None) };
    let t = now();
    let changes = TaskChanges {
        status: Some(TaskStatus::Completed),
        completed_at: Some(Some(t)),
        completed_by: Some(Some(by.into())),
        ..Default::default()
    };
    if !update(conn, &task.id, task.version, changes)? {
        return Err(AppError::internal("task changed within its own transaction"));
    }
    Ok(Some(task.id))
}

/// Where a page of "my tasks" starts: after this deadline (None: the tasks without one) and id.
pub type MyTasksPosition = (Option<NaiveDateTime>, String);

/// The caller's open tasks across every patient on whose team they are now: the tasks they do
/// (assigned to them, or unassigned tasks of a role they hold on the case's team) and, as the
/// case's opener or the team lead, the tasks nobody on the team can do (`routing`). Overdue
/// first, then by deadline — one ordering, since every listed task is open and an open task is
/// overdue exactly when its deadline has passed: by deadline ascending, tasks without a deadline
/// last, then by id.
///
/// Who does a task depends on the whole team, so the caller's patients' open tasks are routed
/// here and the page is cut from them; a person's patients and their open tasks are few.
pub fn mine(conn: &mut DbConn, user_id: &str, after: Option<&MyTasksPosition>, limit: i64) -> AppResult<Vec<Task>> {
    let on_team: Vec<String> = care_team_members::table
        .inner_join(organizations::table.on(organizations::id.eq(care_team_members::organization_id)))
        .filter(care_team_members::user_id.eq(user_id))
        .filter(care_team_members::ended_at.is_null())
        .filter(organizations::active.eq(true))
        .select(care_team_members::patient_id)
        .load(conn)?;
    let mut open: Vec<Task> = Vec::new();
    for chunk in on_team.chunks(500) {
        open.extend(
            discharge_tasks::table
                .filter(discharge_tasks::patient_id.eq_any(chunk))
                .filter(discharge_tasks::status.eq_any(TaskStatus::open_codes()))
                .select(Task::as_select())
                .load::<Task>(conn)?,
        );
    }
    let refs = open.iter().map(Task::routing_ref).collect::<AppResult<Vec<_>>>()?;
    let routed = routing::route(conn, &refs)?;
    let mut mine: Vec<Task> = open
        .into_iter()
        .filter(|t| routed.get(&t.id).is_some_and(|r| r.shown_to.iter().any(|u| u == user_id)))
        .filter(|t| match after {
            None => true,
            Some((Some(due), id)) => t.due_at.is_none_or(|d| d > *due || (d == *due && t.id > *id)),
            Some((None, id)) => t.due_at.is_none() && t.id > *id,
        })
        .collect();
    mine.sort_by(|a, b| (a.due_at.is_none(), a.due_at, &a.id).cmp(&(b.due_at.is_none(), b.due_at, &b.id)));
    mine.truncate(usize::try_from(limit + 1).unwrap_or(usize::MAX));
    Ok(mine)
}

/// The cursor position of a task in "my tasks": its deadline (RFC 3339, empty when none) and id.
pub fn my_tasks_position(task: &TaskView) -> String {
    let due = task.due_at.as_ref().map(api::format_utc).unwrap_or_default();
    format!("{due}|{}", task.id)
}

/// Reads a position written by [`my_tasks_position`]; `None` when it is not one.
pub fn parse_my_tasks_position(position: &str) -> Option<MyTasksPosition> {
    let (due, id) = position.split_once('|')?;
    if id.is_empty() {
        return None;
    }
    let due = if due.is_empty() { None } else { Some(chrono::DateTime::parse_from_rfc3339(due).ok()?.naive_utc()) };
    Some((due, id.to_string()))
}

pub fn insert_comment(conn: &mut DbConn, comment: &Comment) -> AppResult<()> {
    diesel::insert_into(discharge_task_comments::table).values(comment).execute(conn)?;
    Ok(())
}

/// Comments of these tasks with their authors' names, oldest first.
fn comments_of(conn: &mut DbConn, task_ids: &[String]) -> AppResult<Vec<CommentView>> {
    let rows: Vec<(Comment, String)> = discharge_task_comments::table
        .inner_join(users::table.on(users::id.eq(discharge_task_comments::author_id)))
        .filter(discharge_task_comments::task_id.eq_any(task_ids))
        .order((discharge_task_comments::created_at.asc(), discharge_task_comments::id.asc()))
        .select((Comment::as_select(), users::name))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(c, author_name)| CommentView {
            id: c.id,
            task_id: c.task_id,
            author_id: c.author_id,
            author_name,
            text: c.text,
            created_at: c.created_at,
        })
        .collect())
}

/// The view of one comment.
pub fn comment_view(conn: &mut DbConn, comment: &Comment) -> AppResult<CommentView> {
    comments_of(conn, std::slice::from_ref(&comment.task_id))?
        .into_iter()
        .find(|c| c.id == comment.id)
        .ok_or_else(|| AppError::internal("comment view missing"))
}

/// Views of tasks, in the order given, judged overdue at one instant.
pub fn views(conn: &mut DbConn, tasks: Vec<Task>, at: NaiveDateTime) -> AppResult<Vec<TaskView>> {
    let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
    let refs = tasks.iter().map(Task::routing_ref).collect::<AppResult<Vec<_>>>()?;
    let routed = routing::route(conn, &refs)?;
    let mut comments: HashMap<String, Vec<CommentView>> = HashMap::new();
    for c in comments_of(conn, &ids)? {
        comments.entry(c.task_id.clone()).or_default().push(c);
    }
    tasks
        .into_iter()
        .map(|t| {
            let open = t.status.is_open();
            let profession = t.profession;
            let team_role = t.team_role;
            Ok(TaskView {
                overdue: deadlines::is_overdue(t.due_at, open, at),
                // A final task is nobody's to do.
                unassigned: open && routed.get(&t.id).is_none_or(|r| r.unassigned),
                team_role,
                comments: comments.remove(&t.id).unwrap_or_default(),
                id: t.id,
                case_id: t.case_id,
                patient_id: t.patient_id,
                template_key: t.template_key,
                title: t.title,
                description: t.description,
                source: t.source,
                profession,
                assignee_id: t.assignee_id,
                due_at: t.due_at,
                status: t.status,
                status_reason: t.status_reason,
                completed_at: t.completed_at,
                completed_by: t.completed_by,
                version: t.version,
                created_at: t.created_at,
                updated_at: t.updated_at,
            })
        })
        .collect()
}

pub fn view(conn: &mut DbConn, task: Task, at: NaiveDateTime) -> AppResult<TaskView> {
    views(conn, vec![task], at)?.pop().ok_or_else(|| AppError::internal("task view missing"))
}
