//! A person leaves their organisation (退職・異動): an administrator offboards the account and
//! everything the person held ends at once, in one transaction. Their sessions end; every open
//! care-team membership ends (the history stays) and each team's lead — or, when the person led
//! the team, its care managers — is told by e-mail; their open discharge tasks become
//! unassigned, so routing shows them to the case's opener and the lead; their ward
//! coordinator assignments and emergency access end. The account stays, deactivated, so the
//! record and the audit trail keep naming who did what.
//!
//! Offboarding again changes nothing and answers the record of the first: a repeated request
//! (a double click, a retry after a lost answer) finds nothing left to end.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::{User, UserChanges};
use crate::api;
use crate::audit::{self, Action, Event, Resource};
use crate::auth::{tokens, CurrentUser};
use crate::db::schema::{
    care_team_members, discharge_tasks, emergency_access, offboardings, sessions, ward_coordinators,
};
use crate::db::{new_id, now, DbConn};
use crate::discharge::tasks::{self, Task, TaskChanges};
use crate::discharge::TaskStatus;
use crate::error::{AppError, AppResult};
use crate::mail::{self, Mailer, Notice};
use crate::patients::{self, team};
use crate::vocab::AccountRole;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffboardUser {
    /// Why the person leaves (退職, 異動 …), for the organisation's administrators; never e-mailed.
    pub reason: String,
}

/// What one offboarding did, as recorded and answered.
#[derive(Queryable, Selectable, Insertable, Debug, Clone, Serialize)]
#[diesel(table_name = offboardings)]
pub struct Offboarding {
    pub id: String,
    pub user_id: String,
    pub organization_id: String,
    pub reason: String,
    pub offboarded_by: String,
    #[serde(serialize_with = "api::utc")]
    pub offboarded_at: NaiveDateTime,
    pub sessions_ended: i32,
    pub memberships_ended: i32,
    pub tasks_unassigned: i32,
    pub coordinator_assignments_ended: i32,
    /// E-mails queued to the leads (or care managers) of the teams the person left.
    pub leads_told: i32,
}

/// The latest offboarding of an account, if it was ever offboarded.
pub fn latest(conn: &mut DbConn, user_id: &str) -> AppResult<Option<Offboarding>> {
    Ok(offboardings::table
        .filter(offboardings::user_id.eq(user_id))
        .order((offboardings::offboarded_at.desc(), offboardings::id.desc()))
        .select(Offboarding::as_select())
        .first(conn)
        .optional()?)
}

/// What the person still holds: open sessions, open memberships, open tasks assigned to them,
/// coordinator assignments, unexpired emergency access.
struct Held {
    sessions: i64,
    memberships: Vec<team::Member>,
    tasks: Vec<Task>,
    coordinating: i64,
    emergency: i64,
}

impl Held {
    fn nothing(&self) -> bool {
        self.sessions == 0
            && self.memberships.is_empty()
            && self.tasks.is_empty()
            && self.coordinating == 0
            && self.emergency == 0
    }
}

fn held(conn: &mut DbConn, user_id: &str) -> AppResult<Held> {
    let t = now();
    let sessions = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .count()
        .get_result(conn)?;
    let memberships = care_team_members::table
        .filter(care_team_members::user_id.eq(user_id))
        .filter(care_team_members::ended_at.is_null())
        .order((care_team_members::patient_id.asc(), care_team_members::id.asc()))
        .select(team::Member::as_select())
        .load(conn)?;
    let tasks = discharge_tasks::table
        .filter(discharge_tasks::assignee_id.eq(user_id))
        .filter(discharge_tasks::status.eq_any(TaskStatus::open_codes()))
        .order((discharge_tasks::patient_id.asc(), discharge_tasks::id.asc()))
        .select(Task::as_select())
        .load(conn)?;
    let coordinating =
        ward_coordinators::table.filter(ward_coordinators::user_id.eq(user_id)).count().get_result(conn)?;
    let emergency = emergency_access::table
        .filter(emergency_access::user_id.eq(user_id))
        .filter(emergency_access::expires_at.gt(t))
        .count()
        .get_result(conn)?;
    Ok(Held { sessions, memberships, tasks, coordinating, emergency })
}

fn count(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

/// Offboards `user` (the caller was allowed by `access::offboarding`), with the reason given.
/// The service always keeps one active system administrator (409).
pub fn offboard(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    user: &User,
    reason: &str,
) -> AppResult<Offboarding> {
    let held = held(conn, &user.id)?;
    if !user.active && held.nothing() {
        if let Some(done) = latest(conn, &user.id)? {
            return Ok(done);
        }
    }
    if user.active && user.role == AccountRole::SystemAdmin && super::count_system_admins(conn, None)? <= 1 {
        return Err(AppError::conflict(
            "最後のシステム管理者は退職処理できません。",
            "The last system administrator cannot be offboarded.",
        ));
    }
    let at = now();
    if user.active {
        let changes = UserChanges { active: Some(false), ..UserChanges::default() };
        if !super::update(conn, &user.id, user.version, &changes)? {
            return Err(AppError::precondition_failed());
        }
    }
    let sessions_ended = tokens::revoke_all_sessions(conn, &user.id, "offboarded")?;
    let coordinator_assignments_ended =
        crate::wards::coordinators::end_assignments_of(conn, me, &user.id, "offboarded")?;
    diesel::update(
        emergency_access::table
            .filter(emergency_access::user_id.eq(&user.id))
            .filter(emergency_access::expires_at.gt(at)),
    )
    .set(emergency_access::expires_at.eq(at))
    .execute(conn)?;

    // Audit records are written at the end, ordered by patient, like every multi-patient write.
    let mut events: Vec<(Resource, String, String)> = Vec::new();
    let mut unassigned: HashMap<String, i64> = HashMap::new();
    for task in &held.tasks {
        let changes = TaskChanges { assignee_id: Some(None), ..TaskChanges::default() };
        if !tasks::update(conn, &task.id, task.version, changes)? {
            return Err(AppError::internal("task changed within its own transaction"));
        }
        *unassigned.entry(task.patient_id.clone()).or_default() += 1;
        events.push((Resource::DischargeTask, task.id.clone(), task.patient_id.clone()));
    }
    let today = patients::today_jst();
    let member = team::person_kind(conn, user.profession, user.organization_id.as_deref())?;
    let mut leads_told = 0;
    for m in &held.memberships {
        team::end(conn, &m.id, today.max(m.started_on), &me.id)?;
        events.push((Resource::CareTeamMember, m.id.clone(), m.patient_id.clone()));
        let Some(patient) = patients::find(conn, &m.patient_id)? else { continue };
        // With the membership ended, who answers for the team: its lead, or its care managers
        // when the person was the lead.
        let recipients = team::lead_user_ids(conn, &m.patient_id)?;
        let notice = Notice::MemberOffboarded {
            member,
            was_lead: m.is_lead,
            tasks_unassigned: unassigned.get(&m.patient_id).copied().unwrap_or(0),
            offboarded_at: at,
            patient: patient.email_label(mailer.patient_label()),
            patient_id: patient.id.clone(),
        };
        leads_told +=
            mail::notify(conn, mailer, &recipients, &notice, Some(&patient.id), &format!("offboarded:{}", m.id))?;
    }
    let done = Offboarding {
        id: new_id(),
        user_id: user.id.clone(),
        organization_id: user.employer()?.to_string(),
        reason: reason.to_string(),
        offboarded_by: me.id.clone(),
        offboarded_at: at,
        sessions_ended: count(sessions_ended),
        memberships_ended: count(held.memberships.len()),
        tasks_unassigned: count(held.tasks.len()),
        coordinator_assignments_ended: count(coordinator_assignments_ended),
        leads_told: count(leads_told),
    };
    diesel::insert_into(offboardings::table).values(&done).execute(conn)?;
    let mut audited = vec![Event::new(Action::Update, Resource::User, Some(&user.id), None).detail("offboarded")];
    audited.extend(events.iter().map(|(resource, id, patient_id)| {
        Event::new(Action::Update, *resource, Some(id), Some(patient_id)).detail("offboarded")
    }));
    audit::record_all(conn, me, audited)?;
    Ok(done)
}
