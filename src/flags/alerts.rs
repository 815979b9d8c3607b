//! Telling people about flags: the team when a flag is raised or becomes more severe, and the
//! next people in line when nobody acknowledges it in time. Every e-mail is queued in the same
//! transaction as the flag change, with a key that makes each event queue once per person.

use std::time::Duration as StdDuration;

use chrono::NaiveDateTime;

use super::{AutoFlag, EscalationLimits, Flag};
use crate::audit::{self, Action, Event, Resource};
use crate::db::DbConn;
use crate::error::AppResult;
use crate::mail::{self, Mailer, Notice, Severity};
use crate::notes::news2::News2;
use crate::patients::{self, Patient};
use crate::state::AppState;
use crate::vocab::{FlagSeverity, FlagSource};

fn severity(s: FlagSeverity) -> Severity {
    match s {
        FlagSeverity::Urgent => Severity::Urgent,
        FlagSeverity::Emergency => Severity::Emergency,
    }
}

/// A flag a person raises (a team member by hand, a family member from the family channel):
/// recorded, audited and the team alerted, in the caller's transaction.
#[allow(clippy::too_many_arguments)] // the flag and everything it needs to be raised
pub fn raise(
    conn: &mut DbConn,
    me: &crate::auth::CurrentUser,
    mailer: &Mailer,
    limits: &EscalationLimits,
    patient: &Patient,
    severity: FlagSeverity,
    source: FlagSource,
    reason: String,
) -> AppResult<Flag> {
    let new = super::NewFlag {
        patient_id: &patient.id,
        severity,
        source,
        source_note_id: None,
        reason,
        raised_by: Some(&me.id),
    };
    let flag = super::insert(conn, new, crate::db::now(), limits)?;
    audit::record(conn, me, Event::new(Action::Create, Resource::Flag, Some(&flag.id), Some(&patient.id)))?;
    flag_raised(conn, mailer, patient, &flag)?;
    Ok(flag)
}

/// Alerts the team about a new flag, or one that just became more severe.
pub fn flag_raised(conn: &mut DbConn, mailer: &Mailer, patient: &Patient, flag: &Flag) -> AppResult<usize> {
    let sev = flag.severity;
    let recipients = super::alert_recipients(
        conn,
        &patient.id,
        sev,
        flag.raised_by.as_deref().filter(|_| flag.source == FlagSource::Manual),
    )?;
    let notice = Notice::FlagRaised {
        severity: severity(sev),
        raised_at: flag.updated_at,
        patient: patient.email_label(mailer.patient_label()),
        flag_id: flag.id.clone(),
    };
    // The severity and version in the key: an escalation to emergency alerts again.
    mail::notify(
        conn,
        mailer,
        &recipients,
        &notice,
        Some(&patient.id),
        &format!("flag:{}:{}:v{}", flag.id, sev, flag.version),
    )
}

/// Applies a note's NEWS2 to the patient's flags and alerts when that raised or escalated one.
#[allow(clippy::too_many_arguments)] // the note's context, as the notes handler holds it
pub fn on_note_scored(
    conn: &mut DbConn,
    mailer: &Mailer,
    limits: &EscalationLimits,
    author_id: &str,
    patient: &Patient,
    note_id: &str,
    score: &News2,
    now: NaiveDateTime,
) -> AppResult<usize> {
    match super::apply_news2(conn, &patient.id, note_id, score, author_id, now, limits)? {
        Some(AutoFlag::Raised(id)) | Some(AutoFlag::Escalated(id)) => {
            let Some(flag) = super::find(conn, &id)? else { return Ok(0) };
            audit::append(
                conn,
                Some(author_id),
                None,
                Event::new(Action::Create, Resource::Flag, Some(&id), Some(&patient.id)).detail("news2"),
            )?;
            flag_raised(conn, mailer, patient, &flag)
        }
        Some(AutoFlag::Updated(_)) | None => Ok(0),
    }
}

/// Takes every escalation step due at `now` and queues its e-mails; returns how many were queued.
pub fn run_escalations(
    conn: &mut DbConn,
    mailer: &Mailer,
    now: NaiveDateTime,
    limits: &EscalationLimits,
) -> AppResult<usize> {
    let mut queued = 0;
    for step in super::escalate_due(conn, now, limits)? {
        let Some(flag) = super::find(conn, &step.flag_id)? else { continue };
        let Some(patient) = patients::find(conn, &step.patient_id)? else { continue };
        let notice = Notice::FlagEscalated {
            severity: severity(step.severity),
            raised_at: flag.raised_at,
            minutes_unacknowledged: (now - flag.raised_at).num_minutes(),
            patient: patient.email_label(mailer.patient_label()),
            flag_id: flag.id.clone(),
        };
        audit::append(
            conn,
            None,
            None,
            Event::new(Action::Update, Resource::Flag, Some(&flag.id), Some(&patient.id))
                .detail(format!("escalated to level {}", step.level)),
        )?;
        queued += mail::notify(
            conn,
            mailer,
            &step.recipients,
            &notice,
            Some(&patient.id),
            &format!("flag:{}:escalation:{}", flag.id, step.level),
        )?;
    }
    Ok(queued)
}

/// Runs escalations every 30 seconds in this instance. Several instances may run it: each step
/// is claimed in the database, so it is taken once.
pub fn spawn_escalation_worker(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(StdDuration::from_secs(30));
        loop {
            tick.tick().await;
            let limits = state.config.escalation_limits();
            let mailer = state.mail.clone();
            let result = state.db.run(move |conn| run_escalations(conn, &mailer, crate::db::now(), &limits)).await;
            match result {
                Ok(0) => {}
                Ok(n) => tracing::info!(emails = n, "flag escalations queued"),
                Err(e) => tracing::warn!(error = %e, "flag escalation run failed"),
            }
        }
    })
}
