//! The events partner systems receive, queued from `changes::record` in the change's own
//! transaction: the commit is the promise that the event goes out, and a rolled-back write sends
//! nothing.
//!
//! Who receives an event: every active endpoint of every organisation in service that has an
//! active member (open membership) on the patient's care team at the time of the change — the
//! same boundary that decides whether that organisation's people see the patient (the access
//! policy, docs/architecture.md). Patients have no owning organisation; the team is it.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::{Endpoint, EndpointStatus};
use crate::api;
use crate::db::schema::{care_team_members, organizations, webhook_endpoints};
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};
use crate::mail::outbox;

crate::text_enum! {
    /// What an event says happened, as `<resource>.<action>`. The partner fetches the resource
    /// to learn the rest.
    EventType {
        FlagRaised => "flag.raised",
        FlagWorsened => "flag.worsened",
        FlagEscalated => "flag.escalated",
        FlagAcknowledged => "flag.acknowledged",
        FlagResolved => "flag.resolved",
        FlagEnteredInError => "flag.entered_in_error",
        CaseOpened => "discharge_case.opened",
        CaseUpdated => "discharge_case.updated",
        CaseDischarged => "discharge_case.discharged",
        CaseClosed => "discharge_case.closed",
        CaseCancelled => "discharge_case.cancelled",
        TaskCreated => "discharge_task.created",
        TaskAssigned => "discharge_task.assigned",
        TaskStatusChanged => "discharge_task.status_changed",
        TaskUpdated => "discharge_task.updated",
        TaskDeadlinesMoved => "discharge_task.deadlines_moved",
    }
}

crate::text_enum! {
    /// The kind of record an event names, as the API's paths name it.
    ResourceType {
        Flag => "flag",
        DischargeCase => "discharge_case",
        DischargeTask => "discharge_task",
    }
}

/// The record an event is about.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResourceRef {
    #[serde(rename = "type")]
    pub kind: ResourceType,
    pub id: String,
}

/// The body of one webhook POST: ids, never names or clinical text.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(serialize_with = "api::utc")]
    pub occurred_at: NaiveDateTime,
    pub patient_id: String,
    pub resource: ResourceRef,
}

/// What a change tells partners: its type and the record it names (`changes::record` decides,
/// for the kinds partners follow).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Subject<'a> {
    pub kind: EventType,
    pub resource: ResourceType,
    pub id: &'a str,
}

impl Event {
    pub fn new(patient_id: &str, subject: Subject<'_>, at: NaiveDateTime) -> Event {
        Event {
            id: new_id(),
            kind: subject.kind,
            occurred_at: at,
            patient_id: patient_id.to_string(),
            resource: ResourceRef { kind: subject.resource, id: subject.id.to_string() },
        }
    }
}

/// Queues the change's event for every endpoint that follows the patient.
pub fn change_recorded(conn: &mut DbConn, patient_id: &str, subject: Subject<'_>) -> AppResult<()> {
    let endpoints = following(conn, patient_id)?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let event = Event::new(patient_id, subject, now());
    let body = serde_json::to_string(&event).map_err(|e| AppError::internal(format!("webhook event: {e}")))?;
    for endpoint in endpoints {
        let row = outbox::webhook_row(
            &endpoint.id,
            &crate::push::origin(&endpoint.url),
            event.kind.as_str(),
            &event.id,
            &body,
            &event.patient_id,
        );
        outbox::enqueue_row(conn, row)?;
    }
    Ok(())
}

/// The active endpoints of the organisations in service with an active member on the team.
fn following(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<Endpoint>> {
    let on_team = care_team_members::table
        .inner_join(organizations::table)
        .filter(care_team_members::patient_id.eq(patient_id))
        .filter(care_team_members::ended_at.is_null())
        .filter(organizations::active.eq(true))
        .select(care_team_members::organization_id);
    Ok(webhook_endpoints::table
        .filter(webhook_endpoints::organization_id.eq_any(on_team))
        .filter(webhook_endpoints::status.eq(EndpointStatus::Active))
        .order(webhook_endpoints::id.asc())
        .select(Endpoint::as_select())
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_ids_only() {
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap().naive_utc();
        let subject = Subject { kind: EventType::TaskAssigned, resource: ResourceType::DischargeTask, id: "t-1" };
        let json = serde_json::to_value(Event::new("p-1", subject, at)).unwrap();
        assert_eq!(json["type"], "discharge_task.assigned");
        assert_eq!(json["patient_id"], "p-1");
        assert_eq!(json["resource"], serde_json::json!({"type": "discharge_task", "id": "t-1"}));
        assert_eq!(json["occurred_at"], "2027-01-15T08:00:00.000000Z");
        assert_eq!(json.as_object().unwrap().len(), 5);
    }
}
