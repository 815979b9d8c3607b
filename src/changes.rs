//! What a write changed, recorded once, in the write's own transaction.
//!
//! Every write that moves something another view depends on says what happened here — a patient
//! registered, a team member added, a note amended — and whatever follows from it is decided in
//! [`record`] alone: today the patient's caseload entry (`caseload::entries`), later anything else
//! that follows the record. A write cannot forget a projection, and a projection added later
//! reaches every kind of change at once; the change feed's log (`sync`) is one of them, the
//! partner systems' webhook events (`webhooks::events`) another. (The
//! outbox worker is woken by the commit itself, see `db::Db::transaction`.)

use chrono::NaiveDateTime;

use crate::caseload::entries;
use crate::db::DbConn;
use crate::error::AppResult;
use crate::notes::news2::Band;
use crate::vocab::NoteKind;
use crate::webhooks::events::{EventType, ResourceType, Subject};

/// What happened to one patient's record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change<'a> {
    /// Registered, or their details or status changed.
    Patient { patient_id: &'a str },
    /// A clinician recorded (`recorded: true`) or withdrew the patient's SpO2 target of 88–92%:
    /// every later note is scored on NEWS2 scale 2 while it stands.
    Spo2Target { patient_id: &'a str, recorded: bool },
    /// A member joined or left the care team, changed role, or their organisation went out of
    /// or back into service.
    Team { patient_id: &'a str },
    /// A consent was recorded or revoked.
    Consent { patient_id: &'a str },
    /// A new note (its first version), recorded at `created_at`.
    NoteAdded {
        patient_id: &'a str,
        note_id: &'a str,
        created_at: NaiveDateTime,
        kind: NoteKind,
        occurred_at: NaiveDateTime,
        news2: Option<(i32, Band)>,
    },
    /// A member of the team read one of the patient's notes for the first time (既読).
    NoteRead { patient_id: &'a str, user_id: &'a str },
    /// A note was amended or marked entered-in-error.
    NoteVersion { patient_id: &'a str },
    /// A flag was raised, acknowledged, resolved or escalated (`action` says which).
    Flag { patient_id: &'a str, flag_id: &'a str, action: FlagAction },
    /// A discharge case was opened, changed or moved.
    DischargeCase { patient_id: &'a str, case_id: &'a str, action: CaseAction },
    /// A file was added to a note or a discharge case, or marked entered in error.
    Attachment { patient_id: &'a str },
    /// A discharge task was added, assigned, moved or had its deadline recomputed: `task_id`
    /// names it, or is `None` when several tasks of the case changed at once (generated from
    /// the templates, deadlines recomputed).
    Task { patient_id: &'a str, case_id: &'a str, task_id: Option<&'a str>, action: TaskAction },
    /// A medication was added, changed or marked entered in error, or the list was reconciled.
    Medication { patient_id: &'a str },
    /// An allergy was added, changed or marked entered in error.
    Allergy { patient_id: &'a str },
    /// A new version of the emergency card.
    EmergencyCard { patient_id: &'a str },
    /// A visit plan was added or changed (ended among them).
    VisitPlan { patient_id: &'a str },
    /// An appointment was booked or changed (cancelled, its minutes recorded …).
    Appointment { patient_id: &'a str },
    /// A message in the family channel.
    FamilyMessage { patient_id: &'a str },
}

/// What happened to a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagAction {
    Raised,
    /// A newer note's NEWS2 made the open automatic flag more severe.
    Worsened,
    /// Nobody acknowledged it in time: the next tier (backup physicians, then the ward's
    /// coordinating physicians) was alerted.
    Escalated,
    Acknowledged,
    Resolved,
    EnteredInError,
}

/// What happened to a discharge case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseAction {
    Opened,
    /// Its details changed (planned date, department, contact …), its status did not.
    Updated,
    Discharged,
    Closed,
    Cancelled,
}

/// What happened to a discharge task (or, with no task named, to several of a case's tasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskAction {
    Created,
    /// Someone else (or nobody) is to do it now.
    Assigned,
    StatusChanged,
    /// Its deadline was edited (an ad-hoc task's).
    Updated,
    /// The case's dates moved the deadlines of its open rule-based tasks.
    DeadlinesMoved,
}

impl Change<'_> {
    pub fn patient_id(&self) -> &str {
        match self {
            Change::Patient { patient_id }
            | Change::Spo2Target { patient_id, .. }
            | Change::Team { patient_id }
            | Change::Consent { patient_id }
            | Change::NoteAdded { patient_id, .. }
            | Change::NoteRead { patient_id, .. }
            | Change::NoteVersion { patient_id }
            | Change::Flag { patient_id, .. }
            | Change::DischargeCase { patient_id, .. }
            | Change::Task { patient_id, .. }
            | Change::Attachment { patient_id }
            | Change::Medication { patient_id }
            | Change::Allergy { patient_id }
            | Change::EmergencyCard { patient_id }
            | Change::VisitPlan { patient_id }
            | Change::Appointment { patient_id }
            | Change::FamilyMessage { patient_id } => patient_id,
        }
    }
}

/// Records `change` and moves what depends on it, in the caller's transaction.
pub fn record(conn: &mut DbConn, change: Change<'_>) -> AppResult<()> {
    crate::sync::append(conn, change.patient_id(), feed_kind(&change))?;
    // Partner systems of the organisations on the team hear of it through their webhooks.
    if let Some(subject) = partner_event(&change) {
        crate::webhooks::events::change_recorded(conn, change.patient_id(), subject)?;
    }
    match change {
        // A new note can only move the last visit and the latest NEWS2 forward: the cheap path.
        Change::NoteAdded { patient_id, note_id, created_at, kind, occurred_at, news2 } => {
            entries::note_added(conn, patient_id, kind, occurred_at, news2)?;
            crate::notes::unread::note_added(conn, patient_id, note_id, created_at)
        }
        // A read moves only what the reader has not read; nothing of the caseload.
        Change::NoteRead { patient_id, user_id } => crate::notes::unread::read(conn, user_id, patient_id),
        // Who is on the team decides whose unread notes the patient's are.
        Change::Team { patient_id } => {
            entries::refresh(conn, patient_id)?;
            crate::notes::unread::team_changed(conn, patient_id)
        }
        Change::Patient { patient_id }
        | Change::Spo2Target { patient_id, .. }
        | Change::Consent { patient_id }
        | Change::NoteVersion { patient_id }
        | Change::Flag { patient_id, .. }
        | Change::DischargeCase { patient_id, .. }
        | Change::Task { patient_id, .. }
        | Change::Attachment { patient_id }
        | Change::Medication { patient_id }
        | Change::Allergy { patient_id }
        | Change::EmergencyCard { patient_id }
        | Change::VisitPlan { patient_id }
        | Change::Appointment { patient_id }
        | Change::FamilyMessage { patient_id } => entries::refresh(conn, patient_id),
    }
}

/// What partner systems are told of a change, for the kinds they follow: flags, discharge cases
/// and their tasks, each as the action that happened (`flag.acknowledged`,
/// `discharge_case.discharged` …). Several tasks of a case changed at once name the case.
fn partner_event<'a>(change: &Change<'a>) -> Option<Subject<'a>> {
    use EventType as E;
    let (kind, resource, id) = match *change {
        Change::Flag { flag_id, action, .. } => {
            let kind = match action {
                FlagAction::Raised => E::FlagRaised,
                FlagAction::Worsened => E::FlagWorsened,
                FlagAction::Escalated => E::FlagEscalated,
                FlagAction::Acknowledged => E::FlagAcknowledged,
                FlagAction::Resolved => E::FlagResolved,
                FlagAction::EnteredInError => E::FlagEnteredInError,
            };
            (kind, ResourceType::Flag, flag_id)
        }
        Change::DischargeCase { case_id, action, .. } => {
            let kind = match action {
                CaseAction::Opened => E::CaseOpened,
                CaseAction::Updated => E::CaseUpdated,
                CaseAction::Discharged => E::CaseDischarged,
                CaseAction::Closed => E::CaseClosed,
                CaseAction::Cancelled => E::CaseCancelled,
            };
            (kind, ResourceType::DischargeCase, case_id)
        }
        Change::Task { task_id, case_id, action, .. } => {
            let kind = match action {
                TaskAction::Created => E::TaskCreated,
                TaskAction::Assigned => E::TaskAssigned,
                TaskAction::StatusChanged => E::TaskStatusChanged,
                TaskAction::Updated => E::TaskUpdated,
                TaskAction::DeadlinesMoved => E::TaskDeadlinesMoved,
            };
            match task_id {
                Some(task_id) => (kind, ResourceType::DischargeTask, task_id),
                None => (kind, ResourceType::DischargeCase, case_id),
            }
        }
        _ => return None,
    };
    Some(Subject { kind, resource, id })
}

/// The change feed's word for a change (`sync::ChangeKind`).
fn feed_kind(change: &Change<'_>) -> crate::sync::ChangeKind {
    use crate::sync::ChangeKind as K;
    match change {
        Change::Patient { .. } => K::Patient,
        Change::Spo2Target { .. } => K::Spo2Target,
        Change::Team { .. } => K::Team,
        Change::Consent { .. } => K::Consent,
        Change::NoteAdded { .. } => K::NoteAdded,
        Change::NoteRead { .. } => K::NoteRead,
        Change::NoteVersion { .. } => K::NoteVersion,
        Change::Flag { .. } => K::Flag,
        Change::DischargeCase { .. } => K::DischargeCase,
        Change::Attachment { .. } => K::Attachment,
        Change::Task { .. } => K::Task,
        Change::Medication { .. } => K::Medication,
        Change::Allergy { .. } => K::Allergy,
        Change::EmergencyCard { .. } => K::EmergencyCard,
        Change::VisitPlan { .. } => K::VisitPlan,
        Change::Appointment { .. } => K::Appointment,
        Change::FamilyMessage { .. } => K::FamilyMessage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partners_hear_of_flags_cases_and_tasks_only() {
        let task = Change::Task { patient_id: "p", case_id: "c", task_id: Some("t"), action: TaskAction::Assigned };
        assert_eq!(
            partner_event(&task),
            Some(Subject { kind: EventType::TaskAssigned, resource: ResourceType::DischargeTask, id: "t" })
        );
        let several = Change::Task { patient_id: "p", case_id: "c", task_id: None, action: TaskAction::Created };
        assert_eq!(
            partner_event(&several).map(|s| (s.kind.as_str(), s.resource, s.id)),
            Some(("discharge_task.created", ResourceType::DischargeCase, "c"))
        );
        let flag = Change::Flag { patient_id: "p", flag_id: "f", action: FlagAction::Acknowledged };
        assert_eq!(partner_event(&flag).map(|s| (s.kind.as_str(), s.id)), Some(("flag.acknowledged", "f")));
        let escalated = Change::Flag { patient_id: "p", flag_id: "f", action: FlagAction::Escalated };
        assert_eq!(partner_event(&escalated).map(|s| s.kind.as_str()), Some("flag.escalated"));
        let case = Change::DischargeCase { patient_id: "p", case_id: "c", action: CaseAction::Discharged };
        assert_eq!(partner_event(&case).map(|s| s.kind.as_str()), Some("discharge_case.discharged"));
        assert_eq!(partner_event(&Change::Consent { patient_id: "p" }), None);
        assert_eq!(partner_event(&Change::NoteVersion { patient_id: "p" }), None);
    }
}
