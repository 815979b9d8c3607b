//! Notices of discharge coordination: what the team is told, and when.
//!
//! Each notice is written, in the request's transaction, as a row of `discharge_events` — the
//! patient's timeline entries for discharge coordination — and queued as e-mail for the people
//! it is for, in the same transaction (DESIGN.md §7; no clinical content, the patient named as
//! configured). The caller wakes the mailer after the commit.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::discharge_events;
use crate::db::{new_id, now, DbConn};
use crate::discharge::cases::Case;
use crate::discharge::tasks::Task;
use crate::error::AppResult;
use crate::mail::{self, Mailer};
use crate::patients::{self, team};
use crate::vocab::PatientLabel;

crate::text_enum! {
    /// What a notice is about.
    NoticeKind {
        CaseOpened => "case_opened",
        TaskAssigned => "task_assigned",
        PatientDischarged => "patient_discharged",
    }
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = discharge_events)]
pub struct DischargeEvent {
    pub id: String,
    pub patient_id: String,
    pub case_id: String,
    pub task_id: Option<String>,
    pub kind: NoticeKind,
    pub at: NaiveDateTime,
    pub actor_id: String,
    /// One person the notice is for; `None`: the patient's active team.
    pub recipient_id: Option<String>,
}

/// A notice as recorded, with the accounts it is for (never the person who caused it).
#[derive(Debug, Clone)]
pub struct Notice {
    pub event: DischargeEvent,
    pub recipients: Vec<String>,
}

/// A hospital opened a discharge case: the patient's team is told (入院の連絡), so that the
/// care manager can send the home-life information on time (入院時情報連携加算).
pub fn case_opened(conn: &mut DbConn, mailer: &Mailer, case: &Case, actor_id: &str) -> AppResult<Notice> {
    let recipients = team_except(conn, &case.patient_id, actor_id)?;
    let event = record(conn, NoticeKind::CaseOpened, case, actor_id)?;
    let notice = mail::Notice::CaseOpened {
        planned_discharge_on: case.planned_discharge_on,
        patient: patient_label(conn, &case.patient_id, mailer.patient_label())?,
        case_id: case.id.clone(),
    };
    mail::notify(conn, mailer, &recipients, &notice, Some(&case.patient_id), &format!("case:{}:opened", case.id))?;
    Ok(Notice { event, recipients })
}

/// A task was given to one team member: they are told.
pub fn task_assigned(
    conn: &mut DbConn,
    mailer: &Mailer,
    task: &Task,
    assignee_id: &str,
    actor_id: &str,
) -> AppResult<Notice> {
    let recipients = if assignee_id == actor_id { Vec::new() } else { vec![assignee_id.to_string()] };
    let event = DischargeEvent {
        id: new_id(),
        patient_id: task.patient_id.clone(),
        case_id: task.case_id.clone(),
        task_id: Some(task.id.clone()),
        kind: NoticeKind::TaskAssigned,
        at: now(),
        actor_id: actor_id.into(),
        recipient_id: Some(assignee_id.into()),
    };
    insert(conn, &event)?;
    // A typed title may hold clinical details: only a template's fixed name reaches the e-mail.
    let name = match &task.template_key {
        Some(key) => super::templates::find(conn, key)?
            .map(|t| mail::TaskName::Template { ja: t.title, en: t.title_en })
            .unwrap_or(mail::TaskName::Custom),
        None => mail::TaskName::Custom,
    };
    let notice = mail::Notice::TaskAssigned {
        task: name,
        due_at: task.due_at,
        patient: patient_label(conn, &task.patient_id, mailer.patient_label())?,
        task_id: task.id.clone(),
    };
    mail::notify(
        conn,
        mailer,
        &recipients,
        &notice,
        Some(&task.patient_id),
        &format!("task:{}:assigned:{}", task.id, event.id),
    )?;
    Ok(Notice { event, recipients })
}

/// The patient left hospital: the team is told, since the post-discharge deadlines (the first
/// home visit within 2 days, 退院・退所加算's information within 7) now run.
pub fn patient_discharged(conn: &mut DbConn, mailer: &Mailer, case: &Case, actor_id: &str) -> AppResult<Notice> {
    let recipients = team_except(conn, &case.patient_id, actor_id)?;
    let event = record(conn, NoticeKind::PatientDischarged, case, actor_id)?;
    if let Some(discharged_on) = case.discharged_on {
        let notice = mail::Notice::PatientDischarged {
            discharged_on,
            patient: patient_label(conn, &case.patient_id, mailer.patient_label())?,
            patient_id: case.patient_id.clone(),
        };
        mail::notify(
            conn,
            mailer,
            &recipients,
            &notice,
            Some(&case.patient_id),
            &format!("case:{}:discharged", case.id),
        )?;
    }
    Ok(Notice { event, recipients })
}

fn patient_label(conn: &mut DbConn, patient_id: &str, mode: PatientLabel) -> AppResult<String> {
    Ok(patients::find(conn, patient_id)?.map(|p| p.email_label(mode)).unwrap_or_default())
}

/// A case's notices, oldest first (for the patient's timeline).
pub fn for_case(conn: &mut DbConn, case_id: &str) -> AppResult<Vec<DischargeEvent>> {
    Ok(discharge_events::table
        .filter(discharge_events::case_id.eq(case_id))
        .order((discharge_events::at.asc(), discharge_events::id.asc()))
        .select(DischargeEvent::as_select())
        .load(conn)?)
}

fn team_except(conn: &mut DbConn, patient_id: &str, actor_id: &str) -> AppResult<Vec<String>> {
    let mut ids = team::active_user_ids(conn, patient_id)?;
    ids.retain(|id| id != actor_id);
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// A notice to the whole team about a case.
fn record(conn: &mut DbConn, kind: NoticeKind, case: &Case, actor_id: &str) -> AppResult<DischargeEvent> {
    let event = DischargeEvent {
        id: new_id(),
        patient_id: case.patient_id.clone(),
        case_id: case.id.clone(),
        task_id: None,
        kind,
        at: now(),
        actor_id: actor_id.into(),
        recipient_id: None,
    };
    insert(conn, &event)?;
    Ok(event)
}

fn insert(conn: &mut DbConn, event: &DischargeEvent) -> AppResult<()> {
    diesel::insert_into(discharge_events::table).values(event.clone()).execute(conn)?;
    Ok(())
}
