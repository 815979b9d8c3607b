//! Deterioration flags (急性増悪). A team member raises one; the system raises one when a
//! note's vital signs reach NEWS2 ≥ 5 (urgent), ≥ 7 (emergency) or 3 in a single parameter
//! (urgent) — decision support for a clinician to judge, never a diagnosis. While an automatic
//! flag is open, a further trigger updates it (a higher severity escalates it) instead of raising
//! a duplicate. Unacknowledged flags escalate step by step: the backup physician, then the
//! ward's coordinating physicians — each step exactly once, across instances and restarts,
//! because a step is claimed by a conditional UPDATE of `escalation_level`.

pub mod alerts;
pub mod handlers;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;

use crate::api;
use crate::changes::FlagAction;
use crate::db::schema::{care_team_members, flags, organizations, patients, users};
use crate::db::{new_id, DbConn};
use crate::error::{AppError, AppResult};
use crate::notes::news2::{AlertLevel, News2};
use crate::vocab::{FlagNotifications, FlagSeverity, FlagSource, FlagStatus, TeamRole};

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = flags)]
pub struct Flag {
    pub id: String,
    pub patient_id: String,
    pub severity: FlagSeverity,
    pub status: FlagStatus,
    pub source: FlagSource,
    pub source_note_id: Option<String>,
    pub reason: String,
    pub raised_by: Option<String>,
    pub raised_at: NaiveDateTime,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<NaiveDateTime>,
    pub acknowledge_note: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<NaiveDateTime>,
    pub resolve_note: Option<String>,
    pub escalation_level: i32,
    pub next_escalation_at: Option<NaiveDateTime>,
    pub version: i32,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Serialize)]
pub struct FlagView {
    pub id: String,
    pub patient_id: String,
    pub patient_family_name: String,
    pub patient_given_name: String,
    pub severity: FlagSeverity,
    pub status: FlagStatus,
    pub source: FlagSource,
    pub source_note_id: Option<String>,
    pub reason: String,
    pub raised_by: Option<String>,
    #[serde(serialize_with = "api::utc")]
    pub raised_at: NaiveDateTime,
    pub acknowledged_by: Option<String>,
    #[serde(serialize_with = "api::utc_opt")]
    pub acknowledged_at: Option<NaiveDateTime>,
    pub acknowledge_note: Option<String>,
    pub resolved_by: Option<String>,
    #[serde(serialize_with = "api::utc_opt")]
    pub resolved_at: Option<NaiveDateTime>,
    pub resolve_note: Option<String>,
    pub escalation_level: i32,
    pub version: i32,
}

impl Flag {
    fn view(self, family_name: String, given_name: String) -> FlagView {
        FlagView {
            id: self.id,
            patient_id: self.patient_id,
            patient_family_name: family_name,
            patient_given_name: given_name,
            severity: self.severity,
            status: self.status,
            source: self.source,
            source_note_id: self.source_note_id,
            reason: self.reason,
            raised_by: self.raised_by,
            raised_at: self.raised_at,
            acknowledged_by: self.acknowledged_by,
            acknowledged_at: self.acknowledged_at,
            acknowledge_note: self.acknowledge_note,
            resolved_by: self.resolved_by,
            resolved_at: self.resolved_at,
            resolve_note: self.resolve_note,
            escalation_level: self.escalation_level,
            version: self.version,
        }
    }
}

/// How long an unacknowledged flag waits before each escalation step.
#[derive(Debug, Clone, Copy)]
pub struct EscalationLimits {
    pub emergency: Duration,
    pub urgent: Duration,
}

impl EscalationLimits {
    pub fn for_severity(&self, s: FlagSeverity) -> Duration {
        match s {
            FlagSeverity::Emergency => self.emergency,
            FlagSeverity::Urgent => self.urgent,
        }
    }
}

pub fn severity_of(level: AlertLevel) -> FlagSeverity {
    match level {
        AlertLevel::Emergency => FlagSeverity::Emergency,
        AlertLevel::Urgent => FlagSeverity::Urgent,
    }
}

fn rank(s: FlagSeverity) -> u8 {
    match s {
        FlagSeverity::Urgent => 1,
        FlagSeverity::Emergency => 2,
    }
}

pub fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<Flag>> {
    Ok(flags::table.find(id).select(Flag::as_select()).first(conn).optional()?)
}

pub fn view(conn: &mut DbConn, flag: Flag) -> AppResult<FlagView> {
    let (family, given): (String, String) =
        patients::table.find(&flag.patient_id).select((patients::family_name, patients::given_name)).first(conn)?;
    Ok(flag.view(family, given))
}

fn views(conn: &mut DbConn, rows: Vec<Flag>) -> AppResult<Vec<FlagView>> {
    rows.into_iter().map(|f| view(conn, f)).collect()
}

pub struct NewFlag<'a> {
    pub patient_id: &'a str,
    pub severity: FlagSeverity,
    pub source: FlagSource,
    pub source_note_id: Option<&'a str>,
    pub reason: String,
    pub raised_by: Option<&'a str>,
}

pub fn insert(conn: &mut DbConn, new: NewFlag<'_>, now: NaiveDateTime, limits: &EscalationLimits) -> AppResult<Flag> {
    let flag = Flag {
        id: new_id(),
        patient_id: new.patient_id.into(),
        severity: new.severity,
        status: FlagStatus::Active,
        source: new.source,
        source_note_id: new.source_note_id.map(Into::into),
        reason: new.reason,
        raised_by: new.raised_by.map(Into::into),
        raised_at: now,
        acknowledged_by: None,
        acknowledged_at: None,
        acknowledge_note: None,
        resolved_by: None,
        resolved_at: None,
        resolve_note: None,
        escalation_level: 0,
        next_escalation_at: Some(now + limits.for_severity(new.severity)),
        version: 1,
        updated_at: now,
    };
    diesel::insert_into(flags::table).values(&flag).execute(conn)?;
    crate::changes::record(
        conn,
        crate::changes::Change::Flag { patient_id: &flag.patient_id, flag_id: &flag.id, action: FlagAction::Raised },
    )?;
    Ok(flag)
}

/// What a NEWS2 trigger did to the patient's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoFlag {
    Raised(String),
    /// The open automatic flag now points at the newer note; nobody is re-alerted.
    Updated(String),
    /// The open automatic flag became more severe and is active again: re-alert.
    Escalated(String),
}

/// Applies a note's NEWS2 to the patient's flags (in the note's transaction).
pub fn apply_news2(
    conn: &mut DbConn,
    patient_id: &str,
    note_id: &str,
    score: &News2,
    raised_by: &str,
    now: NaiveDateTime,
    limits: &EscalationLimits,
) -> AppResult<Option<AutoFlag>> {
    let Some(level) = score.alert_level() else { return Ok(None) };
    let severity = severity_of(level);
    let (ja, en) = score.trigger_description();
    let reason = format!("{ja}\n{en}");
    let open: Option<Flag> = flags::table
        .filter(flags::patient_id.eq(patient_id))
        .filter(flags::source.eq(FlagSource::News2))
        .filter(flags::status.eq_any(FlagStatus::OPEN))
        .order(flags::raised_at.desc())
        .select(Flag::as_select())
        .first(conn)
        .optional()?;
    let Some(open) = open else {
        let flag = insert(
            conn,
            NewFlag {
                patient_id,
                severity,
                source: FlagSource::News2,
                source_note_id: Some(note_id),
                reason,
                raised_by: Some(raised_by),
            },
            now,
            limits,
        )?;
        return Ok(Some(AutoFlag::Raised(flag.id)));
    };
    if rank(severity) > rank(open.severity) {
        diesel::update(flags::table.find(&open.id))
            .set((
                flags::severity.eq(severity),
                flags::status.eq(FlagStatus::Active),
                flags::source_note_id.eq(Some(note_id)),
                flags::reason.eq(&reason),
                flags::escalation_level.eq(0),
                flags::next_escalation_at.eq(Some(now + limits.for_severity(severity))),
                flags::version.eq(flags::version + 1),
                flags::updated_at.eq(now),
            ))
            .execute(conn)?;
        crate::changes::record(
            conn,
            crate::changes::Change::Flag { patient_id, flag_id: &open.id, action: FlagAction::Worsened },
        )?;
        Ok(Some(AutoFlag::Escalated(open.id)))
    } else {
        diesel::update(flags::table.find(&open.id))
            .set((
                flags::source_note_id.eq(Some(note_id)),
                flags::reason.eq(&reason),
                flags::version.eq(flags::version + 1),
                flags::updated_at.eq(now),
            ))
            .execute(conn)?;
        Ok(Some(AutoFlag::Updated(open.id)))
    }
}

/// Every flag of a patient, oldest first (the FHIR export).
pub fn for_patient(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<Flag>> {
    Ok(flags::table
        .filter(flags::patient_id.eq(patient_id))
        .order((flags::raised_at.asc(), flags::id.asc()))
        .select(Flag::as_select())
        .load(conn)?)
}

pub fn list_for_patient(conn: &mut DbConn, patient_id: &str, status: Option<FlagStatus>) -> AppResult<Vec<FlagView>> {
    let mut q = flags::table.filter(flags::patient_id.eq(patient_id)).into_boxed();
    if let Some(s) = status {
        q = q.filter(flags::status.eq(s));
    }
    let rows = q.order((flags::raised_at.desc(), flags::id.desc())).limit(200).select(Flag::as_select()).load(conn)?;
    views(conn, rows)
}

/// Open flags of the patients on whose teams the user is, most severe first.
pub fn open_for_member(conn: &mut DbConn, user_id: &str) -> AppResult<Vec<FlagView>> {
    let mine = care_team_members::table
        .filter(care_team_members::user_id.eq(user_id.to_string()))
        .filter(care_team_members::ended_at.is_null())
        .select(care_team_members::patient_id);
    let mut rows: Vec<Flag> = flags::table
        .filter(flags::patient_id.eq_any(mine))
        .filter(flags::status.eq_any(FlagStatus::OPEN))
        .order((flags::raised_at.desc(), flags::id.desc()))
        .limit(500)
        .select(Flag::as_select())
        .load(conn)?;
    // Most severe first; within a severity, unacknowledged first; then newest.
    rows.sort_by_key(|f| (f.severity != FlagSeverity::Emergency, f.status != FlagStatus::Active));
    views(conn, rows)
}

/// Records what happened to flag `id` after `n` rows of it changed; passes on whether the
/// change happened.
fn recorded(conn: &mut DbConn, id: &str, n: usize, action: FlagAction) -> AppResult<bool> {
    if n == 1 {
        let patient_id: String = flags::table.find(id).select(flags::patient_id).first(conn)?;
        crate::changes::record(conn, crate::changes::Change::Flag { patient_id: &patient_id, flag_id: id, action })?;
    }
    Ok(n == 1)
}

/// Moves an open flag on; `false` when it was not in a state that allows it.
pub fn acknowledge(conn: &mut DbConn, id: &str, by: &str, note: Option<&str>, now: NaiveDateTime) -> AppResult<bool> {
    let n = diesel::update(flags::table.filter(flags::id.eq(id)).filter(flags::status.eq(FlagStatus::Active)))
        .set((
            flags::status.eq(FlagStatus::Acknowledged),
            flags::acknowledged_by.eq(Some(by)),
            flags::acknowledged_at.eq(Some(now)),
            flags::acknowledge_note.eq(note),
            flags::next_escalation_at.eq(None::<NaiveDateTime>),
            flags::version.eq(flags::version + 1),
            flags::updated_at.eq(now),
        ))
        .execute(conn)?;
    recorded(conn, id, n, FlagAction::Acknowledged)
}

pub fn resolve(
    conn: &mut DbConn,
    id: &str,
    by: &str,
    note: &str,
    outcome: FlagStatus,
    now: NaiveDateTime,
) -> AppResult<bool> {
    let n = diesel::update(flags::table.filter(flags::id.eq(id)).filter(flags::status.eq_any(FlagStatus::OPEN)))
        .set((
            flags::status.eq(outcome),
            flags::resolved_by.eq(Some(by)),
            flags::resolved_at.eq(Some(now)),
            flags::resolve_note.eq(Some(note)),
            flags::next_escalation_at.eq(None::<NaiveDateTime>),
            flags::version.eq(flags::version + 1),
            flags::updated_at.eq(now),
        ))
        .execute(conn)?;
    let action = if outcome == FlagStatus::EnteredInError { FlagAction::EnteredInError } else { FlagAction::Resolved };
    recorded(conn, id, n, action)
}

/// Who is told when a flag is raised or becomes more severe: the active team, each as their
/// preference says — but an emergency always reaches the primary and backup physicians and the
/// lead. The person who raised it by hand already knows.
pub fn alert_recipients(
    conn: &mut DbConn,
    patient_id: &str,
    severity: FlagSeverity,
    raised_by: Option<&str>,
) -> AppResult<Vec<String>> {
    let members: Vec<(String, String, bool, String)> = care_team_members::table
        .inner_join(users::table.on(users::id.eq(care_team_members::user_id)))
        .inner_join(organizations::table.on(organizations::id.nullable().eq(users::organization_id)))
        .filter(care_team_members::patient_id.eq(patient_id))
        .filter(care_team_members::ended_at.is_null())
        .filter(users::active.eq(true))
        .filter(organizations::active.eq(true))
        .select((users::id, care_team_members::role, care_team_members::is_lead, users::flag_notifications))
        .load(conn)?;
    let mut out: Vec<String> = Vec::new();
    for (user_id, role, is_lead, preference) in members {
        if Some(user_id.as_str()) == raised_by || out.contains(&user_id) {
            continue;
        }
        let always = severity == FlagSeverity::Emergency
            && (is_lead || role == TeamRole::PrimaryPhysician.as_str() || role == TeamRole::BackupPhysician.as_str());
        let wanted = match FlagNotifications::parse(&preference).unwrap_or(FlagNotifications::All) {
            FlagNotifications::All => true,
            FlagNotifications::EmergencyOnly => severity == FlagSeverity::Emergency,
            FlagNotifications::None => false,
        };
        if always || wanted {
            out.push(user_id);
        }
    }
    Ok(out)
}

/// One escalation step that this instance claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub flag_id: String,
    pub patient_id: String,
    pub severity: FlagSeverity,
    /// 1: backup physicians; 2: the ward's coordinating physicians.
    pub level: i32,
    pub recipients: Vec<String>,
}

/// Claims and returns the escalation steps due at `now`. Each step is claimed by a conditional
/// UPDATE on the level it moves from, so with several instances (or after a restart) a step is
/// taken exactly once. The caller sends the notices in the same transaction.
pub fn escalate_due(conn: &mut DbConn, now: NaiveDateTime, limits: &EscalationLimits) -> AppResult<Vec<Escalation>> {
    let due: Vec<Flag> = flags::table
        .filter(flags::status.eq(FlagStatus::Active))
        .filter(flags::next_escalation_at.le(now))
        .order(flags::next_escalation_at.asc())
        .limit(100)
        .select(Flag::as_select())
        .load(conn)?;
    let mut steps = Vec::new();
    for flag in due {
        let severity = flag.severity;
        let backups = role_members(conn, &flag.patient_id, TeamRole::BackupPhysician)?;
        let (level, recipients) = if flag.escalation_level == 0 && !backups.is_empty() {
            (1, backups)
        } else {
            let ward: String = patients::table.find(&flag.patient_id).select(patients::ward_code).first(conn)?;
            (2, crate::wards::coordinators_of(conn, &ward)?)
        };
        let next = if level < 2 { Some(now + limits.for_severity(severity)) } else { None };
        let claimed = diesel::update(
            flags::table
                .filter(flags::id.eq(&flag.id))
                .filter(flags::escalation_level.eq(flag.escalation_level))
                .filter(flags::status.eq(FlagStatus::Active)),
        )
        .set((
            flags::escalation_level.eq(level),
            flags::next_escalation_at.eq(next),
            flags::version.eq(flags::version + 1),
            flags::updated_at.eq(now),
        ))
        .execute(conn)?;
        if claimed == 1 {
            crate::changes::record(
                conn,
                crate::changes::Change::Flag {
                    patient_id: &flag.patient_id,
                    flag_id: &flag.id,
                    action: FlagAction::Escalated,
                },
            )?;
            steps.push(Escalation { flag_id: flag.id, patient_id: flag.patient_id, severity, level, recipients });
        }
    }
    Ok(steps)
}

/// The members in a role who can be reached: a backup physician whose account or organisation was
/// deactivated is skipped, so the escalation goes on to the ward's coordinators at once.
fn role_members(conn: &mut DbConn, patient_id: &str, role: TeamRole) -> AppResult<Vec<String>> {
    Ok(care_team_members::table
        .inner_join(users::table.on(users::id.eq(care_team_members::user_id)))
        .inner_join(organizations::table.on(organizations::id.nullable().eq(users::organization_id)))
        .filter(care_team_members::patient_id.eq(patient_id))
        .filter(care_team_members::role.eq(role))
        .filter(care_team_members::ended_at.is_null())
        .filter(users::active.eq(true))
        .filter(organizations::active.eq(true))
        .select(care_team_members::user_id)
        .load(conn)?)
}

/// How many flags are active and how many acknowledged, city-wide (for metrics).
pub fn count_open(conn: &mut DbConn) -> AppResult<(i64, i64)> {
    let active = flags::table.filter(flags::status.eq(FlagStatus::Active)).count().get_result(conn)?;
    let acknowledged = flags::table.filter(flags::status.eq(FlagStatus::Acknowledged)).count().get_result(conn)?;
    Ok((active, acknowledged))
}

pub fn not_open() -> AppError {
    AppError::conflict(
        "このフラグはすでに対応済みか、この操作ができない状態です。",
        "This flag is no longer in a state that allows this.",
    )
}
