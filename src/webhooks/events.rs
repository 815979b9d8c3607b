//! The events partner systems receive, queued from `changes::record` in the change's own
//! transaction: the commit is the promise that the event goes out, and a rolled-back write sends
//! nothing.
//!
//! Who receives an event: every active endpoint of every organisation in service that has an
//! active member (open membership) on the patient's care team at the time of the change — the
//! same boundary that decides whether that organisation's people see the patient (docs/
//! architecture.md, the access policy). Patients have no owning organisation; the team is it.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::{Endpoint, EndpointStatus};
use crate::api;
use crate::changes::Change;
use crate::db::schema::{care_team_members, organizations, webhook_endpoints};
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};
use crate::mail::outbox;

crate::text_enum! {
    /// What an event says happened. The partner fetches the resource to learn what.
    EventType {
        Flag => "flag.changed",
        DischargeCase => "discharge_case.changed",
        DischargeTask => "discharge_task.changed",
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

impl Event {
    /// The event a change makes, for the kinds partners follow: flags (raised, acknowledged,
    /// resolved, escalated), discharge cases and their tasks (assigned, moved, deadlines).
    /// Several tasks of a case changed at once name the case.
    pub fn of(change: &Change<'_>, at: NaiveDateTime) -> Option<Event> {
        let (kind, resource, id) = match *change {
            Change::Flag { flag_id, .. } => (EventType::Flag, ResourceType::Flag, flag_id),
            Change::DischargeCase { case_id, .. } => {
                (EventType::DischargeCase, ResourceType::DischargeCase, case_id)
            }
            Change::Task { task_id: Some(task_id), .. } => {
                (EventType::DischargeTask, ResourceType::DischargeTask, task_id)
            }
            Change::Task { task_id: None, case_id, .. } => {
                (EventType::DischargeTask, ResourceType::DischargeCase, case_id)
            }
            _ => return None,
        };
        Some(Event {
            id: new_id(),
            kind,
            occurred_at: at,
            patient_id: change.patient_id().to_string(),
            resource: ResourceRef { kind: resource, id: id.to_string() },
        })
    }
}

/// Queues the change's event for every endpoint that follows the patient.
pub fn change_recorded(conn: &mut DbConn, change: &Change<'_>) -> AppResult<()> {
    let Some(event) = Event::of(change, now()) else { return Ok(()) };
    let endpoints = following(conn, &event.patient_id)?;
    if endpoints.is_empty() {
        return Ok(());
    }
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
        let change = Change::Task { patient_id: "p-1", case_id: "c-1", task_id: Some("t-1") };
        let event = Event::of(&change, at).unwrap();
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "discharge_task.changed");
        assert_eq!(json["patient_id"], "p-1");
        assert_eq!(json["resource"], serde_json::json!({"type": "discharge_task", "id": "t-1"}));
        assert_eq!(json["occurred_at"], "2027-01-15T08:00:00.000000Z");
        assert_eq!(json.as_object().unwrap().len(), 5);
        let several = Event::of(&Change::Task { patient_id: "p-1", case_id: "c-1", task_id: None }, at).unwrap();
        assert_eq!(several.resource, ResourceRef { kind: ResourceType::DischargeCase, id: "c-1".into() });
        assert!(Event::of(&Change::Consent { patient_id: "p-1" }, at).is_none());
    }
}
