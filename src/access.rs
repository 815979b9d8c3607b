//! THE access policy (DESIGN.md §5): every handler asks here, nothing else decides.
//!
//! Account administration: system administrators manage organisations and any account; an
//! organisation's administrators manage the accounts of their own organisation only; a person
//! may change their own name and language. Roles never grant patient data.

use crate::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::users::User;
use crate::vocab::AccountRole;

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

/// Watching e-mail delivery and putting given-up e-mails back in the queue: operators only.
pub fn operate_outbox(me: &CurrentUser) -> AppResult<()> {
    if me.is_system_admin() {
        Ok(())
    } else {
        Err(refuse())
    }
}

/// Changing an organisation's directory entry.
pub fn update_organization(me: &CurrentUser, organization_id: &str) -> AppResult<()> {
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

fn is_admin_of(me: &CurrentUser, organization_id: &str) -> bool {
    me.role == AccountRole::OrgAdmin && me.organization_id == organization_id
}

/// Creating an account with a role in an organisation. Only a system administrator makes
/// system administrators.
pub fn create_user(me: &CurrentUser, organization_id: &str, role: AccountRole) -> AppResult<()> {
    if me.is_system_admin() {
        return Ok(());
    }
    if is_admin_of(me, organization_id) && role != AccountRole::SystemAdmin {
        return Ok(());
    }
    Err(refuse())
}

/// What the caller may change about an account.
#[derive(Debug, PartialEq, Eq)]
pub enum UserEdit {
    /// Everything, including role and active state.
    Administer,
    /// Name, kana and language only.
    OwnProfile,
}

pub fn edit_user(me: &CurrentUser, target: &User) -> AppResult<UserEdit> {
    if manages_accounts_of(me, &target.organization_id) {
        // An organisation administrator cannot touch a system administrator's account.
        if !me.is_system_admin() && target.role == AccountRole::SystemAdmin.as_str() {
            return Err(refuse());
        }
        return Ok(UserEdit::Administer);
    }
    if me.id == target.id {
        return Ok(UserEdit::OwnProfile);
    }
    Err(refuse())
}

/// Granting a role through an edit.
pub fn grant_role(me: &CurrentUser, role: AccountRole) -> AppResult<()> {
    if role == AccountRole::SystemAdmin && !me.is_system_admin() {
        Err(refuse())
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Patient data (DESIGN.md §5).
//
// - An active member of the patient's care team reads and writes the patient's data.
// - A coordinating physician of the patient's ward reads (never writes).
// - A clinician with unexpired emergency access (break-glass) reads.
// - The team is changed by its lead, its care manager, or an org admin of an organisation that
//   has a member on the team (who may also see the team list, nothing else).
// - The access log ("who opened this record") is for the team lead.
// - Account roles grant nothing here: system and org admins see patient data only as members.
// - Anyone else gets the very same 404 as for a patient that does not exist, and the attempt
//   is audited.

use crate::audit::{self, Action, Event};
use crate::db::DbConn;
use crate::patients::{self, emergency, team, Patient};
use crate::vocab::TeamRole;

/// How the caller stands to a patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    Member { member_id: String, role: TeamRole, is_lead: bool },
    Coordinator,
    EmergencyAccess,
    AdminOfMemberOrganization,
}

/// What the caller wants to do with the patient's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    ReadTeam,
    ManageTeam,
    ReadAccessLog,
}

impl Relation {
    fn reads(&self) -> bool {
        matches!(self, Relation::Member { .. } | Relation::Coordinator | Relation::EmergencyAccess)
    }

    pub fn allows(&self, need: Need) -> bool {
        match need {
            Need::Read => self.reads(),
            Need::Write => matches!(self, Relation::Member { .. }),
            Need::ReadTeam => self.reads() || *self == Relation::AdminOfMemberOrganization,
            Need::ManageTeam => matches!(
                self,
                Relation::Member { is_lead: true, .. }
                    | Relation::Member { role: TeamRole::CareManager, .. }
                    | Relation::AdminOfMemberOrganization
            ),
            Need::ReadAccessLog => matches!(self, Relation::Member { is_lead: true, .. }),
        }
    }
}

/// The caller's relation to a patient, if any.
pub fn relation(conn: &mut DbConn, me: &CurrentUser, patient: &Patient) -> AppResult<Option<Relation>> {
    if let Some(m) = team::active_member(conn, &patient.id, &me.id)? {
        return Ok(Some(Relation::Member { member_id: m.id, role: TeamRole::from_db(&m.role)?, is_lead: m.is_lead }));
    }
    if let Some(assigned_at) = crate::wards::coordinator_since(conn, &patient.ward_code, &me.id)? {
        // A coordinator assigned after the patient revoked consent would be a new recipient.
        let revoked_at = patients::consents::revoked_at(conn, &patient.id)?;
        if revoked_at.is_none_or(|r| assigned_at <= r) {
            return Ok(Some(Relation::Coordinator));
        }
    }
    if emergency::active_grant(conn, &patient.id, &me.id)?.is_some() {
        return Ok(Some(Relation::EmergencyAccess));
    }
    if me.role == AccountRole::OrgAdmin && team::organization_on_team(conn, &patient.id, &me.organization_id)? {
        return Ok(Some(Relation::AdminOfMemberOrganization));
    }
    Ok(None)
}

/// Decides a patient-scoped request. On refusal the attempt is audited (the audit record is
/// kept although the request fails) and the answer is 404 — identical to a patient that does
/// not exist — unless the caller may read the patient anyway, in which case it is 403.
pub fn patient(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    need: Need,
    resource_type: &str,
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
        Some(r) if r.allows(need) => Ok((patient, r)),
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

/// Registering a patient: care managers and hospital staff (DESIGN.md §5).
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

/// Ward coordinator assignment and the audit query: system administrators.
pub fn administer_system(me: &CurrentUser) -> AppResult<()> {
    if me.is_system_admin() {
        Ok(())
    } else {
        Err(refuse())
    }
}

// ---------------------------------------------------------------------------------------------
// Discharge coordination (DESIGN.md §4, §5).
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

/// The physician's information-sharing note (在宅医療情報連携加算, DOMAIN.md) records a
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

/// The patient of a case about to be opened, and the caller's current membership, if any.
///
/// A caller not on the team must identify the patient, and identification is throttled
/// (`patients::identification`): every attempt first reserves a failure on the caller's budget
/// and on the requested id's budget — in this transaction, by upsert, so concurrent guesses
/// queue on the counter rows — and only a correct identification gives it back. Past either
/// budget the answer is 429 before anything is compared, also for the right birth date. The
/// counters are kept for the id as requested, and misses on ids of no patient count against
/// the caller too, so neither a 404 nor a 429 tells whether a patient exists. The lead of a
/// patient whose identification keeps failing is told by e-mail, once per window.
pub fn patient_for_new_case(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    identity: Option<PatientIdentity<'_>>,
    mailer: &crate::mail::Mailer,
    label: &str,
) -> AppResult<(Patient, Option<team::Member>)> {
    use crate::patients::identification as ident;
    let resource = "discharge_case";
    let found = patients::find(conn, patient_id)?;
    if let Some(patient) = found.as_ref() {
        if let Some(member) = team::active_member(conn, &patient.id, &me.id)? {
            return Ok((patient.clone(), Some(member)));
        }
    }
    let found_id = found.as_ref().map(|p| p.id.clone());
    let denied = |conn: &mut DbConn, detail: &str| match found_id.as_deref() {
        Some(id) => audit::record(conn, me, Event::new(Action::Read, resource, None, Some(id)).denied().detail(detail)),
        None => {
            audit::record(conn, me, Event::new(Action::Read, resource, Some(patient_id), None).denied().detail(detail))
        }
    };
    let at = crate::db::now();
    let caller = ident::reserve(conn, &ident::caller_key(&me.id), ident::CALLER_WINDOW)?;
    if caller.over(ident::CALLER_MAX_FAILURES) {
        denied(conn, "identification throttled")?;
        return Err(AppError::too_many_requests(caller.retry_after(at)).keeping_changes());
    }
    let requested = ident::reserve(conn, &ident::patient_key(patient_id), ident::PATIENT_WINDOW)?;
    if requested.over(ident::PATIENT_MAX_FAILURES) {
        denied(conn, "identification throttled")?;
        return Err(AppError::too_many_requests(requested.retry_after(at)).keeping_changes());
    }
    let same_kana =
        |a: &str, b: &str| a.chars().filter(|c| !c.is_whitespace()).eq(b.chars().filter(|c| !c.is_whitespace()));
    match (found, identity) {
        (Some(patient), Some(i))
            if i.birth_date == patient.birth_date && same_kana(i.family_name_kana, &patient.family_name_kana) =>
        {
            ident::release(conn, &caller)?;
            ident::release(conn, &requested)?;
            // Joining the team shares the record with the caller's hospital.
            share_with_organization(conn, me, &patient, &me.organization_id)?;
            Ok((patient, None))
        }
        (Some(patient), _) => {
            denied(conn, "not identified")?;
            ident::notify_lead(conn, mailer, label, &patient, &requested)?;
            Err(AppError::hidden())
        }
        (None, _) => {
            denied(conn, "no such patient")?;
            Err(AppError::hidden())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Consent and its revocation (本人同意; 個人情報保護法 — APPI — art. 27: consent to provision to
// third parties). See README "Consent and its revocation".
//
// - The record is shared across organisations only with the patient's consent. A revocation
//   stops *further* provision from that moment; what was already shared stays in the record,
//   which the team must keep (medical and care records have retention duties, and notes are
//   never deleted — DESIGN.md).
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
        Event::new(Action::Create, "care_team_member", None, Some(&patient.id)).denied().detail("consent revoked"),
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
        Event::new(Action::Read, "fhir", Some(&patient.id), Some(&patient.id)).denied().detail("consent revoked"),
    )?;
    Err(AppError::conflict(
        "この患者さんは情報共有への同意を撤回しているため、記録を外部のシステムへ書き出せません。\
         記録はこのサービスの中で引き続き閲覧できます。",
        "This patient has revoked consent to sharing, so the record cannot be exported to other systems. \
         It can still be read in this service.",
    )
    .keeping_changes())
}

/// Changing a case's dates and moving it through its life: the case's hospital, through its
/// staff on the team. Others who may write the patient's data get 403, and the refused attempt
/// is audited.
pub fn manage_discharge_case(
    conn: &mut DbConn,
    me: &CurrentUser,
    relation: &Relation,
    case: &crate::discharge::cases::Case,
) -> AppResult<()> {
    if matches!(relation, Relation::Member { .. }) && me.organization_id == case.hospital_id {
        return Ok(());
    }
    audit::record(
        conn,
        me,
        Event::new(Action::Update, "discharge_case", Some(&case.id), Some(&case.patient_id)).denied(),
    )?;
    Err(AppError::forbidden(
        "入退院調整の日程と状態を変更できるのは、担当病院のケアチームメンバーです。",
        "Only the case's hospital staff on the care team change its dates and status.",
    )
    .keeping_changes())
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
pub fn read_city_summary(me: &CurrentUser, organization_kind: &str) -> AppResult<()> {
    if me.is_system_admin() || organization_kind == crate::vocab::OrgKind::CityWardOffice.as_str() {
        Ok(())
    } else {
        Err(refuse())
    }
}
