//! Closed vocabularies stored as TEXT on both backends and spelled the same in JSON.
//!
//! A row keeps such a column as its enum, never as a string: the enum reads and writes itself as
//! TEXT on either backend (`ToSql`/`FromSql` below), so an unknown stored value is a load error
//! and the rest of the code compares enums.

/// Declares an enum whose values are stored and sent as fixed snake_case strings.
#[macro_export]
///
/// A variant may carry the words people read and type, `Care3 => "care_3" ("要介護3", "Care level 3")`:
/// `label` gives them in the reader's language (CSV values, pages), and the Japanese word is
/// accepted in JSON and query strings in place of the code, so `要介護3` or `女` typed by a person
/// is not an error. Errors still name the codes.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal $(($ja:literal, $en:literal))?),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $(#[serde(rename = $text $(, alias = $ja)?)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The word a person reads: Japanese, or English for `Lang::En`; the code where the
            /// vocabulary has no words of its own.
            #[allow(unused_variables)]
            pub fn label(self, lang: $crate::error::Lang) -> &'static str {
                match self {
                    $($name::$variant => {
                        $(return if lang == $crate::error::Lang::En { $en } else { $ja };)?
                        #[allow(unreachable_code)]
                        $text
                    })+
                }
            }

            /// Reads a stored value; an unknown one is a data error, not a client error.
            pub fn parse(value: &str) -> Option<$name> {
                match value { $($text => Some($name::$variant),)+ _ => None }
            }

            pub fn from_db(value: &str) -> Result<$name, $crate::error::AppError> {
                Self::parse(value).ok_or_else(|| {
                    $crate::error::AppError::internal(format!("unknown {} in database: {value}", stringify!($name)))
                })
            }

            pub fn list() -> String {
                [$($text),+].join(", ")
            }
        }

        /// Its code as an owned string (rows of the benchmark's seeder, which writes TEXT).
        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_string()
            }
        }

        /// Compared and written as its code in a TEXT column, on either backend, so a query says
        /// `flags::status.eq(FlagStatus::Active)` and never spells the code itself.
        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, DB>) -> diesel::serialize::Result {
                self.as_str().to_sql(out)
            }
        }

        /// Read from a TEXT column; an unknown stored value is a load error.
        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<$name> {
                let value = String::from_sql(bytes)?;
                $name::parse(&value).ok_or_else(|| format!("unknown {} in database: {value}", stringify!($name)).into())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// What an attachment is, as read from its first bytes (never from the client's claim).
    AttachmentType {
        Jpeg => "image/jpeg",
        Png => "image/png",
        Heic => "image/heic",
        Heif => "image/heif",
        Pdf => "application/pdf",
    }
}

impl AttachmentType {
    /// A photo (as opposed to a document).
    pub fn is_image(self) -> bool {
        self != AttachmentType::Pdf
    }
}

text_enum! {
    /// How e-mails name a patient (`RENKEI_MAIL_PATIENT_LABEL`): the initials of the kana reading,
    /// or nobody.
    PatientLabel {
        Initials => "initials",
        None => "none",
    }
}

text_enum! {
    /// Kinds of organisation in the home-care resource directory.
    OrgKind {
        Clinic => "clinic",
        Hospital => "hospital",
        VisitingNurseStation => "visiting_nurse_station",
        Pharmacy => "pharmacy",
        DentalClinic => "dental_clinic",
        CareManagementOffice => "care_management_office",
        CommunitySupportCenter => "community_support_center",
        CityWardOffice => "city_ward_office",
    }
}

text_enum! {
    /// Services an organisation offers, as Kawasaki's home-care resource guidebook lists them.
    OrgService {
        Visits24h => "24h_visits",
        Contact24h => "24h_contact",
        TerminalCare => "terminal_care",
        HomeOxygen => "home_oxygen",
        Ventilator => "ventilator",
        TubeFeeding => "tube_feeding",
        PressureUlcerCare => "pressure_ulcer_care",
        DementiaCare => "dementia_care",
        Pediatric => "pediatric",
        Rehabilitation => "rehabilitation",
        HomeMedicationManagement => "home_medication_management",
        AsepticPreparation => "aseptic_preparation",
        DentalHomeVisit => "dental_home_visit",
        DischargeSupport => "discharge_support",
    }
}

text_enum! {
    /// Why a note's SpO2 was scored on the scale it was (DOMAIN.md, NEWS2; docs/domain.md):
    /// scale 1 for a patient without a recorded 88–92% target, scale 2 because a clinician
    /// recorded that target for the patient, or scale 1 because the note overrode the patient's
    /// decision with a reason.
    Spo2ScaleBasis {
        Standard => "standard" ("標準(スケール1)", "Standard (scale 1)"),
        PatientTarget => "patient_target" ("患者の目標 SpO2 88〜92%(スケール2)", "Patient's 88–92% target (scale 2)"),
        NoteOverride => "note_override" ("記録ごとの変更(理由あり)", "Overridden in this note (with a reason)"),
    }
}

text_enum! {
    /// A person's profession; `layperson` for the patient, a family member or the key person:
    /// an account of no organisation, which no organisation kind employs and no team role fits.
    Profession {
        Physician => "physician",
        Nurse => "nurse",
        Pharmacist => "pharmacist",
        CareManager => "care_manager",
        Dentist => "dentist",
        Therapist => "therapist",
        Helper => "helper",
        SocialWorker => "social_worker",
        Other => "other",
        Layperson => "layperson",
    }
}

/// Which professions work in an organisation of each kind: one table, as data.
///
/// Why: a profession decides what an account may do with patient data (clinicians break the
/// glass, care managers register patients and run teams, physicians write the physician's note
/// and coordinate wards), and it is set by administrators, not proven. Tying it to the kind of
/// the employing organisation keeps an administrator from minting a "physician" in a
/// care-management office or a pharmacy. `Other` (clerks, hygienists, coordinators) fits
/// everywhere. Helpers are listed with care-management offices, which commonly run a home-help
/// service on the same premises (併設), until the directory has home-help agencies of its own.
/// City ward offices employ the wards' coordinating physicians (区在宅療養調整医師) and public-health
/// nurses (保健師).
pub const PROFESSIONS_BY_ORG_KIND: &[(OrgKind, &[Profession])] = {
    use OrgKind as K;
    use Profession as P;
    &[
        (K::Clinic, &[P::Physician, P::Nurse, P::Therapist, P::SocialWorker, P::Other]),
        (K::Hospital, &[P::Physician, P::Nurse, P::Pharmacist, P::Dentist, P::Therapist, P::SocialWorker, P::Other]),
        (K::VisitingNurseStation, &[P::Nurse, P::Therapist, P::Other]),
        (K::Pharmacy, &[P::Pharmacist, P::Other]),
        (K::DentalClinic, &[P::Dentist, P::Other]),
        (K::CareManagementOffice, &[P::CareManager, P::Helper, P::Other]),
        (K::CommunitySupportCenter, &[P::CareManager, P::Nurse, P::SocialWorker, P::Other]),
        (K::CityWardOffice, &[P::Physician, P::Nurse, P::SocialWorker, P::Other]),
    ]
};

impl OrgKind {
    /// Whether people of this profession work in an organisation of this kind.
    pub fn employs(self, profession: Profession) -> bool {
        PROFESSIONS_BY_ORG_KIND.iter().any(|(kind, professions)| *kind == self && professions.contains(&profession))
    }
}

text_enum! {
    /// What an account may administer; patient data is never granted by a role (docs/architecture.md, law 3).
    AccountRole {
        Member => "member",
        OrgAdmin => "org_admin",
        SystemAdmin => "system_admin",
    }
}

text_enum! {
    /// The language a person reads the product in.
    Locale {
        Ja => "ja",
        En => "en",
    }
}

/// A person's language is the language their pages and e-mails are in.
impl From<Locale> for crate::error::Lang {
    fn from(locale: Locale) -> Self {
        match locale {
            Locale::Ja => crate::error::Lang::Ja,
            Locale::En => crate::error::Lang::En,
        }
    }
}

impl From<crate::error::Lang> for Locale {
    fn from(lang: crate::error::Lang) -> Self {
        match lang {
            crate::error::Lang::Ja => Locale::Ja,
            crate::error::Lang::En => Locale::En,
        }
    }
}

text_enum! {
    /// Which deterioration alerts a person receives by e-mail. An emergency always reaches the
    /// primary and backup physicians and the team lead, whatever they chose.
    FlagNotifications {
        All => "all",
        EmergencyOnly => "emergency_only",
        None => "none",
    }
}

text_enum! {
    /// Severity of a deterioration flag: urgent (NEWS2 5–6 or a single 3) or emergency (7+).
    FlagSeverity {
        Urgent => "urgent" ("至急", "Urgent"),
        Emergency => "emergency" ("緊急", "Emergency"),
    }
}

text_enum! {
    /// Who raised a flag: a team member by hand, or the system from a note's NEWS2.
    FlagSource {
        Manual => "manual",
        News2 => "news2",
        FamilyMessage => "family_message",
    }
}

text_enum! {
    /// A flag's life: active → acknowledged → resolved, or entered in error.
    FlagStatus {
        Active => "active" ("対応待ち", "Active"),
        Acknowledged => "acknowledged" ("確認済み", "Acknowledged"),
        Resolved => "resolved" ("解決", "Resolved"),
        EnteredInError => "entered_in_error" ("誤入力", "Entered in error"),
    }
}

impl FlagStatus {
    /// A flag someone still has to act on.
    pub const OPEN: [FlagStatus; 2] = [FlagStatus::Active, FlagStatus::Acknowledged];
}

text_enum! {
    /// A patient's sex as recorded.
    Sex {
        Male => "male" ("男", "Male"),
        Female => "female" ("女", "Female"),
        Other => "other" ("その他", "Other"),
        Unknown => "unknown" ("不明", "Unknown"),
    }
}

text_enum! {
    /// Care-need level (要介護度): 非該当, 申請中, 要支援1–2, 要介護1–5 (docs/domain.md).
    CareLevel {
        None => "none" ("非該当", "Not applicable"),
        Applying => "applying" ("申請中", "Applying"),
        Support1 => "support_1" ("要支援1", "Support level 1"),
        Support2 => "support_2" ("要支援2", "Support level 2"),
        Care1 => "care_1" ("要介護1", "Care level 1"),
        Care2 => "care_2" ("要介護2", "Care level 2"),
        Care3 => "care_3" ("要介護3", "Care level 3"),
        Care4 => "care_4" ("要介護4", "Care level 4"),
        Care5 => "care_5" ("要介護5", "Care level 5"),
    }
}

text_enum! {
    /// Where the patient is in their care.
    PatientStatus {
        Home => "home" ("在宅", "At home"),
        Hospitalized => "hospitalized" ("入院中", "In hospital"),
        Deceased => "deceased" ("死亡", "Deceased"),
        Transferred => "transferred" ("転出", "Transferred"),
        Closed => "closed" ("終了", "Closed"),
    }
}

impl PatientStatus {
    /// The status moves that make sense: home ↔ hospitalised; either to deceased, transferred
    /// or closed; a transferred patient may come back home; a record is closed last.
    pub fn can_become(self, next: PatientStatus) -> bool {
        use PatientStatus::*;
        matches!(
            (self, next),
            (Home, Hospitalized | Deceased | Transferred | Closed)
                | (Hospitalized, Home | Deceased | Transferred | Closed)
                | (Transferred, Home | Closed)
                | (Deceased, Closed)
        )
    }
}

text_enum! {
    /// A person's role on a patient's care team.
    TeamRole {
        PrimaryPhysician => "primary_physician" ("主治医", "Primary physician"),
        BackupPhysician => "backup_physician" ("副主治医", "Backup physician"),
        VisitingNurse => "visiting_nurse" ("訪問看護師", "Visiting nurse"),
        Pharmacist => "pharmacist" ("薬剤師", "Pharmacist"),
        CareManager => "care_manager" ("ケアマネジャー", "Care manager"),
        Dentist => "dentist" ("歯科医師", "Dentist"),
        Therapist => "therapist" ("リハビリ職", "Therapist"),
        Helper => "helper" ("ヘルパー", "Helper"),
        HospitalStaff => "hospital_staff" ("病院職員", "Hospital staff"),
        Other => "other" ("その他", "Other"),
    }
}

impl TeamRole {
    /// The profession a team role needs, for the roles that carry a duty: the physicians' roles
    /// receive every emergency alert and the escalations, and the care manager's role changes the
    /// team. Other roles fit any profession.
    pub fn required_profession(self) -> Option<Profession> {
        match self {
            TeamRole::PrimaryPhysician | TeamRole::BackupPhysician => Some(Profession::Physician),
            TeamRole::CareManager => Some(Profession::CareManager),
            _ => None,
        }
    }
}

text_enum! {
    /// Where a patient's consent stands: the latest consent record decides — obtained and in
    /// force, revoked, or never recorded.
    ConsentStatus {
        Active => "active" ("取得済", "Obtained"),
        Revoked => "revoked" ("撤回済", "Revoked"),
        None => "none" ("未取得", "Not obtained"),
    }
}

text_enum! {
    /// What the patient agreed to share (本人同意).
    ConsentScope {
        CareTeam => "care_team" ("ケアチーム", "Care team"),
        CareTeamAndHospital => "care_team_and_hospital" ("ケアチームと病院", "Care team and hospital"),
    }
}

text_enum! {
    /// Who gave the consent.
    ConsentSource {
        Patient => "patient" ("本人", "Patient"),
        Family => "family" ("家族", "Family"),
        Guardian => "guardian" ("後見人", "Guardian"),
    }
}

/// The normal form of a name reading, for search, sorting and matching: NFKC (half-width
/// katakana become full-width) and hiragana as katakana. What the person typed is stored as
/// typed; this form is kept beside it.
pub fn normalize_kana(value: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    value
        .nfkc()
        .map(|c| match c {
            // ぁ..ゖ and the iteration marks ゝゞ sit 0x60 below their katakana.
            '\u{3041}'..='\u{3096}' | '\u{309D}' | '\u{309E}' => char::from_u32(c as u32 + 0x60).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// A name reading as a person may type it: katakana (with the prolonged sound mark and the middle
/// dot), hiragana or half-width katakana, and spaces; not blank. The contract's `Kana` pattern
/// says the same.
pub fn is_kana_name(value: &str) -> bool {
    let kana = |c: char| matches!(c, '\u{3041}'..='\u{3096}' | '\u{309D}' | '\u{309E}' | '\u{30A1}'..='\u{30FE}' | '\u{FF65}'..='\u{FF9F}');
    value.chars().any(kana) && value.chars().all(|c| kana(c) || c == ' ' || c == '\u{3000}')
}

/// A name reading in full-width katakana: katakana, the prolonged sound mark, the middle dot and
/// spaces.
pub fn is_katakana_name(value: &str) -> bool {
    !value.trim().is_empty()
        && value.chars().all(|c| {
            matches!(c, '\u{30A1}'..='\u{30FA}' | '\u{30FB}' | '\u{30FC}' | '\u{30FD}' | '\u{30FE}' | ' ' | '\u{3000}')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn katakana_names() {
        assert!(is_katakana_name("ヤマダ タロウ"));
        assert!(is_katakana_name("サトウ・ジョーンズ"));
        assert!(!is_katakana_name("ﾔﾏﾀﾞ"), "half-width katakana");
        assert!(!is_katakana_name("やまだ"), "hiragana");
        assert!(!is_katakana_name("山田"));
        assert!(!is_katakana_name(" "));
    }

    #[test]
    fn kana_people_type_is_accepted_in_its_normal_form() {
        assert_eq!(normalize_kana("ﾔﾏﾀﾞ ﾀﾛｳ"), "ヤマダ タロウ");
        assert_eq!(normalize_kana("やまだ　はなこ"), "ヤマダ ハナコ");
        assert_eq!(normalize_kana("いすゞ"), "イスヾ");
        assert!(is_kana_name("ﾔﾏﾀﾞ") && is_kana_name("やまだ") && is_kana_name("ヤマダ"));
        assert!(!is_kana_name("山田") && !is_kana_name("yamada"));
    }

    #[test]
    fn japanese_words_stand_for_codes() {
        let level: CareLevel = serde_json::from_str("\"要介護3\"").unwrap();
        assert_eq!(level, CareLevel::Care3);
        let sex: Sex = serde_json::from_str("\"女\"").unwrap();
        assert_eq!(sex, Sex::Female);
        assert_eq!(serde_json::to_string(&CareLevel::Care3).unwrap(), "\"care_3\"");
        assert_eq!(CareLevel::Care3.label(crate::error::Lang::Ja), "要介護3");
        assert_eq!(PatientStatus::Home.label(crate::error::Lang::En), "At home");
        assert_eq!(AccountRole::Member.label(crate::error::Lang::Ja), "member");
        let wrong = serde_json::from_str::<CareLevel>("\"要介護9\"").unwrap_err().to_string();
        assert!(wrong.contains("care_3"), "{wrong}");
    }

    #[test]
    fn every_org_kind_has_its_professions() {
        for kind in OrgKind::ALL {
            assert_eq!(PROFESSIONS_BY_ORG_KIND.iter().filter(|(k, _)| k == kind).count(), 1, "{kind}");
            assert!(kind.employs(Profession::Other), "{kind}");
        }
        assert!(!OrgKind::CareManagementOffice.employs(Profession::Physician));
        assert!(!OrgKind::Pharmacy.employs(Profession::Nurse));
        assert!(OrgKind::Clinic.employs(Profession::Physician));
    }

    #[test]
    fn text_enums_round_trip() {
        for kind in OrgKind::ALL {
            assert_eq!(OrgKind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(serde_json::to_string(&OrgService::Visits24h).unwrap(), "\"24h_visits\"");
    }
}

text_enum! {
    /// What a note records. `physician_info_sharing` is the home physician's
    /// information-sharing note with exactly the items the 2024 fee 在宅医療情報連携加算 asks for
    /// (docs/domain.md): the next visit date, whether the treatment policy changed (with a summary)
    /// and cautions for the care team.
    NoteKind {
        Visit => "visit" ("訪問", "Visit"),
        Phone => "phone" ("電話", "Phone"),
        Medication => "medication" ("服薬", "Medication"),
        Rehabilitation => "rehabilitation" ("リハビリ", "Rehabilitation"),
        Conference => "conference" ("カンファレンス", "Conference"),
        Handover => "handover" ("申し送り", "Handover"),
        Family => "family" ("家族", "Family"),
        Other => "other" ("その他", "Other"),
        PhysicianInfoSharing => "physician_info_sharing" ("医師の情報共有", "Physician's information sharing"),
    }
}

text_enum! {
    /// Where an invitation into a care team stands. A pending invitation past its expiry is
    /// stored as pending and answered as `expired`. An accepted one waits in `awaiting_approval`
    /// where the patient or key person approves, and ends `accepted` or `refused`.
    InvitationStatus {
        Pending => "pending" ("回答待ち", "Pending"),
        Accepted => "accepted" ("承諾済", "Accepted"),
        Declined => "declined" ("辞退", "Declined"),
        Expired => "expired" ("期限切れ", "Expired"),
        Revoked => "revoked" ("取消済", "Revoked"),
        AwaitingApproval => "awaiting_approval" ("本人・キーパーソンの承認待ち", "Awaiting the patient's approval"),
        Refused => "refused" ("本人・キーパーソンが不承認", "Refused by the patient"),
    }
}

text_enum! {
    /// How a person who is not a professional takes part in a patient's circle.
    ParticipantRole {
        Patient => "patient" ("ご本人", "The patient"),
        Family => "family" ("ご家族", "Family member"),
        KeyPerson => "key_person" ("キーパーソン", "Key person"),
    }
}

impl ParticipantRole {
    /// The patient and the key person approve who joins the team and read who opened the record.
    pub fn speaks_for_the_patient(self) -> bool {
        matches!(self, ParticipantRole::Patient | ParticipantRole::KeyPerson)
    }
}

text_enum! {
    /// Where a participant stands. An invited participant past the invitation's expiry is stored
    /// as invited and answered as `expired`.
    ParticipantStatus {
        Invited => "invited" ("招待中", "Invited"),
        Active => "active" ("参加中", "Taking part"),
        Ended => "ended" ("終了", "Ended"),
        Expired => "expired" ("期限切れ", "Expired"),
    }
}
