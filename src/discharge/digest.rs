//! The daily digest of discharge tasks: once a day, from a configured hour in Japan
//! (`RENKEI_TASK_DIGEST_HOUR`), each person who does a task (its assignee, or the holders of its
//! role on the case's team: `routing`) and each case opener gets one e-mail listing their overdue
//! and due-today tasks of cases still running; a task nobody on the team can do goes to the
//! opener and the team lead.
//!
//! Exactly once per JST day across every instance: the run claims the day by inserting its row
//! into `task_digest_days` (the primary key refuses a second claim, and the insert skips rather
//! than fails) and queues the e-mails through the outbox in that same transaction. An instance
//! that loses the race queues nothing; one that dies before committing leaves the day unclaimed
//! for the next run. The e-mails carry no clinical content: a template's fixed task name (a typed
//! title is named generically), the patient's configured e-mail label, the deadline's day.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::{NaiveDate, NaiveDateTime, Timelike};
use diesel::prelude::*;

use crate::db::schema::{discharge_cases, discharge_task_templates, discharge_tasks, task_digest_days};
use crate::db::DbConn;
use crate::discharge::deadlines;
use crate::discharge::routing::{self, TaskRef};
use crate::discharge::{CaseStatus, TaskStatus};
use crate::error::{AppError, AppResult};
use crate::mail::{self, DigestTask, Mailer, Notice, TaskName};
use crate::state::AppState;
use crate::vocab::{PatientLabel, TeamRole};

/// At most this many tasks are listed in one e-mail (the counts cover them all).
const MAX_LINES: usize = 50;

/// One open task with what the digest needs of it.
struct DueTask {
    /// Who is told: the case's opener first, then whoever the task is shown to.
    recipients: Vec<String>,
    due_at: NaiveDateTime,
    name: TaskName,
    patient: String,
}

/// Sends the day's digest if it is due at `now` and no instance has sent it yet. Returns how many
/// e-mails were queued; 0 before the hour, or when the day was already claimed.
pub fn run(conn: &mut DbConn, mailer: &Mailer, now: NaiveDateTime, hour: u32) -> AppResult<usize> {
    let today = deadlines::jst_day(now).ok_or_else(|| AppError::internal("digest clock out of range"))?;
    let jst_hour = (now.hour() + 9) % 24;
    if jst_hour < hour {
        return Ok(0);
    }
    if !claim_day(conn, today, mailer.instance_id(), now)? {
        return Ok(0);
    }
    let end_of_today = deadlines::end_of_jst_day(today).ok_or_else(|| AppError::internal("digest day out of range"))?;
    let tasks = due_tasks(conn, end_of_today, mailer.patient_label())?;
    let mut by_person: BTreeMap<String, Vec<&DueTask>> = BTreeMap::new();
    for task in &tasks {
        for person in &task.recipients {
            by_person.entry(person.clone()).or_default().push(task);
        }
    }
    let mut queued = 0;
    for (user_id, mine) in by_person {
        let overdue = mine.iter().filter(|t| deadlines::is_overdue(Some(t.due_at), true, now)).count();
        let lines = mine
            .iter()
            .take(MAX_LINES)
            .filter_map(|t| {
                Some(DigestTask {
                    task: t.name.clone(),
                    patient: t.patient.clone(),
                    due_on: deadlines::jst_day(t.due_at)?,
                    overdue: deadlines::is_overdue(Some(t.due_at), true, now),
                })
            })
            .collect();
        let notice = Notice::OverdueDigest {
            as_of: today,
            overdue_tasks: overdue as i64,
            due_today: (mine.len() - overdue) as i64,
            tasks: lines,
        };
        queued +=
            mail::notify(conn, mailer, std::slice::from_ref(&user_id), &notice, None, &format!("digest:{today}"))?;
    }
    diesel::update(task_digest_days::table.find(today))
        .set(task_digest_days::emails.eq(i32::try_from(queued).unwrap_or(i32::MAX)))
        .execute(conn)?;
    Ok(queued)
}

/// Claims a JST day for this instance; false when another instance claimed it first. The insert
/// skips a duplicate key rather than failing, so the caller's transaction stays usable.
fn claim_day(conn: &mut DbConn, day: NaiveDate, instance: &str, now: NaiveDateTime) -> AppResult<bool> {
    let row = (
        task_digest_days::day.eq(day),
        task_digest_days::claimed_by.eq(instance),
        task_digest_days::claimed_at.eq(now),
        task_digest_days::emails.eq(0),
    );
    let inserted = crate::per_backend!(conn, |c| diesel::insert_into(task_digest_days::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}

/// Open tasks due by `until` of cases still running (open or discharged), overdue first.
fn due_tasks(conn: &mut DbConn, until: NaiveDateTime, label: PatientLabel) -> AppResult<Vec<DueTask>> {
    let running = [CaseStatus::Open.as_str(), CaseStatus::Discharged.as_str()];
    type Row = (
        (String, String, Option<String>, Option<String>),
        String,
        Option<NaiveDateTime>,
        Option<String>,
        Option<String>,
        String,
    );
    let rows: Vec<Row> = discharge_tasks::table
        .inner_join(discharge_cases::table)
        .left_join(
            discharge_task_templates::table
                .on(discharge_tasks::template_key.eq(discharge_task_templates::key.nullable())),
        )
        .filter(discharge_tasks::status.eq_any(TaskStatus::open_codes()))
        .filter(discharge_tasks::due_at.le(until))
        .filter(discharge_cases::status.eq_any(running))
        .order((discharge_tasks::due_at.asc(), discharge_tasks::id.asc()))
        .select((
            (discharge_tasks::id, discharge_tasks::case_id, discharge_tasks::assignee_id, discharge_tasks::team_role),
            discharge_cases::opened_by,
            discharge_tasks::due_at,
            discharge_task_templates::title.nullable(),
            discharge_task_templates::title_en.nullable(),
            discharge_tasks::patient_id,
        ))
        .load(conn)?;
    let roles = rows
        .iter()
        .map(|((_, _, _, role), ..)| role.as_deref().map(TeamRole::from_db).transpose())
        .collect::<AppResult<Vec<_>>>()?;
    let refs: Vec<TaskRef<'_>> = rows
        .iter()
        .zip(&roles)
        .map(|(((id, case_id, assignee_id, _), _, _, _, _, patient_id), role)| TaskRef {
            id,
            case_id,
            patient_id,
            assignee_id: assignee_id.as_deref(),
            team_role: *role,
        })
        .collect();
    let routed = routing::route(conn, &refs)?;
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for ((id, ..), opened_by, due_at, ja, en, patient_id) in rows {
        let Some(due_at) = due_at else { continue };
        let mut recipients = vec![opened_by];
        for person in routed.get(&id).map(|r| r.shown_to.as_slice()).unwrap_or_default() {
            if !recipients.contains(person) {
                recipients.push(person.clone());
            }
        }
        if !labels.contains_key(&patient_id) {
            let patient = crate::patients::find(conn, &patient_id)?.map(|p| p.email_label(label)).unwrap_or_default();
            labels.insert(patient_id.clone(), patient);
        }
        // A typed title may hold clinical details: only a template's fixed name is listed.
        let name = match (ja, en) {
            (Some(ja), Some(en)) => TaskName::Template { ja, en },
            _ => TaskName::Custom,
        };
        out.push(DueTask { recipients, due_at, name, patient: labels[&patient_id].clone() });
    }
    Ok(out)
}

/// Looks every minute whether today's digest is due. Several instances may run it: the day is
/// claimed in the database, so it is sent once.
pub fn spawn_worker(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(StdDuration::from_secs(60));
        loop {
            tick.tick().await;
            let hour = state.config.task_digest_hour;
            let mailer = state.mail.clone();
            match state.db.run(move |conn| run(conn, &mailer, crate::db::now(), hour)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(emails = n, "task digest queued"),
                Err(e) => tracing::warn!(error = %e, "task digest run failed"),
            }
        }
    })
}
