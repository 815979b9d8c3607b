//! The care team: who, from which organisation, in which role, since when and until when.
//! An open membership (no `ended_at`) is the access boundary; ending one keeps the history.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::{today_jst, Patient};
use crate::api::Check;
use crate::audit::{self, Action, Event, Resource};
use crate::auth::CurrentUser;
use crate::db::schema::{care_team_members, organizations, users};
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};
use crate::mail::{self, templates, Mailer};
use crate::users::User;
use crate::vocab::{OrgKind, Profession, TeamRole};

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = care_team_members)]
pub struct Member {
    pub id: String,
    pub patient_id: String,
    pub user_id: String,
    pub organization_id: String,
    pub role: TeamRole,
    pub is_lead: bool,
    pub started_on: NaiveDate,
    pub ended_on: Option<NaiveDate>,
    pub ended_at: Option<NaiveDateTime>,
    pub added_by: String,
    pub ended_by: Option<String>,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A member as the team list shows them, with their name, profession and organisation.
#[derive(Debug, Serialize)]
pub struct MemberView {
    pub id: String,
    pub patient_id: String,
    pub user_id: String,
    pub user_name: String,
    pub profession: Profession,
    pub organization_id: String,
    pub organization_name: String,
    /// `false` once the organisation is deactivated: the membership stays on record but grants
    /// nothing, until it is ended or the organisation comes back.
    pub organization_active: bool,
    pub role: TeamRole,
    pub is_lead: bool,
    pub started_on: NaiveDate,
    pub ended_on: Option<NaiveDate>,
    pub active: bool,
    pub version: i32,
}

/// The caller's open membership on a patient's team.
pub fn active_member(conn: &mut DbConn, patient_id: &str, user_id: &str) -> AppResult<Option<Member>> {
    Ok(care_team_members::table
        .filter(care_team_members::patient_id.eq(patient_id))
        .filter(care_team_members::user_id.eq(user_id))
        .filter(care_team_members::ended_at.is_null())
        .select(Member::as_select())
        .first(conn)
        .optional()?)
}

/// The person's open membership, unless their organisation is deactivated: such a membership
/// stays on record but grants nothing (DESIGN.md §5).
pub fn active_member_in_service(conn: &mut DbConn, patient_id: &str, user_id: &str) -> AppResult<Option<Member>> {
    Ok(care_team_members::table
        .inner_join(organizations::table.on(organizations::id.eq(care_team_members::organization_id)))
        .filter(care_team_members::patient_id.eq(patient_id))
        .filter(care_team_members::user_id.eq(user_id))
        .filter(care_team_members::ended_at.is_null())
        .filter(organizations::active.eq(true))
        .select(Member::as_select())
        .first(conn)
        .optional()?)
}

/// The team's lead now, if it has one.
pub fn lead(conn: &mut DbConn, patient_id: &str) -> AppResult<Option<Member>> {
    Ok(care_team_members::table
        .filter(care_team_members::patient_id.eq(patient_id))
        .filter(care_team_members::ended_at.is_null())
        .filter(care_team_members::is_lead.eq(true))
        .select(Member::as_select())
        .first(conn)
        .optional()?)
}

/// Whether someone of this organisation is on the patient's team now.
pub fn organization_on_team(conn: &mut DbConn, patient_id: &str, organization_id: &str) -> AppResult<bool> {
    let n: i64 = care_team_members::table
        .filter(care_team_members::patient_id.eq(patient_id))
        .filter(care_team_members::organization_id.eq(organization_id))
        .filter(care_team_members::ended_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Whether someone of this organisation was on the patient's team at that moment.
pub fn organization_on_team_at(
    conn: &mut DbConn,
    patient_id: &str,
    organization_id: &str,
    at: NaiveDateTime,
) -> AppResult<bool> {
    let n: i64 = care_team_members::table
        .filter(care_team_members::patient_id.eq(patient_id))
        .filter(care_team_members::organization_id.eq(organization_id))
        .filter(care_team_members::created_at.le(at))
        .filter(care_team_members::ended_at.is_null().or(care_team_members::ended_at.gt(at)))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Who answers for the team when something needs a look: the lead, or the care managers when
/// nobody leads.
pub fn lead_user_ids(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<String>> {
    let active = care_team_members::table
        .filter(care_team_members::patient_id.eq(patient_id))
        .filter(care_team_members::ended_at.is_null());
    let leads: Vec<String> =
        active.filter(care_team_members::is_lead.eq(true)).select(care_team_members::user_id).load(conn)?;
    if !leads.is_empty() {
        return Ok(leads);
    }
    Ok(active
        .filter(care_team_members::role.eq(TeamRole::CareManager))
        .select(care_team_members::user_id)
        .load(conn)?)
}

pub fn find(conn: &mut DbConn, patient_id: &str, member_id: &str) -> AppResult<Option<Member>> {
    Ok(care_team_members::table
        .filter(care_team_members::id.eq(member_id))
        .filter(care_team_members::patient_id.eq(patient_id))
        .select(Member::as_select())
        .first(conn)
        .optional()?)
}

/// Current members, and past ones too when asked, leads and earliest first.
pub fn list(conn: &mut DbConn, patient_id: &str, include_past: bool) -> AppResult<Vec<MemberView>> {
    let mut q = care_team_members::table
        .inner_join(users::table.on(users::id.eq(care_team_members::user_id)))
        .inner_join(organizations::table.on(organizations::id.eq(care_team_members::organization_id)))
        .filter(care_team_members::patient_id.eq(patient_id))
        .into_boxed();
    if !include_past {
        q = q.filter(care_team_members::ended_at.is_null());
    }
    let rows: Vec<(Member, String, Profession, String, bool)> = q
        .order((care_team_members::is_lead.desc(), care_team_members::started_on.asc(), care_team_members::id.asc()))
        .select((Member::as_select(), users::name, users::profession, organizations::name, organizations::active))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(m, user_name, profession, organization_name, organization_active)| MemberView {
            active: m.ended_at.is_none(),
            id: m.id,
            patient_id: m.patient_id,
            user_id: m.user_id,
            user_name,
            profession,
            organization_id: m.organization_id,
            organization_name,
            organization_active,
            role: m.role,
            is_lead: m.is_lead,
            started_on: m.started_on,
            ended_on: m.ended_on,
            version: m.version,
        })
        .collect())
}

/// Adds someone to the team. There is at most one lead: a new lead replaces the old one.
#[allow(clippy::too_many_arguments)] // one argument per column a membership starts with
pub fn add(
    conn: &mut DbConn,
    patient_id: &str,
    user_id: &str,
    organization_id: &str,
    role: TeamRole,
    is_lead: bool,
    started_on: NaiveDate,
    added_by: &str,
) -> AppResult<Member> {
    if is_lead {
        clear_lead(conn, patient_id)?;
    }
    let t = now();
    let member = Member {
        id: new_id(),
        patient_id: patient_id.into(),
        user_id: user_id.into(),
        organization_id: organization_id.into(),
        role,
        is_lead,
        started_on,
        ended_on: None,
        ended_at: None,
        added_by: added_by.into(),
        ended_by: None,
        version: 1,
        created_at: t,
        updated_at: t,
    };
    diesel::insert_into(care_team_members::table).values(&member).execute(conn)?;
    crate::changes::record(conn, crate::changes::Change::Team { patient_id: &member.patient_id })?;
    Ok(member)
}

fn clear_lead(conn: &mut DbConn, patient_id: &str) -> AppResult<()> {
    diesel::update(
        care_team_members::table
            .filter(care_team_members::patient_id.eq(patient_id))
            .filter(care_team_members::is_lead.eq(true)),
    )
    .set((care_team_members::is_lead.eq(false), care_team_members::version.eq(care_team_members::version + 1)))
    .execute(conn)?;
    Ok(())
}

/// Ends a membership now; access ends with it, on the very next request.
pub fn end(conn: &mut DbConn, member_id: &str, ended_on: NaiveDate, ended_by: &str) -> AppResult<()> {
    diesel::update(care_team_members::table.find(member_id))
        .set((
            care_team_members::ended_on.eq(Some(ended_on)),
            care_team_members::ended_at.eq(Some(now())),
            care_team_members::ended_by.eq(Some(ended_by)),
            care_team_members::is_lead.eq(false),
            care_team_members::version.eq(care_team_members::version + 1),
            care_team_members::updated_at.eq(now()),
        ))
        .execute(conn)?;
    let patient_id: String =
        care_team_members::table.find(member_id).select(care_team_members::patient_id).first(conn)?;
    crate::changes::record(conn, crate::changes::Change::Team { patient_id: &patient_id })
}

/// The user ids of a patient's current team who can be reached (for notices): active accounts
/// of active organisations.
pub fn active_user_ids(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<String>> {
    Ok(care_team_members::table
        .inner_join(users::table.on(users::id.eq(care_team_members::user_id)))
        .inner_join(organizations::table.on(organizations::id.nullable().eq(users::organization_id)))
        .filter(care_team_members::patient_id.eq(patient_id))
        .filter(care_team_members::ended_at.is_null())
        .filter(users::active.eq(true))
        .filter(organizations::active.eq(true))
        .select(care_team_members::user_id)
        .load(conn)?)
}

/// The profession of a member's account, as stored.
pub fn profession_of(conn: &mut DbConn, user_id: &str) -> AppResult<Profession> {
    Ok(users::table.find(user_id).select(users::profession).first(conn)?)
}

/// A person as an e-mail describes them: profession and the kind of their organisation.
pub fn person_kind(
    conn: &mut DbConn,
    profession: Profession,
    organization_id: Option<&str>,
) -> AppResult<templates::Described> {
    let organization: Option<OrgKind> = match organization_id {
        Some(id) => Some(organizations::table.find(id).select(organizations::kind).first(conn)?),
        None => None,
    };
    Ok(templates::Described { profession, organization })
}

/// Tells the team's lead (as it was before the change) of a change someone else made, in the
/// change's transaction. Returns how many e-mails were queued.
#[allow(clippy::too_many_arguments)] // the change and everything its notice names
fn tell_lead(
    conn: &mut DbConn,
    mailer: &Mailer,
    patient: &Patient,
    lead_before: Option<&Member>,
    me: &CurrentUser,
    change: templates::TeamChange,
    member: &Member,
) -> AppResult<usize> {
    let Some(lead) = lead_before.filter(|l| l.user_id != me.id) else { return Ok(0) };
    let member_profession = profession_of(conn, &member.user_id)?;
    let notice = mail::Notice::TeamChanged {
        change,
        member: person_kind(conn, member_profession, Some(&member.organization_id))?,
        actor: person_kind(conn, me.profession, me.organization_id.as_deref())?,
        changed_at: now(),
        patient: patient.email_label(mailer.patient_label()),
        patient_id: patient.id.clone(),
    };
    mail::notify(
        conn,
        mailer,
        std::slice::from_ref(&lead.user_id),
        &notice,
        Some(&patient.id),
        &format!("team:{}:v{}", member.id, member.version),
    )
}

fn view_of(conn: &mut DbConn, patient_id: &str, member_id: &str) -> AppResult<MemberView> {
    list(conn, patient_id, true)?.into_iter().find(|m| m.id == member_id).ok_or_else(AppError::not_found)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub user_id: crate::api::Id,
    pub role: TeamRole,
    pub is_lead: Option<bool>,
    pub started_on: Option<NaiveDate>,
}

/// Puts `user` on the patient's team (the caller was allowed by `access::team_addition`),
/// audited; the lead is told unless it is the caller. 409 when the person is on the team already.
pub fn add_member(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    patient: &Patient,
    user: &User,
    input: &AddMember,
) -> AppResult<MemberView> {
    if active_member(conn, &patient.id, &user.id)?.is_some() {
        return Err(AppError::conflict(
            "この方はすでにケアチームのメンバーです。",
            "This person is already on the care team.",
        ));
    }
    let is_lead = input.is_lead.unwrap_or(false);
    let lead_before = lead(conn, &patient.id)?;
    let started_on = input.started_on.unwrap_or_else(today_jst);
    let member = add(conn, &patient.id, &user.id, user.employer()?, input.role, is_lead, started_on, &me.id)?;
    audit::record(conn, me, Event::new(Action::Create, Resource::CareTeamMember, Some(&member.id), Some(&patient.id)))?;
    let change = if is_lead { templates::TeamChange::AddedAsLead } else { templates::TeamChange::Added };
    tell_lead(conn, mailer, patient, lead_before.as_ref(), me, change, &member)?;
    view_of(conn, &patient.id, &member.id)
}

/// Puts the caller on the patient's team by an accepted invitation (`access::joining` allowed
/// it): the same membership a direct addition makes, started today, recorded as added by the
/// person who invited; audited, and the lead told unless the lead invited. 409 when the caller is
/// on the team already.
pub fn join(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    patient: &Patient,
    user: &User,
    role: TeamRole,
    invited_by: &str,
) -> AppResult<MemberView> {
    if active_member(conn, &patient.id, &user.id)?.is_some() {
        return Err(AppError::conflict(
            "あなたはすでにこの患者さんのケアチームのメンバーです。",
            "You are already on this patient's care team.",
        ));
    }
    let lead_before = lead(conn, &patient.id)?.filter(|l| l.user_id != invited_by);
    let member = add(conn, &patient.id, &user.id, user.employer()?, role, false, today_jst(), invited_by)?;
    audit::record(
        conn,
        me,
        Event::new(Action::Create, Resource::CareTeamMember, Some(&member.id), Some(&patient.id))
            .detail("invitation accepted"),
    )?;
    tell_lead(conn, mailer, patient, lead_before.as_ref(), me, templates::TeamChange::Added, &member)?;
    view_of(conn, &patient.id, &member.id)
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = care_team_members)]
struct MemberChanges {
    role: Option<String>,
    is_lead: Option<bool>,
    ended_on: Option<Option<NaiveDate>>,
    ended_at: Option<Option<NaiveDateTime>>,
    ended_by: Option<Option<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    pub role: Option<TeamRole>,
    pub is_lead: Option<bool>,
    /// Ends the membership on this day (the history stays).
    pub ended_on: Option<NaiveDate>,
}

/// Changes a member's role or lead, or ends the membership (the caller was allowed by
/// `access::team_member_change`), at the version the caller saw (412 when stale); audited, and
/// the lead as it was before is told unless it is the caller.
pub fn update_member(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    patient: &Patient,
    member: &Member,
    expected: Option<i32>,
    input: &UpdateMember,
) -> AppResult<MemberView> {
    let patient_id = patient.id.as_str();
    if expected.is_some_and(|v| v != member.version) {
        return Err(AppError::precondition_failed());
    }
    if member.ended_at.is_some() {
        return Err(AppError::conflict(
            "このメンバーはすでにチームを離れています。",
            "This membership has already ended.",
        ));
    }
    let lead_before = lead(conn, patient_id)?;
    let mut check = Check::new();
    if let Some(day) = input.ended_on {
        if day < member.started_on {
            check.push("ended_on", "before_start", "終了日が開始日より前です。", "ended_on is before started_on.");
        }
        if day > today_jst() {
            check.push(
                "ended_on",
                "in_future",
                "終了日は今日以前の日付にしてください(終了した日に操作してください)。",
                "ended_on must be today or earlier: end the membership on the day it ends.",
            );
        }
    }
    check.finish()?;
    if input.is_lead == Some(true) && !member.is_lead && input.ended_on.is_none() {
        clear_lead(conn, patient_id)?;
    }
    let changes = MemberChanges {
        role: input.role.map(|r| r.as_str().to_string()),
        is_lead: if input.ended_on.is_some() { Some(false) } else { input.is_lead },
        ended_on: input.ended_on.map(Some),
        ended_at: input.ended_on.map(|_| Some(now())),
        ended_by: input.ended_on.map(|_| Some(me.id.clone())),
    };
    let n = diesel::update(
        care_team_members::table
            .filter(care_team_members::id.eq(&member.id))
            .filter(care_team_members::version.eq(member.version)),
    )
    .set((&changes, care_team_members::version.eq(member.version + 1), care_team_members::updated_at.eq(now())))
    .execute(conn)?;
    if n != 1 {
        return Err(AppError::precondition_failed());
    }
    crate::changes::record(conn, crate::changes::Change::Team { patient_id })?;
    audit::record(conn, me, Event::new(Action::Update, Resource::CareTeamMember, Some(&member.id), Some(patient_id)))?;
    let change = if input.ended_on.is_some() {
        Some(templates::TeamChange::Ended)
    } else if input.is_lead == Some(true) && !member.is_lead {
        Some(templates::TeamChange::MadeLead)
    } else if input.is_lead == Some(false) && member.is_lead {
        Some(templates::TeamChange::LeadCleared)
    } else if input.role.is_some_and(|r| r != member.role) {
        Some(templates::TeamChange::RoleChanged)
    } else {
        None
    };
    if let Some(c) = change {
        let changed = find(conn, patient_id, &member.id)?.ok_or_else(AppError::not_found)?;
        tell_lead(conn, mailer, patient, lead_before.as_ref(), me, c, &changed)?;
    }
    view_of(conn, patient_id, &member.id)
}
