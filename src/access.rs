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
    if crate::wards::is_coordinator(conn, &patient.ward_code, &me.id)? {
        return Ok(Some(Relation::Coordinator));
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

// ---------------------------------------------------------------------------------------------
// Resource loaders: one per kind of patient-scoped resource, used by every route that names one
// by id. A missing resource answers exactly like one of a patient outside the caller's scope
// (the 404 of `AppError::hidden`), and both attempts are audited, so an id tells nothing about
// whether it exists. A malformed path id reaches here as the nil UUID (`api::Id`) and takes the
// same way.

/// The audited miss of a resource that does not exist.
fn missing(conn: &mut DbConn, me: &CurrentUser, resource_type: &str, id: &str, what: &str) -> AppError {
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
        return Err(missing(conn, me, "note", note_id, "no such note"));
    };
    let (patient, relation) = patient(conn, me, &note.patient_id, need, "note")?;
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
        return Err(missing(conn, me, "discharge_case", case_id, "no such case"));
    };
    let (_, relation) = patient(conn, me, &case.patient_id, need, "discharge_case")?;
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
        return Err(missing(conn, me, "discharge_task", task_id, "no such task"));
    };
    patient(conn, me, &task.patient_id, need, "discharge_task")?;
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
        return Err(missing(conn, me, "flag", flag_id, "no such flag"));
    };
    let (patient, _) = patient(conn, me, &flag.patient_id, need, "flag")?;
    Ok((flag, patient))
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

/// Break-glass: clinicians only.
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
pub fn patient_for_new_case(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    identity: Option<PatientIdentity<'_>>,
) -> AppResult<(Patient, Option<team::Member>)> {
    let resource = "discharge_case";
    let Some(patient) = patients::find(conn, patient_id)? else {
        audit::record(
            conn,
            me,
            Event::new(Action::Read, resource, Some(patient_id), None).denied().detail("no such patient"),
        )?;
        return Err(AppError::hidden());
    };
    if let Some(member) = team::active_member(conn, &patient.id, &me.id)? {
        return Ok((patient, Some(member)));
    }
    let same_kana =
        |a: &str, b: &str| a.chars().filter(|c| !c.is_whitespace()).eq(b.chars().filter(|c| !c.is_whitespace()));
    let identified = identity.is_some_and(|i| {
        i.birth_date == patient.birth_date && same_kana(i.family_name_kana, &patient.family_name_kana)
    });
    if identified {
        return Ok((patient, None));
    }
    audit::record(
        conn,
        me,
        Event::new(Action::Read, resource, None, Some(&patient.id)).denied().detail("not identified"),
    )?;
    Err(AppError::hidden())
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
