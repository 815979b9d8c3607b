//! The fixed texts of every e-mail, Japanese and English, embedded in the binary.
//!
//! Each template is a file `templates/<kind>.<locale>.txt`: the first line is the subject, then
//! a blank line, then the body. `{name}` marks a parameter. A subject may only use parameters
//! whose values come from a closed vocabulary (the severity), never text a person typed; body
//! parameters are cut to one line, so no value can add lines or headers. Values are inserted in
//! one pass and never read again, so a value that looks like a placeholder stays as it is.
//!
//! The e-mail carries no clinical content and nothing a person typed: only the fixed text of its
//! template, which patient (as the patients module labels them for e-mail, by default initials:
//! the one configured exception), what kind of event, when, the service's own links, and people
//! described by profession and kind of organisation (「病院の看護師」, never a name, nor the
//! organisation's name). A task is named by its template's fixed name, or generically. Nobody can
//! so plant a link or clinical details in an e-mail sent to a whole care team.

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};

use crate::error::{AppError, AppResult};
use crate::vocab::{Locale, OrgKind, Profession};

/// How urgent a deterioration flag is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Urgent,
    Emergency,
}

impl Severity {
    fn label(self, locale: Locale) -> &'static str {
        match (self, locale) {
            (Severity::Urgent, Locale::Ja) => "至急",
            (Severity::Urgent, Locale::En) => "Urgent",
            (Severity::Emergency, Locale::Ja) => "緊急",
            (Severity::Emergency, Locale::En) => "Emergency",
        }
    }
}

/// A person as an e-mail describes them: by profession and the kind of their organisation, never
/// by a name someone typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Described {
    pub profession: Profession,
    /// `None` for the patient and their family, who belong to no organisation.
    pub organization: Option<OrgKind>,
}

pub fn profession_label(p: Profession, locale: Locale) -> &'static str {
    use Profession::*;
    match (p, locale) {
        (Physician, Locale::Ja) => "医師",
        (Physician, Locale::En) => "physician",
        (Nurse, Locale::Ja) => "看護師",
        (Nurse, Locale::En) => "nurse",
        (Pharmacist, Locale::Ja) => "薬剤師",
        (Pharmacist, Locale::En) => "pharmacist",
        (CareManager, Locale::Ja) => "ケアマネジャー",
        (CareManager, Locale::En) => "care manager",
        (Dentist, Locale::Ja) => "歯科医師",
        (Dentist, Locale::En) => "dentist",
        (Therapist, Locale::Ja) => "リハビリ職",
        (Therapist, Locale::En) => "therapist",
        (Helper, Locale::Ja) => "ホームヘルパー",
        (Helper, Locale::En) => "home helper",
        (SocialWorker, Locale::Ja) => "社会福祉士・相談員",
        (SocialWorker, Locale::En) => "social worker",
        (Other, Locale::Ja) => "職員",
        (Other, Locale::En) => "staff member",
        (Layperson, Locale::Ja) => "ご本人・ご家族",
        (Layperson, Locale::En) => "the patient or their family",
    }
}

fn org_kind_label(k: OrgKind, locale: Locale) -> &'static str {
    use OrgKind::*;
    match (k, locale) {
        (Clinic, Locale::Ja) => "診療所",
        (Clinic, Locale::En) => "clinic",
        (Hospital, Locale::Ja) => "病院",
        (Hospital, Locale::En) => "hospital",
        (VisitingNurseStation, Locale::Ja) => "訪問看護ステーション",
        (VisitingNurseStation, Locale::En) => "visiting nurse station",
        (Pharmacy, Locale::Ja) => "薬局",
        (Pharmacy, Locale::En) => "pharmacy",
        (DentalClinic, Locale::Ja) => "歯科診療所",
        (DentalClinic, Locale::En) => "dental clinic",
        (CareManagementOffice, Locale::Ja) => "居宅介護支援事業所",
        (CareManagementOffice, Locale::En) => "care-management office",
        (CommunitySupportCenter, Locale::Ja) => "地域包括支援センター",
        (CommunitySupportCenter, Locale::En) => "community support center",
        (CityWardOffice, Locale::Ja) => "区役所",
        (CityWardOffice, Locale::En) => "ward office",
    }
}

impl Described {
    fn label(self, locale: Locale) -> String {
        let p = profession_label(self.profession, locale);
        match (self.organization.map(|o| org_kind_label(o, locale)), locale) {
            (Some(o), Locale::Ja) => format!("{o}の{p}"),
            (Some(o), Locale::En) => format!("a {p} at a {o}"),
            (None, Locale::Ja) => "ご本人・ご家族".into(),
            (None, Locale::En) => "the patient or their family".into(),
        }
    }
}

/// What was done to a care team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamChange {
    Added,
    AddedAsLead,
    Ended,
    RoleChanged,
    MadeLead,
    LeadCleared,
}

impl TeamChange {
    fn label(self, locale: Locale) -> &'static str {
        use TeamChange::*;
        match (self, locale) {
            (Added, Locale::Ja) => "チームへの追加",
            (Added, Locale::En) => "added to the team",
            (AddedAsLead, Locale::Ja) => "リーダーとしてチームへ追加",
            (AddedAsLead, Locale::En) => "added to the team as its lead",
            (Ended, Locale::Ja) => "チームからの離脱（担当終了）",
            (Ended, Locale::En) => "membership ended",
            (RoleChanged, Locale::Ja) => "チーム内の役割の変更",
            (RoleChanged, Locale::En) => "role on the team changed",
            (MadeLead, Locale::Ja) => "リーダーの交代",
            (MadeLead, Locale::En) => "made the team's lead",
            (LeadCleared, Locale::Ja) => "リーダーの解除",
            (LeadCleared, Locale::En) => "no longer the team's lead",
        }
    }
}

/// How an e-mail names a task: a task made from a template by the template's fixed name (data
/// the operators maintain, never typed through the API), any other task generically, because
/// its title is typed and may hold clinical details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskName {
    Template { ja: String, en: String },
    Custom,
}

impl TaskName {
    fn label(&self, locale: Locale) -> String {
        match (self, locale) {
            (TaskName::Template { ja, .. }, Locale::Ja) => ja.clone(),
            (TaskName::Template { en, .. }, Locale::En) => en.clone(),
            (TaskName::Custom, Locale::Ja) => "タスク（内容はアプリで確認してください）".into(),
            (TaskName::Custom, Locale::En) => "a task (read it in the app)".into(),
        }
    }
}

/// One task of a digest: its name, the patient's e-mail label, its deadline (a JST day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestTask {
    pub task: TaskName,
    pub patient: String,
    pub due_on: NaiveDate,
    pub overdue: bool,
}

/// Everything the service e-mails about. `patient` is the label the patients module chooses
/// for e-mail (by default the initials), never a full name; ids are the records' UUIDs.
#[derive(Debug, Clone)]
pub enum Notice {
    FlagRaised {
        severity: Severity,
        raised_at: NaiveDateTime,
        patient: String,
        flag_id: String,
    },
    FlagEscalated {
        severity: Severity,
        raised_at: NaiveDateTime,
        minutes_unacknowledged: i64,
        patient: String,
        flag_id: String,
    },
    EmergencyAccess {
        accessor: Described,
        accessed_at: NaiveDateTime,
        patient: String,
        patient_id: String,
    },
    TaskAssigned {
        task: TaskName,
        due_at: Option<NaiveDateTime>,
        patient: String,
        task_id: String,
    },
    CaseOpened {
        planned_discharge_on: Option<NaiveDate>,
        patient: String,
        case_id: String,
    },
    PatientDischarged {
        discharged_on: NaiveDate,
        patient: String,
        patient_id: String,
    },
    /// Someone off the team keeps failing to identify the patient (for the team lead). Nothing
    /// the guesser typed or who they are: the access log tells the lead that.
    IdentificationFailures {
        since: NaiveDateTime,
        patient: String,
        patient_id: String,
    },
    /// The daily digest of one person's overdue and due-today discharge tasks.
    OverdueDigest {
        as_of: NaiveDate,
        overdue_tasks: i64,
        due_today: i64,
        /// One line per task, overdue first: a template's fixed name, never a typed title.
        tasks: Vec<DigestTask>,
    },
    /// Sign-in to the recipient's account was locked after repeated failures.
    AccountLocked {
        locked_at: NaiveDateTime,
        minutes: i64,
    },
    /// A link to set a new password, asked for by someone who gave the account's address. The
    /// token is random (never typed) and URL-safe.
    PasswordReset {
        token: String,
        expires_at: NaiveDateTime,
    },
    /// An invitation into a patient's care team, with the one-time link to answer it. The
    /// patient is named by the e-mail label only; nothing typed by a person is in it.
    TeamInvitation {
        token: String,
        expires_at: NaiveDateTime,
        role: crate::vocab::TeamRole,
        inviter: Described,
        patient: String,
    },
    /// An invitation into a patient's circle for the patient, a family member or the key person,
    /// with the one-time link to take it up. Nothing typed by a person is in it.
    ParticipantInvitation {
        token: String,
        expires_at: NaiveDateTime,
        role: crate::vocab::ParticipantRole,
        inviter: Described,
        patient: String,
    },
    /// A professional waits for the patient's (or key person's) approval to join the team: the
    /// approvers are told.
    JoiningAwaitsApproval {
        member: Described,
        role: crate::vocab::TeamRole,
        patient: String,
        patient_id: String,
    },
    /// The patient or the key person refused a joining: the lead is told.
    JoiningRefused {
        member: Described,
        role: crate::vocab::TeamRole,
        decided_at: NaiveDateTime,
        patient: String,
        patient_id: String,
    },
    /// A message in the family channel: the participants are told of a professional's, the
    /// team's lead (or care managers) of a family member's. Not its text: a person typed it.
    FamilyMessage {
        author: Described,
        posted_at: NaiveDateTime,
        patient: String,
        patient_id: String,
    },
    /// Someone other than the lead changed the care team: the lead is told.
    TeamChanged {
        change: TeamChange,
        member: Described,
        actor: Described,
        changed_at: NaiveDateTime,
        patient: String,
        patient_id: String,
    },
    /// An organisation with people on the team was deactivated: they lost access and alerts.
    OrganizationDeactivated {
        organization: OrgKind,
        members: i64,
        deactivated_at: NaiveDateTime,
        patient: String,
        patient_id: String,
    },
    /// A member left their organisation and was offboarded: their membership ended and their
    /// open discharge tasks became unassigned. The team's lead is told (or, when the member was
    /// the lead, the team's other care managers). Nothing the administrator typed (the reason).
    MemberOffboarded {
        member: Described,
        was_lead: bool,
        tasks_unassigned: i64,
        offboarded_at: NaiveDateTime,
        patient: String,
        patient_id: String,
    },
    /// A ward has a new coordinating physician: the ward's other coordinators are told. The
    /// ward's names come from the wards table (reference data), not from a person.
    CoordinatorAssigned {
        ward_name: String,
        ward_name_en: String,
        coordinator: Described,
        actor: Described,
        assigned_at: NaiveDateTime,
    },
    /// A webhook endpoint of the recipient's organisation kept failing and was disabled (for
    /// the organisation's administrators). Not its URL: an administrator typed that.
    WebhookDisabled {
        failures: i64,
        disabled_at: NaiveDateTime,
        endpoint_id: String,
    },
    /// An administrator of the person's organisation reset their two-factor sign-in (a lost
    /// phone): its recovery codes and every session ended. Named by profession only.
    SecondFactorReset {
        admin: Described,
        reset_at: NaiveDateTime,
    },
    /// A new account made without a password: the link to set one. The token is random and
    /// URL-safe; nothing an administrator typed is in it.
    AccountCreated {
        token: String,
        expires_at: NaiveDateTime,
    },
    /// A recovery code signed in to the account in place of the authenticator app's code. If
    /// the owner did not, someone has their password and a code.
    RecoveryCodeUsed {
        used_at: NaiveDateTime,
        remaining: i64,
    },
    /// An operator's check that delivery works.
    Test,
}

impl Notice {
    /// The `kind` stored with the e-mail.
    pub fn kind(&self) -> MailKind {
        match self {
            Notice::FlagRaised { .. } => MailKind::FlagRaised,
            Notice::FlagEscalated { .. } => MailKind::FlagEscalated,
            Notice::EmergencyAccess { .. } => MailKind::EmergencyAccess,
            Notice::TaskAssigned { .. } => MailKind::TaskAssigned,
            Notice::CaseOpened { .. } => MailKind::CaseOpened,
            Notice::PatientDischarged { .. } => MailKind::PatientDischarged,
            Notice::IdentificationFailures { .. } => MailKind::IdentificationFailures,
            Notice::OverdueDigest { .. } => MailKind::OverdueDigest,
            Notice::AccountLocked { .. } => MailKind::AccountLocked,
            Notice::PasswordReset { .. } => MailKind::PasswordReset,
            Notice::TeamChanged { .. } => MailKind::TeamChanged,
            Notice::TeamInvitation { .. } => MailKind::TeamInvitation,
            Notice::ParticipantInvitation { .. } => MailKind::ParticipantInvitation,
            Notice::JoiningAwaitsApproval { .. } => MailKind::JoiningAwaitsApproval,
            Notice::JoiningRefused { .. } => MailKind::JoiningRefused,
            Notice::FamilyMessage { .. } => MailKind::FamilyMessage,
            Notice::OrganizationDeactivated { .. } => MailKind::OrganizationDeactivated,
            Notice::MemberOffboarded { .. } => MailKind::MemberOffboarded,
            Notice::CoordinatorAssigned { .. } => MailKind::CoordinatorAssigned,
            Notice::WebhookDisabled { .. } => MailKind::WebhookDisabled,
            Notice::SecondFactorReset { .. } => MailKind::SecondFactorReset,
            Notice::AccountCreated { .. } => MailKind::AccountCreated,
            Notice::RecoveryCodeUsed { .. } => MailKind::RecoveryCodeUsed,
            Notice::Test => MailKind::Test,
        }
    }
}

crate::text_enum! {
    /// The kinds of e-mail, as stored; one template pair (Japanese, English) each.
    MailKind {
        FlagRaised => "flag_raised",
        FlagEscalated => "flag_escalated",
        EmergencyAccess => "emergency_access",
        TaskAssigned => "task_assigned",
        CaseOpened => "case_opened",
        PatientDischarged => "patient_discharged",
        IdentificationFailures => "identification_failures",
        OverdueDigest => "overdue_digest",
        AccountLocked => "account_locked",
        PasswordReset => "password_reset",
        TeamChanged => "team_changed",
        TeamInvitation => "team_invitation",
        ParticipantInvitation => "participant_invitation",
        JoiningAwaitsApproval => "joining_awaits_approval",
        JoiningRefused => "joining_refused",
        FamilyMessage => "family_message",
        OrganizationDeactivated => "organization_deactivated",
        MemberOffboarded => "member_offboarded",
        CoordinatorAssigned => "coordinator_assigned",
        WebhookDisabled => "webhook_disabled",
        SecondFactorReset => "second_factor_reset",
        AccountCreated => "account_created",
        RecoveryCodeUsed => "recovery_code_used",
        Test => "test",
        // A partner system's event on the webhook channel: no template, the row's body is the
        // event itself (`webhooks::events`).
        Webhook => "webhook",
    }
}

fn template(kind: MailKind, locale: Locale) -> &'static str {
    match (kind, locale) {
        (MailKind::FlagRaised, Locale::Ja) => include_str!("templates/flag_raised.ja.txt"),
        (MailKind::FlagRaised, Locale::En) => include_str!("templates/flag_raised.en.txt"),
        (MailKind::FlagEscalated, Locale::Ja) => include_str!("templates/flag_escalated.ja.txt"),
        (MailKind::FlagEscalated, Locale::En) => include_str!("templates/flag_escalated.en.txt"),
        (MailKind::EmergencyAccess, Locale::Ja) => include_str!("templates/emergency_access.ja.txt"),
        (MailKind::EmergencyAccess, Locale::En) => include_str!("templates/emergency_access.en.txt"),
        (MailKind::TaskAssigned, Locale::Ja) => include_str!("templates/task_assigned.ja.txt"),
        (MailKind::TaskAssigned, Locale::En) => include_str!("templates/task_assigned.en.txt"),
        (MailKind::CaseOpened, Locale::Ja) => include_str!("templates/case_opened.ja.txt"),
        (MailKind::CaseOpened, Locale::En) => include_str!("templates/case_opened.en.txt"),
        (MailKind::PatientDischarged, Locale::Ja) => include_str!("templates/patient_discharged.ja.txt"),
        (MailKind::PatientDischarged, Locale::En) => include_str!("templates/patient_discharged.en.txt"),
        (MailKind::IdentificationFailures, Locale::Ja) => include_str!("templates/identification_failures.ja.txt"),
        (MailKind::IdentificationFailures, Locale::En) => include_str!("templates/identification_failures.en.txt"),
        (MailKind::OverdueDigest, Locale::Ja) => include_str!("templates/overdue_digest.ja.txt"),
        (MailKind::OverdueDigest, Locale::En) => include_str!("templates/overdue_digest.en.txt"),
        (MailKind::AccountLocked, Locale::Ja) => include_str!("templates/account_locked.ja.txt"),
        (MailKind::AccountLocked, Locale::En) => include_str!("templates/account_locked.en.txt"),
        (MailKind::PasswordReset, Locale::Ja) => include_str!("templates/password_reset.ja.txt"),
        (MailKind::PasswordReset, Locale::En) => include_str!("templates/password_reset.en.txt"),
        (MailKind::TeamChanged, Locale::Ja) => include_str!("templates/team_changed.ja.txt"),
        (MailKind::TeamChanged, Locale::En) => include_str!("templates/team_changed.en.txt"),
        (MailKind::TeamInvitation, Locale::Ja) => include_str!("templates/team_invitation.ja.txt"),
        (MailKind::TeamInvitation, Locale::En) => include_str!("templates/team_invitation.en.txt"),
        (MailKind::ParticipantInvitation, Locale::Ja) => include_str!("templates/participant_invitation.ja.txt"),
        (MailKind::ParticipantInvitation, Locale::En) => include_str!("templates/participant_invitation.en.txt"),
        (MailKind::JoiningAwaitsApproval, Locale::Ja) => include_str!("templates/joining_awaits_approval.ja.txt"),
        (MailKind::JoiningAwaitsApproval, Locale::En) => include_str!("templates/joining_awaits_approval.en.txt"),
        (MailKind::JoiningRefused, Locale::Ja) => include_str!("templates/joining_refused.ja.txt"),
        (MailKind::JoiningRefused, Locale::En) => include_str!("templates/joining_refused.en.txt"),
        (MailKind::FamilyMessage, Locale::Ja) => include_str!("templates/family_message.ja.txt"),
        (MailKind::FamilyMessage, Locale::En) => include_str!("templates/family_message.en.txt"),
        (MailKind::OrganizationDeactivated, Locale::Ja) => include_str!("templates/organization_deactivated.ja.txt"),
        (MailKind::OrganizationDeactivated, Locale::En) => include_str!("templates/organization_deactivated.en.txt"),
        (MailKind::MemberOffboarded, Locale::Ja) => include_str!("templates/member_offboarded.ja.txt"),
        (MailKind::MemberOffboarded, Locale::En) => include_str!("templates/member_offboarded.en.txt"),
        (MailKind::CoordinatorAssigned, Locale::Ja) => include_str!("templates/coordinator_assigned.ja.txt"),
        (MailKind::CoordinatorAssigned, Locale::En) => include_str!("templates/coordinator_assigned.en.txt"),
        (MailKind::WebhookDisabled, Locale::Ja) => include_str!("templates/webhook_disabled.ja.txt"),
        (MailKind::WebhookDisabled, Locale::En) => include_str!("templates/webhook_disabled.en.txt"),
        (MailKind::SecondFactorReset, Locale::Ja) => include_str!("templates/second_factor_reset.ja.txt"),
        (MailKind::SecondFactorReset, Locale::En) => include_str!("templates/second_factor_reset.en.txt"),
        (MailKind::AccountCreated, Locale::Ja) => include_str!("templates/account_created.ja.txt"),
        (MailKind::AccountCreated, Locale::En) => include_str!("templates/account_created.en.txt"),
        (MailKind::RecoveryCodeUsed, Locale::Ja) => include_str!("templates/recovery_code_used.ja.txt"),
        (MailKind::RecoveryCodeUsed, Locale::En) => include_str!("templates/recovery_code_used.en.txt"),
        (MailKind::Test, Locale::Ja) => include_str!("templates/test.ja.txt"),
        (MailKind::Test, Locale::En) => include_str!("templates/test.en.txt"),
        // Never rendered: no notice has this kind.
        (MailKind::Webhook, _) => "",
    }
}

const FOOTER_JA: &str = "\n--\n\
このメールは在宅療養連携ノートから自動で送信しています。返信はできません。\n\
個人情報保護のため、診療の内容はメールに記載していません。アプリで確認してください。\n";

const FOOTER_EN: &str = "\n--\n\
This message was sent automatically by Renkei Note (在宅療養連携ノート). Replies are not read.\n\
To protect patients' privacy, e-mails carry no clinical details. Please read them in the app.\n";

/// Parameters a subject may use: their values come from closed vocabularies only.
const SUBJECT_PARAMETERS: &[&str] = &["severity"];

/// Longest value a body parameter keeps (longer ones are cut with an ellipsis).
const MAX_PARAMETER_CHARS: usize = 120;

/// An e-mail's text, made only by [`render`], so that every subject comes from a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    kind: MailKind,
    locale: Locale,
    subject: String,
    body: String,
}

impl Rendered {
    pub fn kind(&self) -> MailKind {
        self.kind
    }
    pub fn locale(&self) -> Locale {
        self.locale
    }
    pub fn subject(&self) -> &str {
        &self.subject
    }
    pub fn body(&self) -> &str {
        &self.body
    }
}

/// Japan has no daylight saving time: UTC+9 all year.
fn jst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).unwrap_or_else(|| Utc.fix())
}

pub fn format_time(t: NaiveDateTime, locale: Locale) -> String {
    let local = jst().from_utc_datetime(&t);
    match locale {
        Locale::Ja => local.format("%Y年%-m月%-d日 %H:%M（日本時間）").to_string(),
        Locale::En => local.format("%-d %b %Y, %H:%M JST").to_string(),
    }
}

fn format_date(d: NaiveDate, locale: Locale) -> String {
    match locale {
        Locale::Ja => d.format("%Y年%-m月%-d日").to_string(),
        Locale::En => d.format("%-d %b %Y").to_string(),
    }
}

fn not_set(locale: Locale) -> &'static str {
    match locale {
        Locale::Ja => "未定",
        Locale::En => "not set",
    }
}

/// A value cut to one line: control characters and line separators become spaces, and long
/// values are shortened.
pub fn one_line(value: &str, max_chars: usize) -> String {
    let cleaned: String =
        value.chars().map(|c| if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') { ' ' } else { c }).collect();
    let cleaned = cleaned.trim();
    if cleaned.chars().count() > max_chars {
        let mut cut: String = cleaned.chars().take(max_chars.saturating_sub(1)).collect();
        cut.push('…');
        cut
    } else {
        cleaned.to_string()
    }
}

/// A link into the app for a record; the id must be a UUID so that nothing else reaches the URL.
fn link(public_url: &str, path: &str, id: &str) -> AppResult<String> {
    let id = uuid::Uuid::parse_str(id).map_err(|_| AppError::internal(format!("e-mail link to a bad id: {id:?}")))?;
    Ok(format!("{public_url}/{path}/{}", id.hyphenated()))
}

/// A push message: what reaches a phone's lock screen. The e-mail's subject (fixed text and the
/// severity only), its link and what kind of event it is; no patient label, nothing a person
/// typed. `None` for the kinds that only go out by e-mail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PushMessage {
    pub kind: MailKind,
    pub title: String,
    pub url: String,
    /// The flag or task the alert is about.
    pub id: String,
    /// An emergency flag: the app shows it as such, and the push service wakes the device.
    pub emergency: bool,
}

pub fn push_message(notice: &Notice, rendered: &Rendered, public_url: &str) -> AppResult<Option<PushMessage>> {
    let (path, id, emergency) = match notice {
        Notice::FlagRaised { severity, flag_id, .. } | Notice::FlagEscalated { severity, flag_id, .. } => {
            ("flags", flag_id, *severity == Severity::Emergency)
        }
        Notice::TaskAssigned { task_id, .. } => ("tasks", task_id, false),
        _ => return Ok(None),
    };
    Ok(Some(PushMessage {
        kind: notice.kind(),
        title: rendered.subject().to_string(),
        url: link(public_url, path, id)?,
        id: id.clone(),
        emergency,
    }))
}

/// Renders a notice in a language. The recipient is greeted by the template's fixed words, not by
/// name: a name is typed text too.
pub fn render(notice: &Notice, locale: Locale, public_url: &str) -> AppResult<Rendered> {
    let kind = notice.kind();
    let mut params: Vec<(&str, String)> = Vec::new();
    let text = |v: &str| one_line(v, MAX_PARAMETER_CHARS);
    match notice {
        Notice::FlagRaised { severity, raised_at, patient, flag_id } => {
            params.push(("severity", severity.label(locale).into()));
            params.push(("raised_at", format_time(*raised_at, locale)));
            params.push(("patient", text(patient)));
            params.push(("link", link(public_url, "flags", flag_id)?));
        }
        Notice::FlagEscalated { severity, raised_at, minutes_unacknowledged, patient, flag_id } => {
            params.push(("severity", severity.label(locale).into()));
            params.push(("raised_at", format_time(*raised_at, locale)));
            params.push(("minutes", (*minutes_unacknowledged).max(0).to_string()));
            params.push(("patient", text(patient)));
            params.push(("link", link(public_url, "flags", flag_id)?));
        }
        Notice::EmergencyAccess { accessor, accessed_at, patient, patient_id } => {
            params.push(("accessor", accessor.label(locale)));
            params.push(("accessed_at", format_time(*accessed_at, locale)));
            params.push(("patient", text(patient)));
            params.push(("link", format!("{}/access-log", link(public_url, "patients", patient_id)?)));
        }
        Notice::TaskAssigned { task, due_at, patient, task_id } => {
            params.push(("title", text(&task.label(locale))));
            params.push(("due", due_at.map(|t| format_time(t, locale)).unwrap_or_else(|| not_set(locale).into())));
            params.push(("patient", text(patient)));
            params.push(("link", link(public_url, "tasks", task_id)?));
        }
        Notice::CaseOpened { planned_discharge_on, patient, case_id } => {
            params.push((
                "planned_discharge_on",
                planned_discharge_on.map(|d| format_date(d, locale)).unwrap_or_else(|| not_set(locale).into()),
            ));
            params.push(("patient", text(patient)));
            params.push(("link", link(public_url, "discharge-cases", case_id)?));
        }
        Notice::PatientDischarged { discharged_on, patient, patient_id } => {
            params.push(("discharged_on", format_date(*discharged_on, locale)));
            params.push(("patient", text(patient)));
            params.push(("link", link(public_url, "patients", patient_id)?));
        }
        Notice::IdentificationFailures { since, patient, patient_id } => {
            params.push(("since", format_time(*since, locale)));
            params.push(("patient", text(patient)));
            params.push(("link", format!("{}/access-log", link(public_url, "patients", patient_id)?)));
        }
        Notice::OverdueDigest { as_of, overdue_tasks, due_today, tasks } => {
            params.push(("as_of", format_date(*as_of, locale)));
            params.push(("overdue_tasks", (*overdue_tasks).max(0).to_string()));
            params.push(("due_today", (*due_today).max(0).to_string()));
            let lines: Vec<String> = tasks
                .iter()
                .map(|t| {
                    let mark = match (t.overdue, locale) {
                        (true, Locale::Ja) => "【期限切れ】",
                        (true, Locale::En) => "[overdue] ",
                        (false, Locale::Ja) => "【本日期限】",
                        (false, Locale::En) => "[due today] ",
                    };
                    format!(
                        "- {mark}{} / {} / {}",
                        format_date(t.due_on, locale),
                        text(&t.task.label(locale)),
                        text(&t.patient)
                    )
                })
                .collect();
            params.push(("tasks", lines.join("\n")));
            params.push(("link", format!("{public_url}/me/tasks")));
        }
        Notice::AccountLocked { locked_at, minutes } => {
            params.push(("locked_at", format_time(*locked_at, locale)));
            params.push(("minutes", (*minutes).max(1).to_string()));
            params.push(("link", public_url.to_string()));
        }
        Notice::PasswordReset { token, expires_at } | Notice::AccountCreated { token, expires_at } => {
            if !crate::auth::tokens::is_link_token(token) {
                return Err(AppError::internal("a password link with a token that is not URL-safe"));
            }
            params.push(("link", format!("{public_url}/password-reset?token={token}")));
            params.push(("expires_at", format_time(*expires_at, locale)));
        }
        Notice::TeamInvitation { token, expires_at, role, inviter, patient } => {
            if !crate::auth::tokens::is_link_token(token) {
                return Err(AppError::internal("an invitation link with a token that is not URL-safe"));
            }
            let lang = crate::error::Lang::from(locale);
            params.push(("link", format!("{public_url}/care-team-invitations?token={token}")));
            params.push(("expires_at", format_time(*expires_at, locale)));
            params.push(("role", role.label(lang).into()));
            params.push(("inviter", inviter.label(locale)));
            params.push(("patient", text(patient)));
        }
        Notice::ParticipantInvitation { token, expires_at, role, inviter, patient } => {
            if !crate::auth::tokens::is_link_token(token) {
                return Err(AppError::internal("an invitation link with a token that is not URL-safe"));
            }
            params.push(("link", format!("{public_url}/participant-invitations?token={token}")));
            params.push(("expires_at", format_time(*expires_at, locale)));
            params.push(("role", role.label(locale.into()).into()));
            params.push(("inviter", inviter.label(locale)));
            params.push(("patient", text(patient)));
        }
        Notice::JoiningAwaitsApproval { member, role, patient, patient_id } => {
            params.push(("member", member.label(locale)));
            params.push(("role", role.label(locale.into()).into()));
            params.push(("patient", text(patient)));
            params.push(("link", format!("{}/family", link(public_url, "patients", patient_id)?)));
        }
        Notice::JoiningRefused { member, role, decided_at, patient, patient_id } => {
            params.push(("member", member.label(locale)));
            params.push(("role", role.label(locale.into()).into()));
            params.push(("decided_at", format_time(*decided_at, locale)));
            params.push(("patient", text(patient)));
            params.push(("link", format!("{}/care-team", link(public_url, "patients", patient_id)?)));
        }
        Notice::FamilyMessage { author, posted_at, patient, patient_id } => {
            params.push(("author", author.label(locale)));
            params.push(("posted_at", format_time(*posted_at, locale)));
            params.push(("patient", text(patient)));
            params.push(("link", format!("{}/family", link(public_url, "patients", patient_id)?)));
        }
        Notice::TeamChanged { change, member, actor, changed_at, patient, patient_id } => {
            params.push(("change", change.label(locale).into()));
            params.push(("member", member.label(locale)));
            params.push(("actor", actor.label(locale)));
            params.push(("changed_at", format_time(*changed_at, locale)));
            params.push(("patient", text(patient)));
            params.push(("link", format!("{}/care-team", link(public_url, "patients", patient_id)?)));
        }
        Notice::OrganizationDeactivated { organization, members, deactivated_at, patient, patient_id } => {
            params.push(("organization", org_kind_label(*organization, locale).into()));
            params.push(("members", (*members).max(0).to_string()));
            params.push(("deactivated_at", format_time(*deactivated_at, locale)));
            params.push(("patient", text(patient)));
            params.push(("link", format!("{}/care-team", link(public_url, "patients", patient_id)?)));
        }
        Notice::MemberOffboarded { member, was_lead, tasks_unassigned, offboarded_at, patient, patient_id } => {
            params.push(("member", member.label(locale)));
            params.push((
                "lead",
                match (was_lead, locale) {
                    (true, Locale::Ja) => "この方はチームのリーダーでした。新しいリーダーを決めてください。",
                    (true, Locale::En) => "They were the team's lead: please choose a new lead.",
                    (false, Locale::Ja) => "チームのリーダーは変わりません。",
                    (false, Locale::En) => "The team's lead is unchanged.",
                }
                .into(),
            ));
            params.push(("tasks", (*tasks_unassigned).max(0).to_string()));
            params.push(("offboarded_at", format_time(*offboarded_at, locale)));
            params.push(("patient", text(patient)));
            params.push(("link", format!("{}/care-team", link(public_url, "patients", patient_id)?)));
        }
        Notice::CoordinatorAssigned { ward_name, ward_name_en, coordinator, actor, assigned_at } => {
            params.push((
                "ward",
                text(match locale {
                    Locale::Ja => ward_name,
                    Locale::En => ward_name_en,
                }),
            ));
            params.push(("coordinator", coordinator.label(locale)));
            params.push(("actor", actor.label(locale)));
            params.push(("assigned_at", format_time(*assigned_at, locale)));
            params.push(("link", public_url.to_string()));
        }
        Notice::WebhookDisabled { failures, disabled_at, endpoint_id } => {
            params.push(("failures", (*failures).max(1).to_string()));
            params.push(("disabled_at", format_time(*disabled_at, locale)));
            params.push(("link", link(public_url, "webhooks", endpoint_id)?));
        }
        Notice::SecondFactorReset { admin, reset_at } => {
            params.push(("admin", admin.label(locale)));
            params.push(("reset_at", format_time(*reset_at, locale)));
            params.push(("link", format!("{public_url}/console/totp")));
        }
        Notice::RecoveryCodeUsed { used_at, remaining } => {
            params.push(("used_at", format_time(*used_at, locale)));
            params.push(("remaining", (*remaining).max(0).to_string()));
            params.push(("link", format!("{public_url}/console/totp")));
        }
        Notice::Test => {
            params.push(("link", public_url.to_string()));
        }
    }
    let source = template(kind, locale);
    let (subject, body) = split(source).map_err(AppError::internal)?;
    let subject_params: Vec<(&str, String)> =
        params.iter().filter(|(k, _)| SUBJECT_PARAMETERS.contains(k)).cloned().collect();
    let subject = one_line(&fill(subject, &subject_params).map_err(AppError::internal)?, 200);
    let mut body = fill(body, &params).map_err(AppError::internal)?;
    body.push_str(match locale {
        Locale::Ja => FOOTER_JA,
        Locale::En => FOOTER_EN,
    });
    Ok(Rendered { kind, locale, subject, body })
}

/// A template's subject line and body.
fn split(source: &str) -> Result<(&str, &str), String> {
    let (subject, rest) = source.split_once('\n').ok_or("a template needs a subject line and a body")?;
    let body = rest.strip_prefix('\n').ok_or("the subject line must be followed by a blank line")?;
    Ok((subject.trim(), body))
}

/// Replaces each `{name}` once, in one pass: inserted values are never scanned again.
fn fill(template: &str, params: &[(&str, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('}').ok_or("a placeholder is not closed")?;
        let name = &after[..end];
        let value = params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("the template uses {{{name}}}, which is not given here"))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://renkei.example.jp";
    const ID: &str = "0193a3f2-7c4e-7d2a-9b1f-3c5d7e9f1a2b";

    fn at() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 25).unwrap().and_hms_opt(9, 30, 0).unwrap()
    }

    fn every_notice(text: &str) -> Vec<Notice> {
        let day = at().date();
        vec![
            Notice::FlagRaised {
                severity: Severity::Emergency,
                raised_at: at(),
                patient: text.into(),
                flag_id: ID.into(),
            },
            Notice::FlagEscalated {
                severity: Severity::Urgent,
                raised_at: at(),
                minutes_unacknowledged: 30,
                patient: text.into(),
                flag_id: ID.into(),
            },
            Notice::EmergencyAccess {
                accessor: Described { profession: Profession::Nurse, organization: Some(OrgKind::Hospital) },
                accessed_at: at(),
                patient: text.into(),
                patient_id: ID.into(),
            },
            Notice::TaskAssigned {
                task: TaskName::Template { ja: text.into(), en: text.into() },
                due_at: Some(at()),
                patient: text.into(),
                task_id: ID.into(),
            },
            Notice::CaseOpened { planned_discharge_on: None, patient: text.into(), case_id: ID.into() },
            Notice::PatientDischarged { discharged_on: day, patient: text.into(), patient_id: ID.into() },
            Notice::IdentificationFailures { since: at(), patient: text.into(), patient_id: ID.into() },
            Notice::OverdueDigest {
                as_of: day,
                overdue_tasks: 1,
                due_today: 1,
                tasks: vec![
                    DigestTask {
                        task: TaskName::Template { ja: text.into(), en: text.into() },
                        patient: text.into(),
                        due_on: day,
                        overdue: true,
                    },
                    DigestTask { task: TaskName::Custom, patient: text.into(), due_on: day, overdue: false },
                ],
            },
            Notice::AccountLocked { locked_at: at(), minutes: 1 },
            Notice::PasswordReset { token: "q3VfJx0_-Zk".into(), expires_at: at() },
            Notice::TeamChanged {
                change: TeamChange::Ended,
                member: Described { profession: Profession::Physician, organization: Some(OrgKind::Clinic) },
                actor: Described { profession: Profession::Nurse, organization: Some(OrgKind::VisitingNurseStation) },
                changed_at: at(),
                patient: text.into(),
                patient_id: ID.into(),
            },
            Notice::TeamInvitation {
                token: "q3VfJx0_-Zk".into(),
                expires_at: at(),
                role: crate::vocab::TeamRole::VisitingNurse,
                inviter: Described {
                    profession: Profession::CareManager,
                    organization: Some(OrgKind::CareManagementOffice),
                },
                patient: text.into(),
            },
            Notice::ParticipantInvitation {
                token: "q3VfJx0_-Zk".into(),
                expires_at: at(),
                role: crate::vocab::ParticipantRole::KeyPerson,
                inviter: Described {
                    profession: Profession::CareManager,
                    organization: Some(OrgKind::CareManagementOffice),
                },
                patient: text.into(),
            },
            Notice::JoiningAwaitsApproval {
                member: Described { profession: Profession::Nurse, organization: Some(OrgKind::VisitingNurseStation) },
                role: crate::vocab::TeamRole::VisitingNurse,
                patient: text.into(),
                patient_id: ID.into(),
            },
            Notice::JoiningRefused {
                member: Described { profession: Profession::Nurse, organization: Some(OrgKind::VisitingNurseStation) },
                role: crate::vocab::TeamRole::VisitingNurse,
                decided_at: at(),
                patient: text.into(),
                patient_id: ID.into(),
            },
            Notice::FamilyMessage {
                author: Described { profession: Profession::Layperson, organization: None },
                posted_at: at(),
                patient: text.into(),
                patient_id: ID.into(),
            },
            Notice::OrganizationDeactivated {
                organization: OrgKind::Clinic,
                members: 2,
                deactivated_at: at(),
                patient: text.into(),
                patient_id: ID.into(),
            },
            Notice::MemberOffboarded {
                member: Described { profession: Profession::Nurse, organization: Some(OrgKind::VisitingNurseStation) },
                was_lead: true,
                tasks_unassigned: 2,
                offboarded_at: at(),
                patient: text.into(),
                patient_id: ID.into(),
            },
            Notice::CoordinatorAssigned {
                ward_name: text.into(),
                ward_name_en: text.into(),
                coordinator: Described { profession: Profession::Physician, organization: Some(OrgKind::Clinic) },
                actor: Described { profession: Profession::Other, organization: Some(OrgKind::CityWardOffice) },
                assigned_at: at(),
            },
            Notice::WebhookDisabled { failures: 10, disabled_at: at(), endpoint_id: ID.into() },
            Notice::SecondFactorReset {
                admin: Described { profession: Profession::Other, organization: Some(OrgKind::VisitingNurseStation) },
                reset_at: at(),
            },
            Notice::AccountCreated { token: "q3VfJx0_-Zk".into(), expires_at: at() },
            Notice::RecoveryCodeUsed { used_at: at(), remaining: 9 },
            Notice::Test,
        ]
    }

    #[test]
    fn every_kind_renders_in_both_languages() {
        let notices = every_notice("Y.H.");
        let rendered: Vec<MailKind> = MailKind::ALL.iter().copied().filter(|k| *k != MailKind::Webhook).collect();
        assert_eq!(notices.iter().map(Notice::kind).collect::<Vec<_>>(), rendered);
        for notice in &notices {
            for locale in [Locale::Ja, Locale::En] {
                let r = render(notice, locale, URL).unwrap();
                assert!(!r.subject().is_empty() && !r.body().is_empty(), "{} {locale}", notice.kind());
                assert!(r.body().contains(URL), "{} {locale}: no link", notice.kind());
                assert!(!r.body().contains('{'), "{} {locale}: unfilled placeholder", notice.kind());
            }
        }
    }

    #[test]
    fn japanese_by_default_and_english_on_request() {
        let notice = &every_notice("Y.H.")[0];
        let ja = render(notice, Locale::Ja, URL).unwrap();
        assert_eq!(ja.subject(), "【緊急】急変フラグが立てられました（在宅療養連携ノート）");
        assert!(ja.body().starts_with("ご担当者様\n"));
        assert!(ja.body().contains("2026年11月25日 18:30（日本時間）"), "{}", ja.body());
        assert!(ja.body().contains(&format!("{URL}/flags/{ID}")));
        let en = render(notice, Locale::En, URL).unwrap();
        assert_eq!(en.subject(), "[Emergency] Deterioration flag raised (Renkei Note)");
        assert!(en.body().starts_with("Dear colleague,\n"));
        assert!(en.body().contains("25 Nov 2026, 18:30 JST"));
    }

    #[test]
    fn values_are_escaped_not_interpreted() {
        let hostile = "Y.H.\r\nBcc: evil@example.jp\n\n{link} {name}\u{2028}.";
        for notice in every_notice(hostile) {
            for locale in [Locale::Ja, Locale::En] {
                let r = render(&notice, locale, URL).unwrap();
                assert!(!r.subject().contains(['\r', '\n']));
                assert!(!r.subject().contains("evil"), "{}: {}", notice.kind(), r.subject());
                assert!(!r.body().contains('\r'));
                for line in r.body().lines() {
                    assert!(!line.starts_with("Bcc:"), "{}: a value started a line: {line:?}", notice.kind());
                }
                // A value that looks like a placeholder is kept as typed, not filled in.
                if !matches!(
                    notice.kind(),
                    MailKind::OverdueDigest
                        | MailKind::AccountLocked
                        | MailKind::SecondFactorReset
                        | MailKind::PasswordReset
                        | MailKind::AccountCreated
                        | MailKind::RecoveryCodeUsed
                        | MailKind::WebhookDisabled
                        | MailKind::Test
                ) {
                    assert!(r.body().contains("{link} {name}"), "{}: {}", notice.kind(), r.body());
                }
            }
        }
    }

    #[test]
    fn subjects_use_only_closed_vocabulary_parameters() {
        for &kind in MailKind::ALL.iter().filter(|k| **k != MailKind::Webhook) {
            for locale in [Locale::Ja, Locale::En] {
                let (subject, body) = split(template(kind, locale)).unwrap();
                let mut rest = subject;
                while let Some(start) = rest.find('{') {
                    let end = rest[start..].find('}').unwrap() + start;
                    let name = &rest[start + 1..end];
                    assert!(SUBJECT_PARAMETERS.contains(&name), "{kind}.{locale}: subject uses {{{name}}}");
                    rest = &rest[end + 1..];
                }
                assert!(!body.trim().is_empty());
            }
        }
    }

    #[test]
    fn bad_ids_never_reach_a_link() {
        let notice = Notice::PatientDischarged {
            discharged_on: at().date(),
            patient: "Y.H.".into(),
            patient_id: "../../admin?x=".into(),
        };
        assert!(render(&notice, Locale::Ja, URL).is_err());
    }

    #[test]
    fn people_are_described_and_custom_tasks_named_generically() {
        let nurse = Described { profession: Profession::Nurse, organization: Some(OrgKind::Hospital) };
        let access = Notice::EmergencyAccess {
            accessor: nurse,
            accessed_at: at(),
            patient: "Y.H.".into(),
            patient_id: ID.into(),
        };
        let ja = render(&access, Locale::Ja, URL).unwrap();
        assert!(ja.body().contains("ケアチーム外の病院の看護師が"), "{}", ja.body());
        let en = render(&access, Locale::En, URL).unwrap();
        assert!(en.body().contains("(a nurse at a hospital)"), "{}", en.body());
        let task =
            Notice::TaskAssigned { task: TaskName::Custom, due_at: None, patient: "Y.H.".into(), task_id: ID.into() };
        let ja = render(&task, Locale::Ja, URL).unwrap();
        assert!(ja.body().contains("タスク: タスク（内容はアプリで確認してください）"), "{}", ja.body());
        let template =
            TaskName::Template { ja: "退院前カンファレンス".into(), en: "Pre-discharge conference".into() };
        let task = Notice::TaskAssigned { task: template, due_at: None, patient: "Y.H.".into(), task_id: ID.into() };
        assert!(render(&task, Locale::En, URL).unwrap().body().contains("Task: Pre-discharge conference"));
    }

    #[test]
    fn people_are_described_by_profession_and_organisation_kind() {
        let notice = Notice::TeamChanged {
            change: TeamChange::RoleChanged,
            member: Described { profession: Profession::Physician, organization: Some(OrgKind::Clinic) },
            actor: Described { profession: Profession::Nurse, organization: Some(OrgKind::VisitingNurseStation) },
            changed_at: at(),
            patient: "Y.H.".into(),
            patient_id: ID.into(),
        };
        let ja = render(&notice, Locale::Ja, URL).unwrap();
        assert!(ja.body().contains("対象の方: 診療所の医師"), "{}", ja.body());
        assert!(ja.body().contains("変更した方: 訪問看護ステーションの看護師"), "{}", ja.body());
        assert!(ja.body().contains(&format!("{URL}/patients/{ID}/care-team")));
        let en = render(&notice, Locale::En, URL).unwrap();
        assert!(en.body().contains("Changed by: a nurse at a visiting nurse station"), "{}", en.body());
    }

    #[test]
    fn long_values_are_cut() {
        assert_eq!(one_line("a\r\nb", 10), "a  b");
        assert_eq!(one_line(&"あ".repeat(200), 5), "ああああ…");
    }
}
