//! THE access policy (docs/architecture.md, law 3): every handler asks here, nothing else decides.
//!
//! Account administration: system administrators manage organisations and any account; an
//! organisation's administrators manage the accounts of their own organisation only; a person
//! may change their own name and language. Roles never grant patient data.

use crate::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::users::User;
use crate::vocab::{AccountRole, OrgKind, Profession};

fn refuse() -> AppError {
    AppError::forbidden("この操作を行う権限がありません。", "You do not have permission to do this.")
}

pub fn create_organization(me: &CurrentUser) -> AppResult<()> {
    if me.is_system_admin() {
        Ok(())
    } else {
        Err(refuse())
    }
}

/// Turning one's own two-factor sign-in off: not for system administrators, whose accounts
/// reach every organisation's accounts and must keep the second factor.
pub fn turn_off_two_factor(me: &CurrentUser) -> AppResult<()> {
    if me.is_system_admin() {
        Err(AppError::forbidden(
            "システム管理者は二要素認証を無効にできません。",
            "System administrators cannot turn two-factor sign-in off.",
        ))
    } else {
        Ok(())
    }
}

/// Watching e-mail delivery and putting given-up e-mails back in the queue: operators only.
pub fn operate_outbox(me: &CurrentUser) -> AppResult<()> {
    if me.is_system_admin() {
        Ok(())
    } else {
        Err(refuse())
    }
}

/// A push subscription is its owner's alone: anyone else's answers like one that does not exist.
pub fn own_push_subscription(
    me: &CurrentUser,
    subscription: Option<crate::push::Subscription>,
) -> AppResult<crate::push::Subscription> {
    subscription.filter(|s| s.user_id == me.id).ok_or_else(AppError::not_found)
}

/// An organisation's webhook endpoints (its partner systems): its own administrators only. An
/// ordinary member of the organisation is refused (403); anyone else, system administrators
/// included (the endpoints carry a stream of the organisation's patients' ids), gets the 404 of
/// an organisation that does not exist.
pub fn manage_webhooks(me: &CurrentUser, organization_id: &str) -> AppResult<()> {
    if is_admin_of(me, organization_id) {
        Ok(())
    } else if me.organization_id.as_deref() == Some(organization_id) {
        Err(refuse())
    } else {
        Err(AppError::not_found())
    }
}

/// One of an organisation's webhook endpoints, for its administrators ([`manage_webhooks`]); an
/// endpoint of another organisation answers like one that does not exist.
pub fn webhook_endpoint(
    me: &CurrentUser,
    organization_id: &str,
    endpoint: Option<crate::webhooks::Endpoint>,
) -> AppResult<crate::webhooks::Endpoint> {
    manage_webhooks(me, organization_id)?;
    endpoint.filter(|e| e.organization_id == organization_id).ok_or_else(AppError::not_found)
}

/// What `/metrics` and `/readyz` may show a caller. Operational counts (open flags, e-mail
/// backlog, pool use) say how busy the city's emergencies are, so they are for the operators'
/// monitoring only, which presents `RENKEI_METRICS_TOKEN` as a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpsView {
    /// Everything: the metrics, and the readiness detail.
    Detail,
    /// A token is configured and the caller did not present it: readiness up/down only, and
    /// `/metrics` answers 401.
    Refused,
    /// No token is configured in production: readiness up/down only, and `/metrics` is off (404).
    Summary,
}

pub fn operations_view(config: &crate::config::Config, req: &actix_web::HttpRequest) -> OpsView {
    match &config.metrics_token {
        Some(token) => {
            let presented = req
                .headers()
                .get(actix_web::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            // Digests compared in constant time: the comparison tells nothing about the token.
            use sha2::Digest;
            use subtle::ConstantTimeEq;
            let same = sha2::Sha256::digest(presented.as_bytes()).ct_eq(&sha2::Sha256::digest(token.as_bytes()));
            if bool::from(same) {
                OpsView::Detail
            } else {
                OpsView::Refused
            }
        }
        // Development without a token: usable on one's own machine without any setting.
        None if config.env == crate::config::Environment::Development => OpsView::Detail,
        None => OpsView::Summary,
    }
}

/// Changing an organisation's directory entry; activating or deactivating it (which takes all
/// its people out of the service) is for system administrators only.
pub fn update_organization(me: &CurrentUser, organization_id: &str, changes_active: bool) -> AppResult<()> {
    if changes_active && !me.is_system_admin() {
        return Err(AppError::forbidden(
            "組織の有効・無効はシステム管理者が変更します。",
            "Only a system administrator activates or deactivates an organisation.",
        ));
    }
    if me.is_system_admin() || is_admin_of(me, organization_id) {
        Ok(())
    } else {
        Err(refuse())
    }
}

/// Whether the caller administers the accounts of this organisation (and so sees e-mail
/// addresses and inactive accounts).
pub fn manages_accounts_of(me: &CurrentUser, organization_id: &str) -> bool {
    me.is_system_admin() || is_admin_of(me, organization_id)
}

/// Whether the caller administers this account: its organisation's administrators and system
/// administrators; an account of no organisation (the patient, the family) only the latter.
fn administers(me: &CurrentUser, target: &User) -> bool {
    match &target.organization_id {
        Some(organization_id) => manages_accounts_of(me, organization_id),
        None => me.is_system_admin(),
    }
}

fn is_admin_of(me: &CurrentUser, organization_id: &str) -> bool {
    me.role == AccountRole::OrgAdmin && me.organization_id.as_deref() == Some(organization_id)
}

/// The caller's organisation, for what only people of an organisation do (register a patient,
/// open a discharge case); the patient and the family are refused (403).
pub fn my_organization(me: &CurrentUser) -> AppResult<&str> {
    me.organization_id.as_deref().ok_or_else(refuse)
}

/// The organisation of a person joining a care team: a professional's. The patient and the
/// family take part as participants, never as members (422, field `user_id`).
pub fn employer(user: &User) -> AppResult<&str> {
    user.organization_id.as_deref().ok_or_else(|| {
        AppError::field(
            "user_id",
            "not_a_professional",
            "ご本人・ご家族のアカウントはケアチームに加えられません。参加者として招待してください。",
            "The patient's and the family's accounts do not join the care team: invite them as participants.",
        )
    })
}

/// Whether the caller sees an account's e-mail address, role, two-factor state and alert
/// preference: the person themselves and their administrators (of their organisation, or the
/// system's). Everyone else sees the directory entry: name, kana, profession, organisation.
pub fn sees_account_details(me: &CurrentUser, target: &User) -> bool {
    me.id == target.id || administers(me, target)
}

/// A profession must be one that organisations of this kind employ (`vocab::PROFESSIONS_BY_ORG_KIND`);
/// an account of no organisation is of no profession (`layperson`).
fn profession_fits(kind: Option<OrgKind>, profession: Profession) -> AppResult<()> {
    match kind {
        Some(kind) if kind.employs(profession) => Ok(()),
        None if profession == Profession::Layperson => Ok(()),
        None => Err(AppError::field(
            "profession",
            "not_in_organization_kind",
            "組織に属さないアカウント（ご本人・ご家族）の職種は変更できません。",
            "An account of no organisation (the patient, the family) has no profession to change.",
        )),
        Some(kind) => Err(AppError::field(
            "profession",
            "not_in_organization_kind",
            format!("職種「{profession}」は、この種類の組織（{kind}）には登録できません。"),
            format!("An organisation of kind {kind} has no staff of profession {profession}."),
        )),
    }
}

/// Creating an account with a role and a profession in an organisation. Only a system
/// administrator makes system administrators; the profession must fit the organisation's kind.
pub fn create_user(
    me: &CurrentUser,
    organization_id: &str,
    kind: OrgKind,
    role: AccountRole,
    profession: Profession,
) -> AppResult<()> {
    let allowed = me.is_system_admin() || (is_admin_of(me, organization_id) && role != AccountRole::SystemAdmin);
    if !allowed {
        return Err(refuse());
    }
    profession_fits(Some(kind), profession)
}

/// The administrative part of an account edit (name, kana, language and alert preference are
/// the person's own and anyone who may edit the account may change them).
pub struct AccountChange {
    pub profession: Option<Profession>,
    pub role: Option<AccountRole>,
    pub active: Option<bool>,
}

/// Decides an edit of an account. Administrators of the account's organisation and system
/// administrators change everything (only system administrators touch system administrators or
/// grant that role); a person changes their own profile only. Nobody changes their own
/// profession or role — that refusal is audited, as it is what an attempt to raise one's own
/// privileges looks like. A profession must fit the organisation's kind (422).
pub fn edit_user(
    conn: &mut DbConn,
    me: &CurrentUser,
    target: &User,
    kind: Option<OrgKind>,
    change: &AccountChange,
) -> AppResult<()> {
    let administers = administers(me, target) && (me.is_system_admin() || target.role != AccountRole::SystemAdmin);
    let own = me.id == target.id;
    if !administers && !own {
        // People outside the organisation do not learn that an inactive account exists.
        return Err(if target.active { refuse() } else { AppError::not_found() });
    }
    let changes_profession = change.profession.is_some_and(|p| p != target.profession);
    let changes_role = change.role.is_some_and(|r| r != target.role);
    let administrative = change.profession.is_some() || change.role.is_some() || change.active.is_some();
    if own && (changes_profession || changes_role || (!administers && administrative)) {
        audit::record(
            conn,
            me,
            Event::new(Action::Update, Resource::User, Some(&target.id), None)
                .denied()
                .detail("own profession or role"),
        )?;
        return Err(AppError::forbidden(
            "ご自身の職種・権限は変更できません。組織の管理者に依頼してください。",
            "Nobody changes their own profession or role: ask an administrator of your organisation.",
        )
        .keeping_changes());
    }
    if change.role == Some(AccountRole::SystemAdmin) && !me.is_system_admin() {
        return Err(refuse());
    }
    if let Some(p) = change.profession {
        profession_fits(kind, p)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Patient data.
//
// - An active member of the patient's care team reads and writes the patient's data.
// - A coordinating physician of the patient's ward reads (never writes).
// - A clinician with unexpired emergency access (break-glass) reads.
// - The team is changed by its lead or its care manager. An org admin of an organisation that
//   has a member on the team may see the team list (nothing else of the patient) and may add or
//   end memberships of their own organisation's people only: never themselves, never the lead,
//   never another organisation's member, never `is_lead`, never a role (see `change_team`).
// - A member whose organisation is deactivated is no member: no access, no alerts.
// - The access log ("who opened this record") is for the team lead.
// - Account roles grant nothing here: system and org admins see patient data only as members.
// - Anyone else gets the very same 404 as for a patient that does not exist, and the attempt
//   is audited.

use crate::audit::{self, Action, Event, Resource};
use crate::db::DbConn;
use crate::patients::{self, emergency, invitations, participants, team, Patient};
use crate::vocab::{ParticipantRole, TeamRole};

/// How the caller stands to a patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    Member {
        member_id: String,
        role: TeamRole,
        is_lead: bool,
    },
    Coordinator,
    EmergencyAccess,
    AdminOfMemberOrganization,
    /// The patient, a family member or the key person (`patients::participants`).
    Participant {
        role: ParticipantRole,
    },
}

/// What the caller wants to do with the patient's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    ReadTeam,
    ReadAccessLog,
    /// Reading and posting in the family channel: the team and the participants.
    FamilyChannel,
    /// Approving who joins the team: the patient and the key person.
    ApproveJoining,
    /// Reading the consent records: whoever reads the patient, and the patient and key person.
    ReadConsents,
    /// Revoking consent: the team, and the patient and key person, whose choice it is.
    RevokeConsent,
}

impl Relation {
    fn reads(&self) -> bool {
        matches!(self, Relation::Member { .. } | Relation::Coordinator | Relation::EmergencyAccess)
    }

    /// The patient or the key person.
    fn speaks_for_the_patient(&self) -> bool {
        matches!(self, Relation::Participant { role, .. } if role.speaks_for_the_patient())
    }

    pub fn allows(&self, need: Need) -> bool {
        let member = matches!(self, Relation::Member { .. });
        match need {
            Need::Read => self.reads(),
            Need::Write => member,
            // The patient and the key person see who cares for them: they approve who joins.
            Need::ReadTeam => {
                self.reads() || *self == Relation::AdminOfMemberOrganization || self.speaks_for_the_patient()
            }
            Need::ReadAccessLog => {
                matches!(self, Relation::Member { is_lead: true, .. }) || self.speaks_for_the_patient()
            }
            Need::FamilyChannel => member || matches!(self, Relation::Participant { .. }),
            Need::ApproveJoining => self.speaks_for_the_patient(),
            Need::ReadConsents => self.reads() || self.speaks_for_the_patient(),
            Need::RevokeConsent => member || self.speaks_for_the_patient(),
        }
    }
}

/// The caller's relation to a patient, if any.
pub fn relation(conn: &mut DbConn, me: &CurrentUser, patient: &Patient) -> AppResult<Option<Relation>> {
    if let Some(m) = team::active_member_in_service(conn, &patient.id, &me.id)? {
        return Ok(Some(Relation::Member { member_id: m.id, role: m.role, is_lead: m.is_lead }));
    }
    if let Some(assigned_at) = crate::wards::coordinator_since(conn, &patient.ward_code, &me.id)? {
        // A coordinator assigned after the patient revoked consent would be a new recipient.
        let revoked_at = patients::consents::revoked_at(conn, &patient.id)?;
        if revoked_at.is_none_or(|r| assigned_at <= r) {
            return Ok(Some(Relation::Coordinator));
        }
    }
    if me.organization_id.is_none() {
        // The patient and the family: their own relation, and nothing a professional has.
        return Ok(participants::active(conn, &patient.id, &me.id)?.map(|p| Relation::Participant { role: p.role }));
    }
    if emergency::active_grant(conn, &patient.id, &me.id)?.is_some() {
        return Ok(Some(Relation::EmergencyAccess));
    }
    if admin_of_member_organization(conn, me, &patient.id)? {
        return Ok(Some(Relation::AdminOfMemberOrganization));
    }
    Ok(None)
}

/// An administrator of an organisation with someone on the patient's team.
fn admin_of_member_organization(conn: &mut DbConn, me: &CurrentUser, patient_id: &str) -> AppResult<bool> {
    match &me.organization_id {
        Some(organization_id) if me.role == AccountRole::OrgAdmin => {
            team::organization_on_team(conn, patient_id, organization_id)
        }
        _ => Ok(false),
    }
}

/// Decides a patient-scoped request. On refusal the attempt is audited (the audit record is
/// kept although the request fails) and the answer is 404 — identical to a patient that does
/// not exist — unless the caller may read the patient anyway, in which case it is 403.
pub fn patient(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    need: Need,
    resource_type: Resource,
) -> AppResult<(Patient, Relation)> {
    let Some(patient) = patients::find(conn, patient_id)? else {
        audit::record(
            conn,
            me,
            Event::new(Action::Read, resource_type, Some(patient_id), None).denied().detail("no such patient"),
        )?;
        return Err(AppError::hidden());
    };
    let relation = relation(conn, me, &patient)?;
    match relation {
        Some(r) if r.allows(need) => match (&patient.superseded_by, need) {
            // A merged duplicate keeps its record as it was: what is written now belongs to the
            // patient it was merged into.
            (Some(into), Need::Write) => Err(AppError::conflict(
                format!("この患者は重複登録として別の患者({into})に統合されています。統合先の患者に記録してください。"),
                format!("This registration was merged into patient {into} as a duplicate: record on that patient."),
            )),
            _ => Ok((patient, r)),
        },
        Some(r) if r.reads() => {
            audit::record(conn, me, Event::new(Action::Update, resource_type, None, Some(&patient.id)).denied())?;
            Err(refuse().keeping_changes())
        }
        _ => {
            audit::record(conn, me, Event::new(Action::Read, resource_type, None, Some(&patient.id)).denied())?;
            Err(AppError::hidden())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Changing a care team.

/// In which capacity the caller changes a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamManager {
    /// The team's lead, or a member in the role `care_manager`: any change.
    LeadOrCareManager,
    /// An administrator of an organisation with people on the team: their own people only.
    OrgAdmin,
}

/// The patient whose team the caller wants to change, and in which capacity. Those who may read
/// the team but not change it get 403 (audited); anyone else the 404 of a missing patient.
pub fn manage_team(conn: &mut DbConn, me: &CurrentUser, patient_id: &str) -> AppResult<(Patient, TeamManager)> {
    let (patient, relation) = patient(conn, me, patient_id, Need::ReadTeam, Resource::CareTeam)?;
    let manager = match relation {
        Relation::Member { is_lead: true, .. } | Relation::Member { role: TeamRole::CareManager, .. } => {
            Some(TeamManager::LeadOrCareManager)
        }
        // An administrator who is also a plain member keeps the administrator's capacity.
        Relation::AdminOfMemberOrganization | Relation::Member { .. }
            if admin_of_member_organization(conn, me, &patient.id)? =>
        {
            Some(TeamManager::OrgAdmin)
        }
        _ => None,
    };
    match manager {
        Some(m) => Ok((patient, m)),
        None => {
            audit::record(conn, me, Event::new(Action::Update, Resource::CareTeam, None, Some(&patient.id)).denied())?;
            Err(refuse().keeping_changes())
        }
    }
}

/// A change to a care team, as far as the policy needs to know it.
pub enum TeamChange<'a> {
    Add { user: &'a User, role: TeamRole, is_lead: bool },
    Update { member: &'a team::Member, profession: Profession, role: Option<TeamRole>, is_lead: Option<bool> },
}

/// Decides one change to a team. An org admin's change outside their own people, or of the
/// lead, a role or `is_lead`, is refused with 403 and audited; a role the person's profession
/// does not fit (a physician's role for a non-physician, the care manager's role for someone
/// who is not a care manager) is 422 for everyone.
pub fn change_team(
    conn: &mut DbConn,
    me: &CurrentUser,
    manager: TeamManager,
    patient_id: &str,
    change: &TeamChange<'_>,
) -> AppResult<()> {
    if manager == TeamManager::OrgAdmin {
        let refusal = match change {
            TeamChange::Add { user, role, is_lead } => {
                if user.organization_id.is_none() || user.organization_id != me.organization_id {
                    Some("another organisation's person")
                } else if user.id == me.id {
                    Some("oneself")
                } else if *is_lead {
                    Some("is_lead")
                } else if *role == TeamRole::CareManager {
                    // The care manager's role changes the team: granting it would be granting
                    // team management by proxy.
                    Some("care_manager role")
                } else {
                    None
                }
            }
            TeamChange::Update { member, role, is_lead, .. } => {
                if me.organization_id.as_deref() != Some(member.organization_id.as_str()) {
                    Some("another organisation's member")
                } else if member.is_lead {
                    Some("the lead")
                } else if role.is_some() {
                    Some("role")
                } else if *is_lead == Some(true) {
                    Some("is_lead")
                } else {
                    None
                }
            }
        };
        if let Some(what) = refusal {
            let member_id = match change {
                TeamChange::Update { member, .. } => Some(member.id.as_str()),
                TeamChange::Add { .. } => None,
            };
            audit::record(
                conn,
                me,
                Event::new(Action::Update, Resource::CareTeamMember, member_id, Some(patient_id))
                    .denied()
                    .detail(format!("org admin: {what}")),
            )?;
            return Err(AppError::forbidden(
                "組織の管理者ができるのは、自組織の職員（ご本人とリーダーを除く）のチームへの追加と担当終了のみです。役割とリーダーは、チームのリーダーまたはケアマネジャーが変更します。",
                "An organisation administrator may only add, or end the membership of, people of their own organisation (not themselves, not the lead). Roles and the lead are changed by the team's lead or care manager.",
            )
            .keeping_changes());
        }
    }
    let (role, profession) = match change {
        TeamChange::Add { user, role, .. } => (Some(*role), user.profession),
        TeamChange::Update { role, profession, .. } => (*role, *profession),
    };
    if let Some(needed) = role.and_then(TeamRole::required_profession) {
        if needed != profession {
            return Err(AppError::field(
                "role",
                "profession_mismatch",
                format!("この役割には職種「{needed}」の方のみ就けます。"),
                format!("Only a person of profession {needed} can take this role."),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Resource loaders: one per kind of patient-scoped resource, used by every route that names one
// by id. A missing resource answers exactly like one of a patient outside the caller's scope
// (the 404 of `AppError::hidden`), and both attempts are audited, so an id tells nothing about
// whether it exists. A malformed path id reaches here as the nil UUID (`api::Id`) and takes the
// same way.

/// The audited miss of a resource that does not exist.
fn missing(conn: &mut DbConn, me: &CurrentUser, resource_type: Resource, id: &str, what: &str) -> AppError {
    match audit::record(conn, me, Event::new(Action::Read, resource_type, Some(id), None).denied().detail(what)) {
        Ok(()) => AppError::hidden(),
        Err(e) => e,
    }
}

/// A note the caller may reach for `need`, with its patient.
pub fn note(
    conn: &mut DbConn,
    me: &CurrentUser,
    note_id: &str,
    need: Need,
) -> AppResult<(crate::notes::Note, Patient, Relation)> {
    let Some(note) = crate::notes::find(conn, note_id)? else {
        return Err(missing(conn, me, Resource::Note, note_id, "no such note"));
    };
    let (patient, relation) = patient(conn, me, &note.patient_id, need, Resource::Note)?;
    Ok((note, patient, relation))
}

/// A discharge case the caller may reach for `need`.
pub fn case(
    conn: &mut DbConn,
    me: &CurrentUser,
    case_id: &str,
    need: Need,
) -> AppResult<(crate::discharge::cases::Case, Relation)> {
    let Some(case) = crate::discharge::cases::find(conn, case_id)? else {
        return Err(missing(conn, me, Resource::DischargeCase, case_id, "no such case"));
    };
    let (_, relation) = patient(conn, me, &case.patient_id, need, Resource::DischargeCase)?;
    Ok((case, relation))
}

/// A discharge task the caller may reach for `need`, with its case.
pub fn task(
    conn: &mut DbConn,
    me: &CurrentUser,
    task_id: &str,
    need: Need,
) -> AppResult<(crate::discharge::tasks::Task, crate::discharge::cases::Case)> {
    let Some(task) = crate::discharge::tasks::find(conn, task_id)? else {
        return Err(missing(conn, me, Resource::DischargeTask, task_id, "no such task"));
    };
    patient(conn, me, &task.patient_id, need, Resource::DischargeTask)?;
    let case =
        crate::discharge::cases::find(conn, &task.case_id)?.ok_or_else(|| AppError::internal("task without case"))?;
    Ok((task, case))
}

/// A deterioration flag the caller may reach for `need`, with its patient.
pub fn flag(
    conn: &mut DbConn,
    me: &CurrentUser,
    flag_id: &str,
    need: Need,
) -> AppResult<(crate::flags::Flag, Patient)> {
    let Some(flag) = crate::flags::find(conn, flag_id)? else {
        return Err(missing(conn, me, Resource::Flag, flag_id, "no such flag"));
    };
    let (patient, _) = patient(conn, me, &flag.patient_id, need, Resource::Flag)?;
    Ok((flag, patient))
}

/// An attachment the caller may reach for `need`, with its patient, found through the note or
/// discharge case it belongs to: whoever may read that may read its files. One marked entered
/// in error answers like one that does not exist (its record stays, for the audit trail).
pub fn attachment(
    conn: &mut DbConn,
    me: &CurrentUser,
    attachment_id: &str,
    need: Need,
) -> AppResult<(crate::attachments::Attachment, Patient)> {
    let found = match crate::attachments::find(conn, attachment_id)? {
        Some(a) if !crate::attachments::entered_in_error(conn, &a.id)? => a,
        Some(_) => return Err(missing(conn, me, Resource::Attachment, attachment_id, "entered in error")),
        None => return Err(missing(conn, me, Resource::Attachment, attachment_id, "no such attachment")),
    };
    let (patient, _) = attachment_owner(conn, me, &found, need)?;
    Ok((found, patient))
}

/// The patient of an attachment and how the caller stands to them, through its note or case.
fn attachment_owner(
    conn: &mut DbConn,
    me: &CurrentUser,
    found: &crate::attachments::Attachment,
    need: Need,
) -> AppResult<(Patient, Relation)> {
    match (&found.note_id, &found.case_id) {
        (Some(note_id), _) => {
            let (_, patient, relation) = note(conn, me, note_id, need)?;
            Ok((patient, relation))
        }
        (None, Some(case_id)) => {
            let (case, relation) = case(conn, me, case_id, need)?;
            let patient =
                patients::find(conn, &case.patient_id)?.ok_or_else(|| AppError::internal("case without patient"))?;
            Ok((patient, relation))
        }
        (None, None) => Err(AppError::internal("attachment without owner")),
    }
}

/// The attachment the caller marks entered in error, with its patient, and whether it already
/// is (a retried marking finds its own). Like a note's amendment, the person who added it, or
/// the team's lead (who keeps the record in order), while on the team; anyone else who may
/// write the patient's data: 403, audited.
pub fn attachment_to_mark_in_error(
    conn: &mut DbConn,
    me: &CurrentUser,
    attachment_id: &str,
) -> AppResult<(crate::attachments::Attachment, Patient, bool)> {
    let Some(found) = crate::attachments::find(conn, attachment_id)? else {
        return Err(missing(conn, me, Resource::Attachment, attachment_id, "no such attachment"));
    };
    let (patient, relation) = attachment_owner(conn, me, &found, Need::Write)?;
    if let Err(refusal) = mark_attachment_in_error(me, &found.uploaded_by, &relation) {
        let event = Event::new(Action::Update, Resource::Attachment, Some(&found.id), Some(&patient.id))
            .detail("entered in error");
        return Err(refused_after_patient(conn, me, event, refusal));
    }
    let already = crate::attachments::entered_in_error(conn, &found.id)?;
    Ok((found, patient, already))
}

/// Marking an attachment entered in error: whoever added it, or the team's lead.
pub fn mark_attachment_in_error(me: &CurrentUser, uploaded_by: &str, relation: &Relation) -> AppResult<()> {
    if me.id == uploaded_by || matches!(relation, Relation::Member { is_lead: true, .. }) {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "添付ファイルを誤入力として取り消せるのは、添付した本人とチームのリーダーのみです。",
            "Only the person who added a file, or the team's lead, may mark it entered in error.",
        ))
    }
}

/// The note a file is added to, with its patient: like an amendment, by the note's author
/// while still on the team (anyone else who may write the patient's data: 403, audited).
pub fn attach_to_note(conn: &mut DbConn, me: &CurrentUser, note_id: &str) -> AppResult<(crate::notes::Note, Patient)> {
    let (note, patient, _) = note(conn, me, note_id, Need::Write)?;
    if let Err(refusal) = amend_note(me, &note.author_id) {
        let event = Event::new(Action::Create, Resource::Attachment, Some(&note.id), Some(&patient.id));
        return Err(refused_after_patient(conn, me, event, refusal));
    }
    Ok((note, patient))
}

/// The discharge case a document is added to: any active member of the patient's team.
pub fn attach_to_case(conn: &mut DbConn, me: &CurrentUser, case_id: &str) -> AppResult<crate::discharge::cases::Case> {
    let (case, _) = case(conn, me, case_id, Need::Write)?;
    Ok(case)
}

// ---------------------------------------------------------------------------------------------
// Notebook and flags.
//
// - Any active member of the team posts notes and raises flags; the physician's
//   information-sharing note is for physicians (`write_physician_note`).
// - A note is amended only by its author, still on the team (`amend_note`).
// - A read leaves a receipt (既読) only for a member of the team: a coordinating physician or a
//   clinician with emergency access reads without one, and the audit trail records the read.
// - A flag is acknowledged or resolved by any active member of the team.
// A refusal after the patient check is audited, and its audit record kept.

/// A refusal of a caller who reached the patient: audited, and the audit record kept.
fn refused_after_patient(conn: &mut DbConn, me: &CurrentUser, event: Event<'_>, refusal: AppError) -> AppError {
    match audit::record(conn, me, event.denied()) {
        Ok(()) => refusal.keeping_changes(),
        Err(e) => e,
    }
}

/// The patient a note of `kind` is posted for: members of the team, and for the physician's
/// information-sharing note physicians among them (403, audited).
pub fn post_note(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    kind: crate::vocab::NoteKind,
) -> AppResult<Patient> {
    let (patient, _) = patient(conn, me, patient_id, Need::Write, Resource::Note)?;
    if kind == crate::vocab::NoteKind::PhysicianInfoSharing {
        if let Err(refusal) = write_physician_note(me) {
            let event = Event::new(Action::Create, Resource::Note, None, Some(&patient.id)).detail(kind.as_str());
            return Err(refused_after_patient(conn, me, event, refusal));
        }
    }
    Ok(patient)
}

/// Whether a reader of the patient is offered a form to post a note (the console's patient
/// page): the team's active members, on a patient not merged into another. Posting is still
/// decided by [`post_note`].
pub fn offers_note_form(patient: &Patient, relation: &Relation) -> bool {
    relation.allows(Need::Write) && patient.superseded_by.is_none()
}

/// The note the caller amends, with its patient: its author, still on the team (anyone else who
/// may write the patient's data: 403, audited).
pub fn note_to_amend(conn: &mut DbConn, me: &CurrentUser, note_id: &str) -> AppResult<(crate::notes::Note, Patient)> {
    let (note, patient, _) = note(conn, me, note_id, Need::Write)?;
    if let Err(refusal) = amend_note(me, &note.author_id) {
        let event = Event::new(Action::Update, Resource::Note, Some(&note.id), Some(&patient.id));
        return Err(refused_after_patient(conn, me, event, refusal));
    }
    Ok((note, patient))
}

/// Whether a read of a note by someone standing so to its patient leaves a read receipt.
pub fn leaves_read_receipt(relation: &Relation) -> bool {
    matches!(relation, Relation::Member { .. })
}

/// The note the caller marks read: members of the team, who leave receipts (others who may read
/// it get 403, audited).
pub fn note_to_mark_read(conn: &mut DbConn, me: &CurrentUser, note_id: &str) -> AppResult<crate::notes::Note> {
    let (note, _, _) = note(conn, me, note_id, Need::Write)?;
    Ok(note)
}

/// The patient a flag is raised for: members of the team.
pub fn raise_flag(conn: &mut DbConn, me: &CurrentUser, patient_id: &str) -> AppResult<Patient> {
    let (patient, _) = patient(conn, me, patient_id, Need::Write, Resource::Flag)?;
    Ok(patient)
}

/// The flag the caller acknowledges or resolves: members of the team.
pub fn flag_to_act_on(conn: &mut DbConn, me: &CurrentUser, flag_id: &str) -> AppResult<crate::flags::Flag> {
    let (flag, _) = flag(conn, me, flag_id, Need::Write)?;
    Ok(flag)
}

/// A ward's caseload for the caller (`read_ward_caseload`), and the patients it leaves out for
/// them (`withheld_from_coordinator`).
pub fn ward_caseload(conn: &mut DbConn, me: &CurrentUser, ward_code: &str) -> AppResult<Vec<String>> {
    read_ward_caseload(conn, me, ward_code)?;
    withheld_from_coordinator(conn, me)
}

/// Registering a patient: care managers and hospital staff.
pub fn register_patient(me: &CurrentUser, organization_kind: crate::vocab::OrgKind) -> AppResult<TeamRole> {
    if organization_kind == crate::vocab::OrgKind::Hospital {
        Ok(TeamRole::HospitalStaff)
    } else if me.profession == crate::vocab::Profession::CareManager {
        Ok(TeamRole::CareManager)
    } else {
        Err(AppError::forbidden(
            "患者を登録できるのはケアマネジャーと病院の職員です。",
            "Patients are registered by care managers and hospital staff.",
        ))
    }
}

/// Break-glass: clinicians only. Allowed whatever the patient's consent: reading the record to
/// protect the patient's life or body when consent cannot be obtained in time is the exception
/// of APPI art. 27(1)(ii), and the access is audited and the team told.
pub fn request_emergency_access(me: &CurrentUser) -> AppResult<()> {
    use crate::vocab::Profession::*;
    if matches!(me.profession, Physician | Nurse | Pharmacist | Dentist | Therapist) {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "緊急アクセスを申請できるのは医療職のみです。",
            "Only clinicians may request emergency access.",
        ))
    }
}

/// Recording or withdrawing a patient's target saturation of 88–92% (NEWS2 SpO2 scale 2, for
/// confirmed hypercapnic respiratory failure) is a clinical decision that changes how every later
/// note of the patient is scored (docs/domain.md, NEWS2): physicians and nurses only.
pub fn decide_spo2_target(profession: Profession) -> AppResult<()> {
    if matches!(profession, Profession::Physician | Profession::Nurse) {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "目標 SpO2 88〜92%(NEWS2 スケール2)を登録・取り消しできるのは医師と看護師のみです。",
            "Only physicians and nurses may record or withdraw a target saturation of 88–92% (NEWS2 SpO2 scale 2).",
        ))
    }
}

/// Making someone a coordinating physician of a ward (read access to every patient of the
/// ward): system administrators (403), never for themselves (403, audited), and only for a
/// physician (422, field `user_id`).
pub fn assign_coordinator(conn: &mut DbConn, me: &CurrentUser, ward_code: &str, target: &User) -> AppResult<()> {
    administer_system(me)?;
    if target.id == me.id {
        audit::record(
            conn,
            me,
            Event::new(Action::Create, Resource::WardCoordinator, Some(&format!("{ward_code}/{}", target.id)), None)
                .denied()
                .detail("self-assignment"),
        )?;
        return Err(AppError::forbidden(
            "ご自身を在宅療養調整医師に割り当てることはできません。",
            "Nobody assigns themselves as a coordinating physician.",
        )
        .keeping_changes());
    }
    if target.profession != Profession::Physician {
        return Err(AppError::field(
            "user_id",
            "not_a_physician",
            "在宅療養調整医師に割り当てられるのは医師のみです。",
            "Only physicians can be coordinating physicians.",
        ));
    }
    Ok(())
}

/// Ward coordinator assignment and the audit query: system administrators.
pub fn administer_system(me: &CurrentUser) -> AppResult<()> {
    if me.is_system_admin() {
        Ok(())
    } else {
        Err(refuse())
    }
}

// ---------------------------------------------------------------------------------------------
// Discharge coordination (docs/domain.md).
//
// - Hospital staff (users of an organisation of kind hospital) open discharge cases.
// - A hospital finds the patient of a new case only when already on the patient's team, or by
//   the patient's id together with the matching birth date and katakana family name — never by
//   the id alone, so that a hospital cannot open cases for arbitrary ids. Anyone else gets the
//   404 of a patient that does not exist, and the attempt is audited.
// - The case itself (dates, discharge, close, cancel) is changed by the staff of its hospital
//   who are on the team; tasks, comments and conferences by any member who may write.

/// Opening a discharge case: hospital staff only.
pub fn open_discharge_case(organization_kind: crate::vocab::OrgKind) -> AppResult<()> {
    if organization_kind == crate::vocab::OrgKind::Hospital {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "入退院調整を開始できるのは病院の職員です。",
            "Discharge cases are opened by hospital staff.",
        ))
    }
}

/// The physician's information-sharing note (在宅医療情報連携加算, docs/domain.md) records a
/// physician's decisions: physicians only.
pub fn write_physician_note(me: &CurrentUser) -> AppResult<()> {
    if me.profession == crate::vocab::Profession::Physician {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "医師の情報共有ノート(physician_info_sharing)を書けるのは医師のみです。",
            "Only physicians may post a physician's information-sharing note (physician_info_sharing).",
        ))
    }
}

/// How a hospital identifies a patient it is not yet on the team of.
pub struct PatientIdentity<'a> {
    pub birth_date: chrono::NaiveDate,
    pub family_name_kana: &'a str,
}

/// Which patient a hospital asks for: a patient id, or the insurance number on the card the
/// patient brought to the admission (`patients::insurance`).
pub enum RequestedPatient<'a> {
    Id(&'a str),
    Insurance(&'a patients::insurance::Identifier),
}

fn same_kana(a: &str, b: &str) -> bool {
    let key = |s: &str| crate::vocab::normalize_kana(s).chars().filter(|c| !c.is_whitespace()).collect::<String>();
    key(a) == key(b)
}

/// The patient of a case about to be opened, and the caller's current membership, if any.
///
/// A caller not on the team must identify the patient, and identification is throttled
/// (`patients::identification`): every attempt first reserves a failure on the caller's budget
/// and on the requested id's (or insurance number's) budget — in this transaction, by upsert,
/// so concurrent guesses queue on the counter rows — and only a correct identification gives it
/// back. Past either budget the answer is 429 before anything is compared, also for the right
/// birth date. The counters are kept for the id or number as requested, and misses on ids or
/// numbers of no patient count against the caller too, so neither a 404 nor a 429 tells whether
/// a patient exists. The lead of a patient whose identification keeps failing is told by
/// e-mail, once per window.
///
/// By insurance number the birth date and kana family name are always needed (a team member
/// too gives them: the number alone finds nobody), and the number's own budget is the
/// requested one. A merged duplicate stands for the patient it was merged into, whether named
/// by id or found by a number recorded on it.
pub fn patient_for_new_case(
    conn: &mut DbConn,
    me: &CurrentUser,
    requested: RequestedPatient<'_>,
    identity: Option<PatientIdentity<'_>>,
    mailer: &crate::mail::Mailer,
) -> AppResult<(Patient, Option<team::Member>)> {
    use crate::patients::identification as ident;
    let resource = Resource::DischargeCase;
    // The registrations the request names, each with the patient it stands for now.
    let (found, requested_key, requested_id): (Vec<(Patient, Patient)>, String, Option<&str>) = match &requested {
        RequestedPatient::Id(id) => {
            let named = patients::find(conn, id)?;
            let found = match named {
                Some(p) => {
                    let current = patients::find_current(conn, &p.id)?.unwrap_or_else(|| p.clone());
                    vec![(p, current)]
                }
                None => Vec::new(),
            };
            if let Some((_, current)) = found.first() {
                if let Some(member) = team::active_member(conn, &current.id, &me.id)? {
                    return Ok((current.clone(), Some(member)));
                }
            }
            (found, ident::patient_key(id), Some(*id))
        }
        RequestedPatient::Insurance(number) => {
            let mut found = Vec::new();
            for id in patients::insurance::patients_with(conn, number)? {
                if let (Some(p), Some(current)) = (patients::find(conn, &id)?, patients::find_current(conn, &id)?) {
                    found.push((p, current));
                }
            }
            (found, number.throttle_key(), None)
        }
    };
    let audit_id = found.first().map(|(_, current)| current.id.clone());
    let denied = |conn: &mut DbConn, detail: &str| match audit_id.as_deref() {
        Some(id) => audit::record(conn, me, Event::new(Action::Read, resource, None, Some(id)).denied().detail(detail)),
        None => audit::record(conn, me, Event::new(Action::Read, resource, requested_id, None).denied().detail(detail)),
    };
    let at = crate::db::now();
    let caller = ident::reserve(conn, &ident::caller_key(&me.id), ident::CALLER_WINDOW)?;
    if caller.over(ident::CALLER_MAX_FAILURES) {
        denied(conn, "identification throttled")?;
        return Err(AppError::too_many_requests(caller.retry_after(at)).keeping_changes());
    }
    let requested_counter = ident::reserve(conn, &requested_key, ident::PATIENT_WINDOW)?;
    if requested_counter.over(ident::PATIENT_MAX_FAILURES) {
        denied(conn, "identification throttled")?;
        return Err(AppError::too_many_requests(requested_counter.retry_after(at)).keeping_changes());
    }
    // The registrations whose own birth date and kana are the ones given, as the patients they
    // stand for now (two registrations merged into one are one patient).
    let mut matching: Vec<Patient> = match &identity {
        Some(i) => found
            .iter()
            .filter(|(p, _)| i.birth_date == p.birth_date && same_kana(i.family_name_kana, &p.family_name_kana))
            .map(|(_, current)| current.clone())
            .collect(),
        None => Vec::new(),
    };
    matching.sort_by(|a, b| a.id.cmp(&b.id));
    matching.dedup_by(|a, b| a.id == b.id);
    match (matching.len(), found.first()) {
        (1, _) => {
            ident::release(conn, &caller)?;
            ident::release(conn, &requested_counter)?;
            let patient = matching.remove(0);
            if let Some(member) = team::active_member(conn, &patient.id, &me.id)? {
                return Ok((patient, Some(member)));
            }
            // Joining the team shares the record with the caller's hospital.
            share_with_organization(conn, me, &patient, my_organization(me)?)?;
            Ok((patient, None))
        }
        (0, Some((_, current))) => {
            let current = current.clone();
            denied(conn, "not identified")?;
            ident::notify_lead(conn, mailer, &current, &requested_counter)?;
            Err(AppError::hidden())
        }
        (0, None) => {
            denied(conn, "no such patient")?;
            Err(AppError::hidden())
        }
        // The same number, birth date and kana on two patients not merged: duplicates, which
        // only their care manager can tell apart and merge. The caller identified correctly,
        // so its budget is given back, and learns only that the record is ambiguous.
        _ => {
            ident::release(conn, &caller)?;
            ident::release(conn, &requested_counter)?;
            denied(conn, "identification ambiguous")?;
            Err(AppError::conflict(
                "この保険者番号・生年月日・フリガナに一致する登録が複数あります。患者さんのケアマネジャーに重複登録の統合を依頼してください。",
                "More than one registration matches this insurance number, birth date and kana. Ask the patient's care manager to merge the duplicate registrations.",
            )
            .keeping_changes())
        }
    }
}

/// Merging a duplicate registration (`POST /patients/{id}/merge`): the care manager of both
/// registrations — an active member in the care_manager role on both teams — merges the
/// duplicate into the patient that stays. Anyone else: the answer for a patient they may not
/// see (404) or may see but not change (403), audited.
pub fn merge_patients(
    conn: &mut DbConn,
    me: &CurrentUser,
    duplicate_id: &str,
    surviving_id: &str,
) -> AppResult<(Patient, Patient)> {
    let (duplicate, dup_rel) = patient(conn, me, duplicate_id, Need::Write, Resource::Patient)?;
    let (surviving, surv_rel) = patient(conn, me, surviving_id, Need::Write, Resource::Patient)?;
    let care_manager = |r: &Relation| matches!(r, Relation::Member { role: TeamRole::CareManager, .. });
    if !care_manager(&dup_rel) || !care_manager(&surv_rel) {
        audit::record(
            conn,
            me,
            Event::new(Action::Update, Resource::Patient, None, Some(&duplicate.id)).denied().detail("merge"),
        )?;
        return Err(AppError::forbidden(
            "重複登録を統合できるのは、両方の患者さんのチームのケアマネジャーです。",
            "Duplicate registrations are merged by the care manager on both patients' teams.",
        )
        .keeping_changes());
    }
    Ok((duplicate, surviving))
}

// ---------------------------------------------------------------------------------------------
// Consent and its revocation (本人同意; 個人情報保護法 — APPI — art. 27: consent to provision to
// third parties). See README "Consent and its revocation".
//
// - The record is shared across organisations only with the patient's consent. A revocation
//   stops *further* provision from that moment; what was already shared stays in the record,
//   which the team must keep (medical and care records have retention duties, and notes are
//   never deleted).
// - So while the patient's current consent is revoked, no organisation that did not hold the
//   record at the revocation receives it: a care-team member from an organisation with no
//   active member on the team at that moment is refused (409) until consent is obtained again
//   (a new consent record), and so is a hospital joining the team through a discharge case.
//   People of organisations that held it keep their access (continuity of care; the same
//   organisation may also replace a person who leaves).
// - The FHIR export, which carries the record into systems outside the service (beyond its
//   access boundary, its audit trail, and any later revocation), is refused while consent is
//   revoked; team members keep reading and writing in the service.
// - A ward coordinator assigned after the revocation does not read the record (a new recipient
//   as well); coordinators assigned before keep reading.
// - Emergency access (break-glass) stays allowed, and its reader may export: provision needed
//   to protect the patient's life or body when consent cannot be obtained in time is the
//   exception of APPI art. 27(1)(ii).
// - A patient whose consent was never recorded is not refused: patients are registered at
//   intake (a hospital admission, a care manager's first visit) before consent can be recorded,
//   and sharing within the care of the patient rests meanwhile on the implied consent of the
//   MHLW guidance for medical and care providers; a revocation is the patient's explicit
//   objection, which ends it. The state `none` is still shown as missing in every view.

/// The patients of the caller's wards that the ward's lists (patient search, discharge cases,
/// the caseload) leave out for them as a coordinator: those whose current consent was revoked
/// before the caller became the ward's coordinator (see above, and [`relation`]). Team
/// memberships still show.
pub fn withheld_from_coordinator(conn: &mut DbConn, me: &CurrentUser) -> AppResult<Vec<String>> {
    patients::consents::revoked_before_coordinator(conn, &me.id)
}

/// Sharing the patient's record with an organisation (adding a person of it to the team).
pub fn share_with_organization(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient: &Patient,
    organization_id: &str,
) -> AppResult<()> {
    let Some(revoked_at) = patients::consents::revoked_at(conn, &patient.id)? else {
        return Ok(());
    };
    if team::organization_on_team(conn, &patient.id, organization_id)?
        || team::organization_on_team_at(conn, &patient.id, organization_id, revoked_at)?
    {
        return Ok(());
    }
    audit::record(
        conn,
        me,
        Event::new(Action::Create, Resource::CareTeamMember, None, Some(&patient.id))
            .denied()
            .detail("consent revoked"),
    )?;
    Err(AppError::conflict(
        "この患者さんは情報共有への同意を撤回しています。撤回の時点でケアチームにいなかった組織には、\
         あらためて同意を得て記録する(POST /patients/{id}/consents)まで記録を共有できません。",
        "This patient has revoked consent to sharing. Organisations that were not on the care team when \
         consent was revoked cannot receive the record until consent is obtained again and recorded \
         (POST /patients/{id}/consents).",
    )
    .keeping_changes())
}

/// Exporting the record out of the service (FHIR): not while consent is revoked, except under
/// emergency access (see above).
pub fn export_record(conn: &mut DbConn, me: &CurrentUser, patient: &Patient, relation: &Relation) -> AppResult<()> {
    if *relation == Relation::EmergencyAccess || patients::consents::revoked_at(conn, &patient.id)?.is_none() {
        return Ok(());
    }
    audit::record(
        conn,
        me,
        Event::new(Action::Read, Resource::Fhir, Some(&patient.id), Some(&patient.id))
            .denied()
            .detail("consent revoked"),
    )?;
    Err(AppError::conflict(
        "この患者さんは情報共有への同意を撤回しているため、記録を外部のシステムへ書き出せません。\
         記録はこのサービスの中で引き続き閲覧できます。",
        "This patient has revoked consent to sharing, so the record cannot be exported to other systems. \
         It can still be read in this service.",
    )
    .keeping_changes())
}

/// Whether the caller, standing to the case's patient in `relation`, moves the case through its
/// life: its hospital's staff on the team (the console offers the case's moves to them only).
pub fn manages_case(me: &CurrentUser, case: &crate::discharge::cases::Case, relation: &Relation) -> bool {
    matches!(relation, Relation::Member { .. }) && me.organization_id.as_deref() == Some(case.hospital_id.as_str())
}

/// The case the caller changes the dates of or moves through its life: the case's hospital, through its
/// staff on the team. Others who may write the patient's data get 403, and the refused attempt
/// is audited.
pub fn case_to_manage(conn: &mut DbConn, me: &CurrentUser, case_id: &str) -> AppResult<crate::discharge::cases::Case> {
    let (case, relation) = case(conn, me, case_id, Need::Write)?;
    if manages_case(me, &case, &relation) {
        return Ok(case);
    }
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::DischargeCase, Some(&case.id), Some(&case.patient_id)).denied(),
    )?;
    Err(AppError::forbidden(
        "入退院調整の日程と状態を変更できるのは、担当病院のケアチームメンバーです。",
        "Only the case's hospital staff on the care team change its dates and status.",
    )
    .keeping_changes())
}

// Discharge coordination.

/// Opening a discharge case, judged on the caller's organisation as it is stored now.
pub fn open_case(conn: &mut DbConn, me: &CurrentUser) -> AppResult<()> {
    let org = crate::orgs::find(conn, my_organization(me)?)?
        .ok_or_else(|| AppError::internal("user without organisation"))?;
    open_discharge_case(org.kind)
}

/// A discharge task goes only to someone who may work on the patient: an active member of the
/// patient's care team now (422 naming `assignee_id` otherwise).
pub fn task_assignee(conn: &mut DbConn, patient_id: &str, user_id: &str) -> AppResult<()> {
    if team::active_member(conn, patient_id, user_id)?.is_some() {
        Ok(())
    } else {
        Err(AppError::field(
            "assignee_id",
            "not_on_team",
            "担当者はこの患者のケアチームの現メンバーから選んでください。",
            "The assignee must be an active member of the patient's care team.",
        ))
    }
}

/// A note is amended only by its author (who must also still be on the team to write).
pub fn amend_note(me: &CurrentUser, author_id: &str) -> AppResult<()> {
    if me.id == author_id {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "記録を修正できるのは記録した本人のみです。",
            "Only the author of a note may amend it.",
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Ward caseloads and city-wide counts.

/// A ward's caseload is for the ward's coordinating physicians only. Anyone else, system
/// administrators and coordinators of other wards included, gets the same 404 as for a ward
/// that does not exist.
pub fn read_ward_caseload(conn: &mut DbConn, me: &CurrentUser, ward_code: &str) -> AppResult<()> {
    if crate::wards::is_coordinator(conn, ward_code, &me.id)? {
        Ok(())
    } else {
        Err(AppError::not_found())
    }
}

/// Per-ward counts (no patient-level data): staff of a city ward office, and system
/// administrators.
pub fn read_city_summary(me: &CurrentUser, organization_kind: OrgKind) -> AppResult<()> {
    if me.is_system_admin() || organization_kind == OrgKind::CityWardOffice {
        Ok(())
    } else {
        Err(refuse())
    }
}

// ---------------------------------------------------------------------------------------------
// Care team, consent, accounts, wards.

/// A consent record of a patient the caller may reach for `need`, with the patient. The patient
/// passes the policy first (so a reader who may not write gets the same 403 whether or not the
/// consent exists); a consent that is not the patient's answers like a missing one, audited.
pub fn consent(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    consent_id: &str,
    need: Need,
) -> AppResult<(patients::consents::Consent, Patient)> {
    let (patient, _) = patient(conn, me, patient_id, need, Resource::Consent)?;
    let Some(consent) = patients::consents::find(conn, &patient.id, consent_id)? else {
        return Err(missing(conn, me, Resource::Consent, consent_id, "no such consent"));
    };
    Ok((consent, patient))
}

/// A member of the team of a patient whose team the caller may change ([`manage_team`]), and in
/// which capacity. A member who is not on this patient's team answers like a missing one, audited.
pub fn member(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    member_id: &str,
) -> AppResult<(Patient, TeamManager, team::Member)> {
    let (patient, manager) = manage_team(conn, me, patient_id)?;
    let Some(member) = team::find(conn, &patient.id, member_id)? else {
        return Err(missing(conn, me, Resource::CareTeamMember, member_id, "no such member"));
    };
    Ok((patient, manager, member))
}

/// Adding a person to a patient's team: the caller changes the team ([`manage_team`]), the
/// person has an active account (422, field `user_id`), the change is one the caller may make
/// ([`change_team`]), and the record may be shared with the person's organisation
/// ([`share_with_organization`]). Answers the patient and the person.
pub fn team_addition(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    user_id: &str,
    role: TeamRole,
    is_lead: bool,
) -> AppResult<(Patient, User)> {
    let (patient, manager) = manage_team(conn, me, patient_id)?;
    let user = crate::users::find_in_service(conn, user_id)?.ok_or_else(|| {
        AppError::field("user_id", "unknown_user", "指定された利用者は見つかりません。", "No active user has this id.")
    })?;
    change_team(conn, me, manager, &patient.id, &TeamChange::Add { user: &user, role, is_lead })?;
    share_with_organization(conn, me, &patient, employer(&user)?)?;
    if !patients::approval::approvers(conn, &patient)?.is_empty() {
        // Joining waits for the patient's or key person's approval: only an invitation can wait.
        return Err(AppError::conflict(
            "この患者さんのチームに加わるには、ご本人またはキーパーソンの承認が必要です。招待を送ってください。",
            "Joining this patient's team needs the patient's or key person's approval: send an invitation.",
        ));
    }
    Ok((patient, user))
}

/// Changing a member's role or lead, or ending the membership: the [`member`] is found, and the
/// change is one the caller may make ([`change_team`]). Answers the patient and the member.
pub fn team_member_change(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    member_id: &str,
    role: Option<TeamRole>,
    is_lead: Option<bool>,
) -> AppResult<(Patient, team::Member)> {
    let (patient, manager, member) = self::member(conn, me, patient_id, member_id)?;
    let profession = team::profession_of(conn, &member.user_id)?;
    change_team(conn, me, manager, &patient.id, &TeamChange::Update { member: &member, profession, role, is_lead })?;
    Ok((patient, member))
}

// ---------------------------------------------------------------------------------------------
// Invitations into a care team (`patients::invitations`).

/// Inviting into a patient's team, seeing its invitations and revoking one: the team's lead or
/// a member with role `care_manager` ([`manage_team`]). An organisation administrator, who may
/// add only their own people directly, does not invite (403, audited); others who may read the
/// patient get 403, anyone else the 404 of a missing patient.
pub fn invitations(conn: &mut DbConn, me: &CurrentUser, patient_id: &str) -> AppResult<Patient> {
    let (patient, manager) = manage_team(conn, me, patient_id)?;
    if manager != TeamManager::LeadOrCareManager {
        audit::record(
            conn,
            me,
            Event::new(Action::Update, Resource::CareTeamInvitation, None, Some(&patient.id))
                .denied()
                .detail("org admin: invitation"),
        )?;
        return Err(AppError::forbidden(
            "ケアチームへの招待は、チームのリーダーまたはケアマネジャーが行います。",
            "Invitations to the care team are made by the team's lead or care manager.",
        )
        .keeping_changes());
    }
    Ok(patient)
}

/// An invitation: the caller may manage the patient's invitations ([`invitations`]), and whom it
/// is for. An account named by id must be in service (422, field `user_id`); an address of an
/// account in service invites that account. For an account the role must fit its profession and
/// the record may be shared with its organisation ([`change_team`], [`share_with_organization`]);
/// for an address nobody has yet, that is decided when it is accepted ([`joining`]).
pub fn invite(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    user_id: Option<&str>,
    email: Option<&str>,
    role: TeamRole,
) -> AppResult<(Patient, invitations::Invitee)> {
    let patient = invitations(conn, me, patient_id)?;
    let user = match (user_id, email) {
        (Some(id), _) => Some(crate::users::find_in_service(conn, id)?.ok_or_else(|| {
            AppError::field(
                "user_id",
                "unknown_user",
                "指定された利用者は見つかりません。",
                "No active user has this id.",
            )
        })?),
        (None, Some(address)) => match crate::users::find_by_email(conn, address)? {
            Some(found) => crate::users::find_in_service(conn, &found.id)?,
            None => None,
        },
        (None, None) => None,
    };
    match user {
        Some(user) => {
            let add = TeamChange::Add { user: &user, role, is_lead: false };
            change_team(conn, me, TeamManager::LeadOrCareManager, &patient.id, &add)?;
            share_with_organization(conn, me, &patient, employer(&user)?)?;
            Ok((patient, invitations::Invitee::Account(Box::new(user))))
        }
        None => {
            let address = crate::api::normalize_email(email.unwrap_or_default());
            Ok((patient, invitations::Invitee::Address(address)))
        }
    }
}

/// One invitation of a patient whose invitations the caller manages ([`invitations`]); one of
/// another patient, or none, answers like a missing patient, audited.
pub fn invitation(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    invitation_id: &str,
) -> AppResult<(Patient, invitations::Invitation)> {
    let patient = invitations(conn, me, patient_id)?;
    let Some(found) = invitations::find(conn, &patient.id, invitation_id)? else {
        return Err(missing(conn, me, Resource::CareTeamInvitation, invitation_id, "no such invitation"));
    };
    Ok((patient, found))
}

/// The audited 403 of an invitation answered by an account it is not addressed to, whatever
/// its state.
fn addressed_to_another(conn: &mut DbConn, me: &CurrentUser, resource: Resource, id: &str) -> AppError {
    let audited = audit::record(
        conn,
        me,
        Event::new(Action::Update, resource, Some(id), None).denied().detail("addressed to another account"),
    );
    if let Err(e) = audited {
        return e;
    }
    AppError::forbidden(
        "この招待は別のアカウント宛てです。招待されたアカウントでサインインしてください。",
        "This invitation is for another account. Please sign in with the account that was invited.",
    )
    .keeping_changes()
}

/// Answering an invitation with its token: an unknown token is 422 naming `token`; an
/// invitation addressed to another account (by id, or by an address that is not the caller's)
/// is 403, audited, whatever its state. Answers the invitation and its patient.
pub fn invitation_response(
    conn: &mut DbConn,
    me: &CurrentUser,
    token: &str,
) -> AppResult<(invitations::Invitation, Patient)> {
    let Some(found) = invitations::find_by_token(conn, token)? else {
        return Err(AppError::field(
            "token",
            "invalid_token",
            "この招待のリンクは無効です。メールのリンクをもう一度開いてください。",
            "This invitation link is not valid. Please open the link of the e-mail again.",
        ));
    };
    if !found.addressed_to(&me.id, &me.email) {
        return Err(addressed_to_another(conn, me, Resource::CareTeamInvitation, &found.id));
    }
    let patient = patients::find(conn, &found.patient_id)?.ok_or_else(AppError::not_found)?;
    Ok((found, patient))
}

/// Joining a team by an accepted invitation: the role fits the caller's profession (422, field
/// `role`) and the record may be shared with the caller's organisation (409 while consent is
/// revoked, [`share_with_organization`]). Answers the caller's account.
pub fn joining(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient: &Patient,
    invitation: &invitations::Invitation,
) -> AppResult<User> {
    let user = invitations::account(conn, me)?;
    let add = TeamChange::Add { user: &user, role: invitation.role, is_lead: false };
    change_team(conn, me, TeamManager::LeadOrCareManager, &patient.id, &add)?;
    share_with_organization(conn, me, patient, employer(&user)?)?;
    Ok(user)
}

// ---------------------------------------------------------------------------------------------
// The patient, the family and the key person (`patients::participants`, `patients::approval`,
// `family`).
//
// - They take part through their own relation (`Relation::Participant`), never as members: the
//   family channel is theirs and the team's; every other datum of the patient answers them the
//   404 of a missing patient, byte for byte.
// - The patient and the key person approve who joins the team, read who opened the record and
//   may revoke consent.
// - The lead or the care manager invites them, sees them, ends a participation, and records that
//   the care manager decides joinings for a patient who cannot.

/// Inviting, listing and ending participants, and setting who decides joinings: the lead or the
/// care manager, as for invitations ([`invitations`]).
pub fn participants(conn: &mut DbConn, me: &CurrentUser, patient_id: &str) -> AppResult<Patient> {
    invitations(conn, me, patient_id)
}

/// Inviting a participant by address: as [`participants`], and the address is not a
/// professional's account in use (422, field `email`: they join the team by invitation).
pub fn invite_participant(conn: &mut DbConn, me: &CurrentUser, patient_id: &str, email: &str) -> AppResult<Patient> {
    let patient = participants(conn, me, patient_id)?;
    if let Some(user) = crate::users::find_by_email(conn, email)? {
        if user.active && user.organization_id.is_some() {
            return Err(AppError::field(
                "email",
                "professional_account",
                "このアドレスは専門職のアカウントです。ケアチームへの招待をお使いください。",
                "This address is a professional's account: invite them to the care team instead.",
            ));
        }
    }
    Ok(patient)
}

/// One participant of a patient whose participants the caller manages; one of another patient,
/// or none, answers like a missing one, audited.
pub fn participant(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    participant_id: &str,
) -> AppResult<(Patient, participants::Participant)> {
    let patient = participants(conn, me, patient_id)?;
    let Some(found) = participants::find(conn, &patient.id, participant_id)? else {
        return Err(missing(conn, me, Resource::Participant, participant_id, "no such participant"));
    };
    Ok((patient, found))
}

/// The participant invitation a token names, for taking it up with a new account (no sign-in):
/// an unknown, used or expired token is 422 naming `token`.
pub fn participant_invitation(conn: &mut DbConn, token: &str) -> AppResult<participants::Participant> {
    participants::invited_by_token(conn, token)?.ok_or_else(participants::invalid_token)
}

/// Taking a participant invitation up as the signed-in account: the invitation is addressed to
/// the account's address (403, audited, otherwise), and the account is of no organisation (a
/// professional joins the team instead: 409).
pub fn participant_joining(conn: &mut DbConn, me: &CurrentUser, token: &str) -> AppResult<participants::Participant> {
    let found = participant_invitation(conn, token)?;
    if crate::api::normalize_email(&me.email) != found.email {
        return Err(addressed_to_another(conn, me, Resource::Participant, &found.id));
    }
    if me.organization_id.is_some() {
        return Err(AppError::conflict(
            "専門職のアカウントでは参加者になれません。ご本人・ご家族用のアカウントで参加してください。",
            "A professional's account cannot take part as the patient or family.",
        ));
    }
    Ok(found)
}

/// The family channel of a patient: read and posted in by the team and the participants.
pub fn family_channel(conn: &mut DbConn, me: &CurrentUser, patient_id: &str) -> AppResult<(Patient, Relation)> {
    patient(conn, me, patient_id, Need::FamilyChannel, Resource::FamilyMessage)
}

/// A message of the family channel its writer marks entered in error: the caller may use the
/// channel ([`family_channel`]) and the message is theirs (someone else's: 403, audited); one of
/// another patient, or none, answers like a missing one, audited.
pub fn family_message_in_error(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    message_id: &str,
) -> AppResult<crate::family::Message> {
    let (patient, _) = family_channel(conn, me, patient_id)?;
    let Some(message) = crate::family::find(conn, &patient.id, message_id)? else {
        return Err(missing(conn, me, Resource::FamilyMessage, message_id, "no such message"));
    };
    if message.author_id != me.id {
        audit::record(
            conn,
            me,
            Event::new(Action::Update, Resource::FamilyMessage, Some(&message.id), Some(&patient.id))
                .denied()
                .detail("another's message"),
        )?;
        return Err(AppError::forbidden(
            "取り消せるのは、ご自身が書いたメッセージだけです。",
            "Only the writer of a message may mark it entered in error.",
        )
        .keeping_changes());
    }
    Ok(message)
}

/// The joinings of a patient waiting for approval: the patient and the key person.
pub fn joining_requests(conn: &mut DbConn, me: &CurrentUser, patient_id: &str) -> AppResult<Patient> {
    Ok(patient(conn, me, patient_id, Need::ApproveJoining, Resource::JoiningApproval)?.0)
}

/// A joining the patient or key person decides ([`joining_requests`]): an invitation of this
/// patient waiting for approval; any other answers like a missing one, audited.
pub fn joining_to_decide(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    invitation_id: &str,
) -> AppResult<(Patient, invitations::Invitation)> {
    let patient = joining_requests(conn, me, patient_id)?;
    let found = invitations::find(conn, &patient.id, invitation_id)?
        .filter(|i| i.status == crate::vocab::InvitationStatus::AwaitingApproval);
    match found {
        Some(found) => Ok((patient, found)),
        None => Err(missing(conn, me, Resource::JoiningApproval, invitation_id, "no joining awaits approval")),
    }
}

/// The professional an approval lets join: still in service (409), and fitting the role and the
/// consent as when they accepted ([`joining`]).
pub fn approved_joiner(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient: &Patient,
    invitation: &invitations::Invitation,
) -> AppResult<User> {
    let invitee = invitation
        .responded_by
        .as_deref()
        .map(|id| crate::users::find_in_service(conn, id))
        .transpose()?
        .flatten()
        .ok_or_else(|| {
            AppError::conflict(
                "この方のアカウントは現在利用できません。承認できません。",
                "This person's account is no longer in service: the joining cannot be approved.",
            )
        })?;
    let add = TeamChange::Add { user: &invitee, role: invitation.role, is_lead: false };
    change_team(conn, me, TeamManager::LeadOrCareManager, &patient.id, &add)?;
    share_with_organization(conn, me, patient, employer(&invitee)?)?;
    Ok(invitee)
}

/// Who decides joinings for a patient: whoever reads the team (the patient and the key person
/// included).
pub fn joining_approval(conn: &mut DbConn, me: &CurrentUser, patient_id: &str) -> AppResult<Patient> {
    Ok(patient(conn, me, patient_id, Need::ReadTeam, Resource::JoiningApproval)?.0)
}

/// The patient a clinician asks emergency access to ([`request_emergency_access`]). A refusal
/// and a patient that does not exist are audited; the latter answers the usual 404.
pub fn emergency_access(conn: &mut DbConn, me: &CurrentUser, patient_id: &str) -> AppResult<Patient> {
    let found = patients::find(conn, patient_id)?;
    let refused = request_emergency_access(me).err();
    if refused.is_some() || found.is_none() {
        let patient = found.as_ref().map(|p| p.id.as_str());
        audit::record(
            conn,
            me,
            Event::new(Action::Execute, Resource::EmergencyAccess, Some(patient_id), patient).denied(),
        )?;
    }
    match (refused, found) {
        (Some(refusal), _) => Err(refusal.keeping_changes()),
        (None, Some(patient)) => Ok(patient),
        (None, None) => Err(AppError::hidden()),
    }
}

/// Reading an account: an inactive one only by its administrators (anyone else gets the 404 of
/// an account that does not exist). Answers whether the caller sees the account's details
/// ([`sees_account_details`]).
pub fn read_user(me: &CurrentUser, target: &User) -> AppResult<bool> {
    if !target.active && !administers(me, target) {
        return Err(AppError::not_found());
    }
    Ok(sees_account_details(me, target))
}

/// The ward and the person of a coordinator assignment: system administrators only (403), a
/// ward and an active account that exist (404), and the rules of [`assign_coordinator`].
pub fn coordinator_assignment(
    conn: &mut DbConn,
    me: &CurrentUser,
    ward_code: &str,
    user_id: &str,
) -> AppResult<(crate::wards::Ward, User)> {
    administer_system(me)?;
    let ward = crate::wards::find(conn, ward_code)?.ok_or_else(AppError::not_found)?;
    let user = crate::users::find_in_service(conn, user_id)?.ok_or_else(AppError::not_found)?;
    assign_coordinator(conn, me, ward_code, &user)?;
    Ok((ward, user))
}

/// An account an administrator acts on as a whole (offboarding, a second-factor reset), locked
/// so that a second request at the same moment waits and then finds nothing left to do:
/// administrators of its organisation and system administrators; a system administrator's only
/// by a system administrator. A colleague in the same organisation gets 403 for an active
/// account; anyone else the 404 of an account that does not exist.
fn account_to_administer(conn: &mut DbConn, me: &CurrentUser, user_id: &str) -> AppResult<User> {
    let user = crate::users::find_for_update(conn, user_id)?.ok_or_else(AppError::not_found)?;
    if !administers(me, &user) {
        return Err(if user.organization_id.is_some() && me.organization_id == user.organization_id && user.active {
            refuse()
        } else {
            AppError::not_found()
        });
    }
    if user.role == AccountRole::SystemAdmin && !me.is_system_admin() {
        return Err(refuse());
    }
    Ok(user)
}

/// The account an administrator offboards (the person leaves the organisation): administrators
/// of its organisation and system administrators; only system administrators offboard a system
/// administrator. Nobody offboards themselves (403, audited: it would end the caller's own
/// administration mid-request). A colleague in the same organisation gets 403 for an active
/// account; anyone else — an administrator of another organisation included — the 404 of an
/// account that does not exist, byte for byte, so ids tell nothing about other organisations.
pub fn offboarding(conn: &mut DbConn, me: &CurrentUser, user_id: &str) -> AppResult<User> {
    let user = account_to_administer(conn, me, user_id)?;
    if user.organization_id.is_none() {
        return Err(AppError::conflict(
            "このアカウント（ご本人・ご家族）はどの組織にも属していないため、退職処理はできません。",
            "This account (the patient's or family's) belongs to no organisation: there is nothing to offboard.",
        ));
    }
    if user.id == me.id {
        audit::record(
            conn,
            me,
            Event::new(Action::Update, Resource::User, Some(&user.id), None).denied().detail("offboard oneself"),
        )?;
        return Err(AppError::forbidden(
            "ご自身の退職処理はできません。組織の別の管理者に依頼してください。",
            "Nobody offboards themselves: ask another administrator of your organisation.",
        )
        .keeping_changes());
    }
    Ok(user)
}

/// The account whose two-factor sign-in an administrator resets (its owner lost the phone and
/// the recovery codes): as [`account_to_administer`] decides, and never one's own (403:
/// `DELETE /me/totp` is for that, with a code).
pub fn second_factor_reset(conn: &mut DbConn, me: &CurrentUser, user_id: &str) -> AppResult<User> {
    let user = account_to_administer(conn, me, user_id)?;
    if user.id == me.id {
        return Err(AppError::forbidden(
            "ご自身の二要素認証は、二要素認証のページ(DELETE /api/v1/me/totp)で認証アプリのコードを使って無効にしてください。",
            "Turn your own two-factor sign-in off with a code from your app (DELETE /api/v1/me/totp).",
        ));
    }
    Ok(user)
}

/// Creating an account in an organisation that exists (404), as [`create_user`] decides.
pub fn user_creation(
    conn: &mut DbConn,
    me: &CurrentUser,
    organization_id: &str,
    role: AccountRole,
    profession: Profession,
) -> AppResult<()> {
    let org = crate::orgs::find(conn, organization_id)?.ok_or_else(AppError::not_found)?;
    create_user(me, organization_id, org.kind, role, profession)
}

/// The account an edit is for (404 when there is none), once [`edit_user`] allows the edit.
pub fn user_edit(conn: &mut DbConn, me: &CurrentUser, user_id: &str, change: &AccountChange) -> AppResult<User> {
    let user = crate::users::find(conn, user_id)?.ok_or_else(AppError::not_found)?;
    let kind = match &user.organization_id {
        Some(id) => Some(crate::orgs::find(conn, id)?.ok_or_else(AppError::not_found)?.kind),
        None => None,
    };
    edit_user(conn, me, &user, kind, change)?;
    Ok(user)
}

// ---------------------------------------------------------------------------------------------
// Medications, allergies and the emergency card (`src/care/`).
//
// - Read like every datum of the patient (members, the ward's coordinators, break-glass); the
//   emergency card is what break-glass is for.
// - Written by any active member of the team, except two decisions:
//   - a reconciliation of the medication list is a pharmacist's (`reconcile_medications`);
//   - the DNAR decision on the emergency card is a physician's (`record_dnar`).
// - A medication or allergy id the caller may not reach answers like one that does not exist.

/// A versioned care record (medication, allergy, visit plan, appointment) the caller may reach
/// for `need`; one it may not reach answers like one that does not exist.
pub fn care_record<R: crate::care::Versioned>(
    conn: &mut DbConn,
    me: &CurrentUser,
    id: &str,
    need: Need,
) -> AppResult<R> {
    let Some(found) = R::find(conn, id)? else {
        return Err(missing(conn, me, R::RESOURCE, id, &format!("no such {}", R::NAME)));
    };
    patient(conn, me, found.patient_id(), need, R::RESOURCE)?;
    Ok(found)
}

/// What writing a care record asks beyond [`patient`] with `Need::Write`: for a record that
/// schedules members of the team (a visit plan, an appointment), [`schedule`]'s rule on whom it
/// named (`before`, none for a new one) and names.
pub fn care_record_write<R: crate::care::Versioned>(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    before: Option<&R>,
    entry: &R::Entry,
) -> AppResult<()> {
    let Some((field, after)) = R::scheduled(entry) else { return Ok(()) };
    let before = before.map(|r| r.scheduled_now(conn)).transpose()?;
    schedule(conn, me, patient_id, R::RESOURCE, before.as_deref(), &after, field)?;
    Ok(())
}

/// The patient whose medication list the caller marks as checked: pharmacists on the team
/// (other members: 403, audited).
pub fn reconcile_medications(conn: &mut DbConn, me: &CurrentUser, patient_id: &str) -> AppResult<Patient> {
    let (patient, _) = patient(conn, me, patient_id, Need::Write, Resource::Medication)?;
    if me.profession != Profession::Pharmacist {
        let event = Event::new(Action::Create, Resource::Medication, None, Some(&patient.id)).detail("reconciliation");
        let refusal = AppError::forbidden(
            "服薬リストの照合(確認済みの記録)ができるのは薬剤師のみです。",
            "Only a pharmacist may mark the medication list as reconciled.",
        );
        return Err(refused_after_patient(conn, me, event, refusal));
    }
    Ok(patient)
}

/// Recording or withdrawing the DNAR decision on the emergency card: physicians only (403,
/// audited). The rest of the card is written by any member of the team.
pub fn record_dnar(conn: &mut DbConn, me: &CurrentUser, patient_id: &str) -> AppResult<()> {
    if me.profession == Profession::Physician {
        return Ok(());
    }
    let event = Event::new(Action::Update, Resource::EmergencyCard, None, Some(patient_id)).detail("dnar");
    let refusal = AppError::forbidden(
        "DNAR(心肺蘇生を行わない)の指示を記録・取り消しできるのは医師のみです。",
        "Only a physician may record or withdraw a DNAR decision.",
    );
    Err(refused_after_patient(conn, me, event, refusal))
}

// The visit week (`care::visits`, `care::appointments`, `care::week`).
//
// - Read like every datum of the patient (members, the ward's coordinators, break-glass).
// - A member of the team writes their own visits: a plan whose visiting member they are, an
//   appointment they attend (before and after the change). The team's care manager (role
//   `care_manager`) and its lead enter anyone's, as they change the team (section 5): the week
//   is the care plan's. Others: 403, audited.
// - Whoever a plan or an appointment names must be an active member of the team (422 naming the
//   field): a visit by someone outside the team would show a stranger the patient's address.
// - A plan or appointment id the caller may not reach answers like one that does not exist.
// - `/me/week` shows the patients whose team the caller is on, in an organisation in service.

/// Whether `relation` schedules for anyone on the team, not only for the caller.
fn schedules_for_team(relation: &Relation) -> bool {
    matches!(relation, Relation::Member { role: TeamRole::CareManager, .. } | Relation::Member { is_lead: true, .. })
}

/// A plan or appointment of `patient_id` that named `before` (none for a new one) and names
/// `after` may be written by the caller: [`patient`] with `Need::Write`; everyone in `after` an
/// active member of the team (422 naming `field`); and the caller among both, unless they enter
/// the team's visits (403, audited).
fn schedule(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    resource_type: Resource,
    before: Option<&[String]>,
    after: &[String],
    field: &str,
) -> AppResult<Patient> {
    let (patient, relation) = patient(conn, me, patient_id, Need::Write, resource_type)?;
    for user_id in after {
        if team::active_member(conn, &patient.id, user_id)?.is_none() {
            return Err(AppError::field(
                field,
                "not_on_team",
                "指定された人はこの患者のケアチームの一員ではありません。",
                "Everyone named must be an active member of the patient's care team.",
            ));
        }
    }
    let mine = |people: &[String]| people.contains(&me.id);
    let own = mine(after) && before.is_none_or(mine);
    if !(schedules_for_team(&relation) || own) {
        let event = Event::new(Action::Update, resource_type, None, Some(&patient.id)).detail("schedule");
        let refusal = AppError::forbidden(
            "ほかの人の訪問予定を登録・変更できるのはケアマネジャーとチームのリーダーのみです。",
            "Only the care manager or the team's lead may enter someone else's visits.",
        );
        return Err(refused_after_patient(conn, me, event, refusal));
    }
    Ok(patient)
}

/// The patients of the caller's own week (`/me/week`), sorted by id.
pub fn my_week_patients(conn: &mut DbConn, me: &CurrentUser) -> AppResult<Vec<String>> {
    crate::sync::memberships_in_service(conn, &me.id)
}

// The change feed (`GET /changes` and its stream, `sync`).
//
// - The feed follows the patients whose care team the caller is on, in an organisation in
//   service (`Relation::Member`): the patients the app keeps for offline work. A coordinator's
//   ward (the caseload) and a break-glass read are read where they are, not followed.
// - Whoever stops following a patient (left the team, organisation out of service) gets a
//   tombstone (`access_revoked`) addressed to them alone; nobody else learns of it.
// - Every item names a patient: a page is audited, one read per patient, before it is answered.

/// The patients whose changes the caller's feed shows now, sorted by id.
pub fn feed_patients(conn: &mut DbConn, me: &CurrentUser) -> AppResult<Vec<String>> {
    crate::sync::memberships_in_service(conn, &me.id)
}
