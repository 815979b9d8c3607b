//! The patient approves who joins (DESIGN §5): where the patient or a key person takes part
//! with an account, an accepted invitation waits (`awaiting_approval`) until one of them
//! approves, which makes the membership, or refuses. For a patient who cannot approve (dementia,
//! say), the lead or the care manager records why, and the care manager's invitation stands as
//! the decision. Every decision is audited and on the timeline.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::invitations::{self, Invitation, InvitationView};
use super::team::{self, MemberView};
use super::{participants, Patient};
use crate::api;
use crate::audit::{self, Action, Event, Resource};
use crate::auth::CurrentUser;
use crate::db::schema::{care_team_invitations, organizations, patients, users};
use crate::db::{now, DbConn};
use crate::error::{AppError, AppResult};
use crate::mail::{self, Mailer, Notice};
use crate::users::User;
use crate::vocab::{InvitationStatus, Profession, TeamRole};

/// Who must approve a joining now: nobody when the care manager decides for this patient, or
/// when no patient or key person takes part.
pub fn approvers(conn: &mut DbConn, patient: &Patient) -> AppResult<Vec<String>> {
    if patient.approval_waived_reason.is_some() {
        return Ok(Vec::new());
    }
    participants::approvers(conn, &patient.id)
}

/// A joining that waits, as the patient and the key person see it: who, of which profession and
/// organisation, in which role.
#[derive(Debug, Serialize)]
pub struct JoiningRequest {
    pub invitation_id: String,
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub profession: Option<Profession>,
    pub organization_name: Option<String>,
    pub role: TeamRole,
    pub status: InvitationStatus,
    #[serde(serialize_with = "api::utc_opt")]
    pub accepted_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "api::utc_opt")]
    pub decided_at: Option<NaiveDateTime>,
}

/// The patient's joinings waiting for approval and those decided, newest first.
pub fn requests(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<JoiningRequest>> {
    type Row = (Invitation, Option<(String, Profession)>, Option<String>);
    let rows: Vec<Row> = care_team_invitations::table
        .left_join(users::table.on(users::id.nullable().eq(care_team_invitations::responded_by)))
        .left_join(organizations::table.on(organizations::id.nullable().eq(users::organization_id)))
        .filter(care_team_invitations::patient_id.eq(patient_id))
        // Waiting, or decided (every decision is dated).
        .filter(
            care_team_invitations::status
                .eq(InvitationStatus::AwaitingApproval)
                .or(care_team_invitations::decided_at.is_not_null()),
        )
        .order((care_team_invitations::responded_at.desc(), care_team_invitations::id.desc()))
        .select((Invitation::as_select(), (users::name, users::profession).nullable(), organizations::name.nullable()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(i, person, organization_name)| JoiningRequest {
            invitation_id: i.id,
            user_id: i.responded_by,
            name: person.as_ref().map(|p| p.0.clone()),
            profession: person.map(|p| p.1),
            organization_name,
            role: i.role,
            status: i.status,
            accepted_at: i.responded_at,
            decided_at: i.decided_at,
        })
        .collect())
}

/// The invitee accepted and the joining must wait: the invitation is already settled as
/// `awaiting_approval`; the approvers are e-mailed.
pub fn ask(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    patient: &Patient,
    invitation: &Invitation,
    approvers: &[String],
) -> AppResult<InvitationView> {
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::CareTeamInvitation, Some(&invitation.id), Some(&patient.id))
            .detail("accepted; awaiting the patient's approval"),
    )?;
    let notice = Notice::JoiningAwaitsApproval {
        member: team::person_kind(conn, me.profession, me.organization_id.as_deref())?,
        role: invitation.role,
        patient: patient.email_label(mailer.patient_label()),
        patient_id: patient.id.clone(),
    };
    for approver in approvers {
        if let Some(user) = crate::users::find_in_service(conn, approver)? {
            let email = mailer.to_user(&user, &notice)?;
            mail::outbox::enqueue(
                conn,
                email.once(format!("joining_awaits_approval:{}:{}", invitation.id, user.id)).about_patient(&patient.id),
            )?;
        }
    }
    invitations::reread(conn, invitation)
}

/// Moves a waiting joining to `to` once: of two decisions at once only one wins, and the other
/// gets 409.
fn decide(
    conn: &mut DbConn,
    me: &CurrentUser,
    invitation: &Invitation,
    to: InvitationStatus,
) -> AppResult<NaiveDateTime> {
    let t = now();
    let n = diesel::update(
        care_team_invitations::table
            .filter(care_team_invitations::id.eq(&invitation.id))
            .filter(care_team_invitations::status.eq(InvitationStatus::AwaitingApproval)),
    )
    .set((
        care_team_invitations::status.eq(to),
        care_team_invitations::decided_by.eq(Some(&me.id)),
        care_team_invitations::decided_at.eq(Some(t)),
    ))
    .execute(conn)?;
    if n == 1 {
        Ok(t)
    } else {
        Err(AppError::conflict("この参加はすでに決定済みです。", "This joining has been decided already."))
    }
}

/// Approves: the invitee (allowed by `access::approved_joining`) joins the team, the lead told
/// as for any joining.
pub fn approve(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    patient: &Patient,
    invitation: &Invitation,
    invitee: &User,
) -> AppResult<MemberView> {
    decide(conn, me, invitation, InvitationStatus::Accepted)?;
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::JoiningApproval, Some(&invitation.id), Some(&patient.id))
            .detail("approved"),
    )?;
    invitations::accept(conn, me, mailer, patient, invitee, invitation)
}

/// Refuses: nobody joins, and the lead (or the care managers) is told.
pub fn refuse(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    patient: &Patient,
    invitation: &Invitation,
) -> AppResult<InvitationView> {
    let t = decide(conn, me, invitation, InvitationStatus::Refused)?;
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::JoiningApproval, Some(&invitation.id), Some(&patient.id))
            .detail("refused"),
    )?;
    if let Some(invitee) =
        invitation.responded_by.as_deref().map(|id| crate::users::find(conn, id)).transpose()?.flatten()
    {
        let notice = Notice::JoiningRefused {
            member: team::person_kind(conn, invitee.profession, invitee.organization_id.as_deref())?,
            role: invitation.role,
            decided_at: t,
            patient: patient.email_label(mailer.patient_label()),
            patient_id: patient.id.clone(),
        };
        for lead in team::lead_user_ids(conn, &patient.id)? {
            if let Some(user) = crate::users::find_in_service(conn, &lead)? {
                let email = mailer.to_user(&user, &notice)?;
                mail::outbox::enqueue(
                    conn,
                    email.once(format!("joining_refused:{}:{}", invitation.id, user.id)).about_patient(&patient.id),
                )?;
            }
        }
    }
    invitations::reread(conn, invitation)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Waiver {
    /// Why the patient cannot approve (認知症のため, say); `null` gives the decision back to the
    /// patient and the key person. Required, `null` included: a body that forgets it changes
    /// nothing.
    #[serde(deserialize_with = "api::double_option")]
    pub reason: Option<Option<String>>,
}

/// How joinings are decided for a patient, as shown and set.
#[derive(Debug, Serialize)]
pub struct ApprovalSetting {
    /// `patient`: the patient or key person approves where they take part; `care_manager`: the
    /// care manager decides, for the recorded reason.
    pub decided_by: &'static str,
    pub reason: Option<String>,
    pub recorded_by: Option<String>,
    #[serde(serialize_with = "api::utc_opt")]
    pub recorded_at: Option<NaiveDateTime>,
    /// The accounts who approve now (empty when nobody must).
    pub approvers: Vec<String>,
}

pub fn setting(conn: &mut DbConn, patient: &Patient) -> AppResult<ApprovalSetting> {
    Ok(ApprovalSetting {
        decided_by: if patient.approval_waived_reason.is_some() { "care_manager" } else { "patient" },
        reason: patient.approval_waived_reason.clone(),
        recorded_by: patient.approval_waived_by.clone(),
        recorded_at: patient.approval_waived_at,
        approvers: approvers(conn, patient)?,
    })
}

/// Records (or clears) the waiver, audited (the caller was allowed by `access::manage_team`
/// as lead or care manager).
pub fn set_waiver(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient: &Patient,
    reason: Option<String>,
) -> AppResult<ApprovalSetting> {
    let t = now();
    let (by, at) = match reason {
        Some(_) => (Some(me.id.clone()), Some(t)),
        None => (None, None),
    };
    diesel::update(patients::table.find(&patient.id))
        .set((
            patients::approval_waived_reason.eq(&reason),
            patients::approval_waived_by.eq(&by),
            patients::approval_waived_at.eq(at),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::JoiningApproval, None, Some(&patient.id)).detail(if reason.is_some() {
            "the care manager decides"
        } else {
            "the patient decides"
        }),
    )?;
    let patient = super::find(conn, &patient.id)?.ok_or_else(AppError::not_found)?;
    setting(conn, &patient)
}
