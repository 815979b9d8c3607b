//! The audit trail: every read, write and denied attempt on patient data, written in the same
//! transaction as the access itself.
//!
//! Events are append-only (database triggers refuse UPDATE and DELETE) and hash-chained **per
//! patient**: each event carries the hash of the one before it in its patient's chain, so a
//! changed byte or a deleted row is detectable (`renkei audit verify`). Chaining per patient
//! means writers for different patients never wait for each other — only the head row of one
//! patient's chain is locked — which keeps a whole city's writes parallel. Events about no
//! existing patient share one chain, `-`.

pub mod handlers;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::api;
use crate::auth::CurrentUser;
use crate::db::schema::{audit_chain_heads, audit_events};
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};
use crate::per_backend;

/// FHIR AuditEvent.action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
    Execute,
}

impl Action {
    pub fn code(self) -> &'static str {
        match self {
            Action::Create => "C",
            Action::Read => "R",
            Action::Update => "U",
            Action::Delete => "D",
            Action::Execute => "E",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Denied,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
        }
    }
}

crate::text_enum! {
    /// What an event is about: the kinds of record the service keeps and the views it answers.
    Resource {
        AccessLog => "access_log",
        Allergy => "allergy",
        Appointment => "appointment",
        Attachment => "attachment",
        CareTeam => "care_team",
        CareTeamInvitation => "care_team_invitation",
        CareTeamMember => "care_team_member",
        Caseload => "caseload",
        Consent => "consent",
        DischargeCase => "discharge_case",
        DischargeConference => "discharge_conference",
        DischargeTask => "discharge_task",
        DischargeTaskComment => "discharge_task_comment",
        EmergencyAccess => "emergency_access",
        EmergencyCard => "emergency_card",
        FamilyMessage => "family_message",
        Fhir => "fhir",
        Flag => "flag",
        Medication => "medication",
        JoiningApproval => "joining_approval",
        Note => "note",
        NoteRead => "note_read",
        Participant => "participant",
        Patient => "patient",
        Timeline => "timeline",
        User => "user",
        VisitPlan => "visit_plan",
        Vitals => "vitals",
        WardCoordinator => "ward_coordinator",
    }
}

/// One thing that happened to patient data.
pub struct Event<'a> {
    pub action: Action,
    pub resource_type: Resource,
    pub resource_id: Option<&'a str>,
    /// The patient, when one exists with this id.
    pub patient_id: Option<&'a str>,
    pub outcome: Outcome,
    /// `high` for break-glass access, so it stands out in reviews.
    pub high_priority: bool,
    /// A short machine-readable note (never clinical content).
    pub detail: Option<String>,
}

impl<'a> Event<'a> {
    pub fn new(
        action: Action,
        resource_type: Resource,
        resource_id: Option<&'a str>,
        patient_id: Option<&'a str>,
    ) -> Self {
        Event {
            action,
            resource_type,
            resource_id,
            patient_id,
            outcome: Outcome::Success,
            high_priority: false,
            detail: None,
        }
    }

    pub fn denied(mut self) -> Self {
        self.outcome = Outcome::Denied;
        self
    }

    pub fn high_priority(mut self) -> Self {
        self.high_priority = true;
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, Serialize)]
#[diesel(table_name = audit_events)]
pub struct AuditEvent {
    pub id: String,
    pub chain_key: String,
    pub chain_seq: i64,
    #[serde(serialize_with = "api::utc")]
    pub occurred_at: NaiveDateTime,
    pub actor_id: Option<String>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub patient_id: Option<String>,
    pub outcome: String,
    pub priority: String,
    pub source_ip: Option<String>,
    pub detail: Option<String>,
    #[serde(skip)]
    pub prev_hash: String,
    #[serde(skip)]
    pub hash: String,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of an event: its fields in a fixed order, separated by a character no field holds.
pub fn hash_of(e: &AuditEvent) -> String {
    let fields = [
        e.chain_key.as_str(),
        &e.chain_seq.to_string(),
        &e.id,
        &api::format_utc(&e.occurred_at),
        e.actor_id.as_deref().unwrap_or(""),
        &e.action,
        &e.resource_type,
        e.resource_id.as_deref().unwrap_or(""),
        e.patient_id.as_deref().unwrap_or(""),
        &e.outcome,
        &e.priority,
        e.source_ip.as_deref().unwrap_or(""),
        e.detail.as_deref().unwrap_or(""),
        &e.prev_hash,
    ];
    let mut h = Sha256::new();
    for f in fields {
        h.update(f.as_bytes());
        h.update([0x1f]);
    }
    hex::encode(h.finalize())
}

/// Appends an event by `me` to its patient's chain, in the caller's transaction.
pub fn record(conn: &mut DbConn, me: &CurrentUser, event: Event<'_>) -> AppResult<()> {
    append(conn, Some(&me.id), me.client_ip.clone(), event)
}

/// Records several events, e.g. one per patient listed on a page. Chains are locked in the
/// order of their keys, so two requests listing overlapping patients in different orders wait
/// for each other instead of deadlocking.
pub fn record_all(conn: &mut DbConn, me: &CurrentUser, mut events: Vec<Event<'_>>) -> AppResult<()> {
    events.sort_by(|a, b| a.patient_id.cmp(&b.patient_id));
    for event in events {
        record(conn, me, event)?;
    }
    Ok(())
}

/// Appends an event to its patient's chain: in the caller's transaction, or — inside a read on a
/// read-only connection ([`crate::db::Db::read`]) — by the writer, which holds the batch and so
/// computes every chain's next link without anyone waiting on another patient's chain; the read
/// is answered only after that batch commits.
pub fn append(conn: &mut DbConn, actor_id: Option<&str>, source_ip: Option<String>, event: Event<'_>) -> AppResult<()> {
    let row = AuditEvent {
        id: new_id(),
        chain_key: event.patient_id.unwrap_or("-").to_string(),
        chain_seq: 0,
        occurred_at: now(),
        actor_id: actor_id.map(str::to_string),
        action: event.action.code().into(),
        resource_type: event.resource_type.as_str().into(),
        resource_id: event.resource_id.map(str::to_string),
        patient_id: event.patient_id.map(str::to_string),
        outcome: event.outcome.as_str().into(),
        priority: if event.high_priority { "high" } else { "normal" }.into(),
        source_ip,
        detail: event.detail,
        prev_hash: String::new(),
        hash: String::new(),
    };
    crate::db::write(conn, move |conn| link(conn, row))
}

/// Puts `row` at the end of its chain: takes the next sequence number and the previous hash
/// from the chain's head, hashes the row and stores it.
fn link(conn: &mut DbConn, mut row: AuditEvent) -> AppResult<()> {
    let chain_key = row.chain_key.clone();
    // Lock the chain's head by bumping its sequence (concurrent writers of the same chain queue
    // here, others do not), creating the head first if this is the chain's first event.
    let bump = |conn: &mut DbConn| -> AppResult<Option<(i64, String)>> {
        Ok(per_backend!(conn, |c| diesel::update(audit_chain_heads::table.find(&chain_key))
            .set(audit_chain_heads::last_seq.eq(audit_chain_heads::last_seq + 1))
            .returning((audit_chain_heads::last_seq, audit_chain_heads::last_hash))
            .get_result(c)
            .optional())?)
    };
    let (seq, prev_hash) = match bump(conn)? {
        Some(head) => head,
        None => {
            let head = (
                audit_chain_heads::chain_key.eq(&chain_key),
                audit_chain_heads::last_seq.eq(0i64),
                audit_chain_heads::last_hash.eq(GENESIS),
            );
            per_backend!(conn, |c| diesel::insert_into(audit_chain_heads::table)
                .values(head)
                .on_conflict_do_nothing()
                .execute(c))?;
            bump(conn)?.ok_or_else(|| AppError::internal("audit chain head vanished"))?
        }
    };
    row.chain_seq = seq;
    row.prev_hash = prev_hash;
    row.hash = hash_of(&row);
    diesel::insert_into(audit_events::table).values(&row).execute(conn)?;
    diesel::update(audit_chain_heads::table.find(&chain_key))
        .set(audit_chain_heads::last_hash.eq(&row.hash))
        .execute(conn)?;
    Ok(())
}

/// The first place a chain is broken.
#[derive(Debug, PartialEq, Eq)]
pub struct Broken {
    pub chain_key: String,
    pub chain_seq: i64,
    pub event_id: Option<String>,
    pub reason: &'static str,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "chain {} at sequence {}", self.chain_key, self.chain_seq)?;
        if let Some(id) = &self.event_id {
            write!(f, " (event {id})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

pub struct VerifyReport {
    pub chains: usize,
    pub events: usize,
    pub broken: Option<Broken>,
}

/// Walks every chain and recomputes every hash; stops at the first broken row.
pub fn verify(conn: &mut DbConn) -> AppResult<VerifyReport> {
    let heads: Vec<(String, i64, String)> = audit_chain_heads::table
        .order(audit_chain_heads::chain_key)
        .select((audit_chain_heads::chain_key, audit_chain_heads::last_seq, audit_chain_heads::last_hash))
        .load(conn)?;
    let mut events = 0;
    for (key, last_seq, last_hash) in &heads {
        let mut expected_seq = 1i64;
        let mut prev = GENESIS.to_string();
        loop {
            let batch: Vec<AuditEvent> = audit_events::table
                .filter(audit_events::chain_key.eq(key))
                .filter(audit_events::chain_seq.ge(expected_seq))
                .order(audit_events::chain_seq.asc())
                .limit(1000)
                .select(AuditEvent::as_select())
                .load(conn)?;
            if batch.is_empty() {
                break;
            }
            for e in batch {
                let broken = |reason| Broken {
                    chain_key: key.clone(),
                    chain_seq: expected_seq,
                    event_id: Some(e.id.clone()),
                    reason,
                };
                if e.chain_seq != expected_seq {
                    return Ok(VerifyReport {
                        chains: heads.len(),
                        events,
                        broken: Some(broken("a row is missing before this one")),
                    });
                }
                if e.prev_hash != prev {
                    return Ok(VerifyReport {
                        chains: heads.len(),
                        events,
                        broken: Some(broken("does not link to the row before it")),
                    });
                }
                if hash_of(&e) != e.hash {
                    return Ok(VerifyReport {
                        chains: heads.len(),
                        events,
                        broken: Some(broken("its content was changed")),
                    });
                }
                prev = e.hash.clone();
                expected_seq += 1;
                events += 1;
            }
        }
        if expected_seq - 1 != *last_seq || prev != *last_hash {
            let broken = Broken {
                chain_key: key.clone(),
                chain_seq: expected_seq,
                event_id: None,
                reason: "rows are missing at the end of the chain",
            };
            return Ok(VerifyReport { chains: heads.len(), events, broken: Some(broken) });
        }
    }
    let orphan: Option<AuditEvent> = audit_events::table
        .filter(audit_events::chain_key.ne_all(heads.iter().map(|h| h.0.clone()).collect::<Vec<_>>()))
        .select(AuditEvent::as_select())
        .first(conn)
        .optional()?;
    if let Some(e) = orphan {
        let broken = Broken {
            chain_key: e.chain_key.clone(),
            chain_seq: e.chain_seq,
            event_id: Some(e.id),
            reason: "its chain has no head",
        };
        return Ok(VerifyReport { chains: heads.len(), events, broken: Some(broken) });
    }
    Ok(VerifyReport { chains: heads.len(), events, broken: None })
}

#[derive(Debug, Default)]
pub struct Filter {
    pub patient_id: Option<String>,
    pub actor_id: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
}

/// Events newest first (ids are time-ordered), one page.
pub fn search(conn: &mut DbConn, filter: &Filter, before: Option<&str>, limit: i64) -> AppResult<Vec<AuditEvent>> {
    let mut q = audit_events::table.into_boxed();
    if let Some(p) = &filter.patient_id {
        q = q.filter(audit_events::patient_id.eq(p.clone()));
    }
    if let Some(a) = &filter.actor_id {
        q = q.filter(audit_events::actor_id.eq(a.clone()));
    }
    if let Some(a) = &filter.action {
        q = q.filter(audit_events::action.eq(a.clone()));
    }
    if let Some(o) = &filter.outcome {
        q = q.filter(audit_events::outcome.eq(o.clone()));
    }
    if let Some(s) = filter.since {
        q = q.filter(audit_events::occurred_at.ge(s));
    }
    if let Some(u) = filter.until {
        q = q.filter(audit_events::occurred_at.lt(u));
    }
    if let Some(b) = before {
        q = q.filter(audit_events::id.lt(b.to_string()));
    }
    Ok(q.order(audit_events::id.desc()).limit(limit + 1).select(AuditEvent::as_select()).load(conn)?)
}
