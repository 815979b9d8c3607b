//! Invitations into a patient's care team. The lead or the care manager invites an account, or
//! an e-mail address, in a role; the invitee, signed in as that account (or as the account with
//! that address), accepts or declines with the one-time token of the e-mail: 32 random bytes,
//! kept only as their SHA-256, valid for seven days. Accepting creates the membership through
//! the same function a direct addition uses. The decisions who may invite, see, revoke and
//! answer are `access::invitations`, `access::invitation`, `access::invitation_response` and
//! `access::joining`.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::team::{self, MemberView};
use super::Patient;
use crate::api;
use crate::audit::{self, Action, Event, Resource};
use crate::auth::tokens::{random_token, sha256_hex};
use crate::auth::CurrentUser;
use crate::db::schema::care_team_invitations;
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};
use crate::mail::{self, Mailer, Notice};
use crate::users::{self, User};
use crate::vocab::{InvitationStatus, Locale, TeamRole};

/// How long an invitation can be answered.
pub const VALID_DAYS: i64 = 7;

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = care_team_invitations)]
pub struct Invitation {
    pub id: String,
    pub patient_id: String,
    pub token_hash: String,
    pub invitee_user_id: Option<String>,
    pub invitee_email: Option<String>,
    pub role: TeamRole,
    pub status: InvitationStatus,
    pub invited_by: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub responded_at: Option<NaiveDateTime>,
    pub responded_by: Option<String>,
    pub member_id: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<NaiveDateTime>,
}

impl Invitation {
    /// The state as answered: a pending invitation past its expiry is expired.
    pub fn state(&self, at: NaiveDateTime) -> InvitationStatus {
        if self.status == InvitationStatus::Pending && self.expires_at <= at {
            InvitationStatus::Expired
        } else {
            self.status
        }
    }

    /// Whether the invitation is addressed to this account: by its id, or by its e-mail address.
    pub fn addressed_to(&self, user_id: &str, email: &str) -> bool {
        self.invitee_user_id.as_deref() == Some(user_id)
            || self.invitee_email.as_deref().is_some_and(|e| e == api::normalize_email(email))
    }
}

/// An invitation as the lead and the invitee see it (never its token).
#[derive(Debug, Serialize)]
pub struct InvitationView {
    pub id: String,
    pub patient_id: String,
    pub invitee_user_id: Option<String>,
    pub invitee_email: Option<String>,
    pub role: TeamRole,
    pub status: InvitationStatus,
    pub invited_by: String,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "api::utc")]
    pub expires_at: NaiveDateTime,
    #[serde(serialize_with = "api::utc_opt")]
    pub responded_at: Option<NaiveDateTime>,
    pub member_id: Option<String>,
}

impl From<Invitation> for InvitationView {
    fn from(i: Invitation) -> InvitationView {
        InvitationView {
            status: i.state(now()),
            id: i.id,
            patient_id: i.patient_id,
            invitee_user_id: i.invitee_user_id,
            invitee_email: i.invitee_email,
            role: i.role,
            invited_by: i.invited_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
            responded_at: i.responded_at,
            member_id: i.member_id,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    /// `Some(None)` is an explicit `null`, which names nobody and is refused.
    #[serde(default, deserialize_with = "api::double_option")]
    pub user_id: Option<Option<api::Id>>,
    #[serde(default, deserialize_with = "api::double_option")]
    pub email: Option<Option<String>>,
    pub role: TeamRole,
}

/// Whom an invitation is for, as the policy found them.
pub enum Invitee {
    /// An account in service, named by id or found by the address.
    Account(Box<User>),
    /// An address no account in service has (yet).
    Address(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub token: String,
}

pub fn find(conn: &mut DbConn, patient_id: &str, id: &str) -> AppResult<Option<Invitation>> {
    Ok(care_team_invitations::table
        .filter(care_team_invitations::id.eq(id))
        .filter(care_team_invitations::patient_id.eq(patient_id))
        .select(Invitation::as_select())
        .first(conn)
        .optional()?)
}

/// The invitation a presented token belongs to.
pub fn find_by_token(conn: &mut DbConn, presented: &str) -> AppResult<Option<Invitation>> {
    if !crate::auth::tokens::is_link_token(presented) {
        // No link ever carries such a token.
        return Ok(None);
    }
    Ok(care_team_invitations::table
        .filter(care_team_invitations::token_hash.eq(sha256_hex(presented)))
        .select(Invitation::as_select())
        .first(conn)
        .optional()?)
}

/// A patient's invitations, newest first.
pub fn list(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<InvitationView>> {
    let rows: Vec<Invitation> = care_team_invitations::table
        .filter(care_team_invitations::patient_id.eq(patient_id))
        .order((care_team_invitations::created_at.desc(), care_team_invitations::id.desc()))
        .select(Invitation::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(InvitationView::from).collect())
}

/// Whether the person has an open invitation to the team: pending, or accepted and waiting for
/// the patient's approval.
fn pending_for(conn: &mut DbConn, patient_id: &str, invitee: &Invitee) -> AppResult<bool> {
    let pending =
        care_team_invitations::status.eq(InvitationStatus::Pending).and(care_team_invitations::expires_at.gt(now()));
    let mut q = care_team_invitations::table
        .filter(care_team_invitations::patient_id.eq(patient_id))
        .filter(pending.or(care_team_invitations::status.eq(InvitationStatus::AwaitingApproval)))
        .into_boxed();
    q = match invitee {
        Invitee::Account(u) => q.filter(
            care_team_invitations::invitee_user_id
                .eq(&u.id)
                .or(care_team_invitations::invitee_email.eq(api::normalize_email(&u.email))),
        ),
        Invitee::Address(a) => q.filter(care_team_invitations::invitee_email.eq(a)),
    };
    let n: i64 = q.count().get_result(conn)?;
    Ok(n > 0)
}

/// Records the invitation (the caller was allowed by `access::invite`), audited, and queues
/// its e-mail to the invitee in the same transaction. 409 when the person is on the team
/// already or has a pending invitation to it.
pub fn create(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    patient: &Patient,
    invitee: &Invitee,
    by_email: bool,
    role: TeamRole,
) -> AppResult<InvitationView> {
    if let Invitee::Account(user) = invitee {
        if team::active_member(conn, &patient.id, &user.id)?.is_some() {
            return Err(AppError::conflict(
                "この方はすでにケアチームのメンバーです。",
                "This person is already on the care team.",
            ));
        }
    }
    if pending_for(conn, &patient.id, invitee)? {
        return Err(AppError::conflict(
            "この方にはすでに回答待ちの招待があります。取り消してから招待し直してください。",
            "This person already has a pending invitation: revoke it before inviting again.",
        ));
    }
    let token = random_token(32);
    let token_hash = sha256_hex(&token);
    let t = now();
    let (invitee_user_id, invitee_email) = match (invitee, by_email) {
        (Invitee::Account(u), false) => (Some(u.id.clone()), None),
        (Invitee::Account(u), true) => (None, Some(api::normalize_email(&u.email))),
        (Invitee::Address(a), _) => (None, Some(a.clone())),
    };
    let invitation = Invitation {
        id: new_id(),
        patient_id: patient.id.clone(),
        token_hash: token_hash.clone(),
        invitee_user_id,
        invitee_email,
        role,
        status: InvitationStatus::Pending,
        invited_by: me.id.clone(),
        created_at: t,
        expires_at: t + Duration::days(VALID_DAYS),
        responded_at: None,
        responded_by: None,
        member_id: None,
        decided_by: None,
        decided_at: None,
    };
    diesel::insert_into(care_team_invitations::table).values(&invitation).execute(conn)?;
    audit::record(
        conn,
        me,
        Event::new(Action::Create, Resource::CareTeamInvitation, Some(&invitation.id), Some(&patient.id)),
    )?;
    let notice = Notice::TeamInvitation {
        token,
        expires_at: invitation.expires_at,
        role,
        inviter: team::person_kind(conn, me.profession, me.organization_id.as_deref())?,
        patient: patient.email_label(mailer.patient_label()),
    };
    let email = match invitee {
        Invitee::Account(user) => mailer.to_user(user, &notice)?,
        Invitee::Address(address) => mailer.to_address(address, Locale::Ja, &notice)?,
    };
    mail::outbox::enqueue(conn, email.once(format!("team_invitation:{token_hash}")).about_patient(&patient.id))?;
    Ok(invitation.into())
}

/// Ends a pending invitation (the caller was allowed by `access::invitation`), audited; its
/// token stops working. 409 when it is no longer pending.
pub fn revoke(conn: &mut DbConn, me: &CurrentUser, invitation: &Invitation) -> AppResult<InvitationView> {
    settle(conn, me, invitation, InvitationStatus::Revoked)?;
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::CareTeamInvitation, Some(&invitation.id), Some(&invitation.patient_id))
            .detail("revoked"),
    )?;
    reread(conn, invitation)
}

/// Moves a pending, unexpired invitation to `to` in one conditional UPDATE, so that of two
/// answers at once only one wins; the other (and any answer to an invitation that is no longer
/// pending) gets 409 naming the state it found.
pub fn settle(conn: &mut DbConn, me: &CurrentUser, invitation: &Invitation, to: InvitationStatus) -> AppResult<()> {
    let t = now();
    let n = diesel::update(
        care_team_invitations::table
            .filter(care_team_invitations::id.eq(&invitation.id))
            .filter(care_team_invitations::status.eq(InvitationStatus::Pending))
            .filter(care_team_invitations::expires_at.gt(t)),
    )
    .set((
        care_team_invitations::status.eq(to),
        care_team_invitations::responded_at.eq(Some(t)),
        care_team_invitations::responded_by.eq(Some(&me.id)),
    ))
    .execute(conn)?;
    if n == 1 {
        return Ok(());
    }
    let found: Invitation =
        care_team_invitations::table.find(&invitation.id).select(Invitation::as_select()).first(conn)?;
    Err(not_pending(found.state(t)))
}

fn not_pending(state: InvitationStatus) -> AppError {
    let (ja, en) = match state {
        InvitationStatus::Accepted => {
            ("この招待はすでに承諾されています。", "This invitation has already been accepted.")
        }
        InvitationStatus::Declined => {
            ("この招待はすでに辞退されています。", "This invitation has already been declined.")
        }
        InvitationStatus::Revoked => (
            "この招待は取り消されました。招待した方にお問い合わせください。",
            "This invitation was revoked. Please ask the person who invited you.",
        ),
        InvitationStatus::AwaitingApproval => (
            "この招待は承諾済みで、ご本人・キーパーソンの承認を待っています。",
            "This invitation was accepted and awaits the patient's or key person's approval.",
        ),
        InvitationStatus::Refused => (
            "この参加は、ご本人・キーパーソンに承認されませんでした。",
            "The patient or key person did not approve this joining.",
        ),
        InvitationStatus::Expired | InvitationStatus::Pending => (
            "この招待は有効期限が切れています。招待した方にあらためて招待を依頼してください。",
            "This invitation has expired. Please ask the person who invited you for a new one.",
        ),
    };
    AppError::conflict(ja, en)
}

pub fn reread(conn: &mut DbConn, invitation: &Invitation) -> AppResult<InvitationView> {
    Ok(care_team_invitations::table
        .find(&invitation.id)
        .select(Invitation::as_select())
        .first::<Invitation>(conn)?
        .into())
}

/// Declines: the invitation (addressed to the caller, `access::invitation_response`) is settled.
pub fn decline(conn: &mut DbConn, me: &CurrentUser, invitation: &Invitation) -> AppResult<InvitationView> {
    settle(conn, me, invitation, InvitationStatus::Declined)?;
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::CareTeamInvitation, Some(&invitation.id), Some(&invitation.patient_id))
            .detail("declined"),
    )?;
    reread(conn, invitation)
}

/// Accepts: the invitation was settled (`settle`) and the caller may join (`access::joining`);
/// the membership starts today through `team::join`, the lead told as for a direct addition.
pub fn accept(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    patient: &Patient,
    user: &User,
    invitation: &Invitation,
) -> AppResult<MemberView> {
    let view = team::join(conn, me, mailer, patient, user, invitation.role, &invitation.invited_by)?;
    diesel::update(care_team_invitations::table.find(&invitation.id))
        .set(care_team_invitations::member_id.eq(Some(&view.id)))
        .execute(conn)?;
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::CareTeamInvitation, Some(&invitation.id), Some(&patient.id))
            .detail("accepted"),
    )?;
    Ok(view)
}

/// The account in service behind the caller.
pub fn account(conn: &mut DbConn, me: &CurrentUser) -> AppResult<User> {
    users::find_in_service(conn, &me.id)?.ok_or_else(AppError::not_found)
}
