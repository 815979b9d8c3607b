//! What a home-care team keeps besides notes (docs/domain.md, "Medications, allergies and the
//! emergency card"): the medication list (FHIR MedicationStatement) with the pharmacist's
//! reconciliation, allergies and contraindications (AllergyIntolerance), and the emergency card
//! (急変時情報 / ACP) that draws on both, and the visit week: each member's recurring visits
//! (visit plans) and one-off appointments, conferences among them.
//!
//! Every record is versioned like a note: a head row holds the current version number (the
//! optimistic-concurrency counter behind `ETag` / `If-Match`), each version is a row of its own
//! that the database refuses to change or delete, and a record entered by mistake gets one more
//! version marked entered in error — nothing is ever removed.

pub mod allergies;
pub mod appointments;
pub mod card;
pub mod handlers;
pub mod medications;
pub mod print;
pub mod visits;
pub mod week;

use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::Check;
use crate::audit::Resource;
use crate::db::DbConn;
use crate::error::{AppError, AppResult};

/// A versioned care record (medication, allergy, visit plan, appointment): its head row
/// (`Self`), the body of a new record and of each change, and one version as answered. The
/// routes every such record has are written once over this (`handlers::records`), and so is
/// the access policy's loader (`access::care_record`).
pub trait Versioned: Sized + Send + 'static {
    type Entry: Serialize + DeserializeOwned + Send + 'static;
    type View: Serialize + Send + 'static;
    /// What the audit trail and the access policy call it.
    const RESOURCE: Resource;
    /// Its name in a miss's audit detail (`no such …`).
    const NAME: &'static str;
    /// The path under `/api/v1/` that names one (`Location`).
    const PATH: &'static str;

    fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<Self>>;
    fn patient_id(&self) -> &str;
    fn view_id(view: &Self::View) -> &str;
    fn view_version(view: &Self::View) -> i32;
    fn check(entry: &Self::Entry, check: &mut Check);
    /// The team members an entry schedules, and the field naming them: a visit plan's visiting
    /// member, an appointment's attendees. Most records schedule nobody.
    fn scheduled(_entry: &Self::Entry) -> Option<(&'static str, Vec<String>)> {
        None
    }
    /// Whom the current version schedules.
    fn scheduled_now(&self, _conn: &mut DbConn) -> AppResult<Vec<String>> {
        Ok(Vec::new())
    }
    fn add(conn: &mut DbConn, patient_id: &str, entry: Self::Entry, by: &str) -> AppResult<Self::View>;
    fn view(&self, conn: &mut DbConn) -> AppResult<Self::View>;
    /// A change as a new version of version `expected` (412 when it is no longer current).
    fn change(&self, conn: &mut DbConn, expected: i32, entry: Self::Entry, by: &str) -> AppResult<Self::View>;
    /// Every version, oldest first.
    fn history(conn: &mut DbConn, id: &str) -> AppResult<Vec<Self::View>>;
}

/// A record taken back by marking it entered in error, with a reason: one more version, the
/// same content; the list no longer shows it.
pub trait Retractable: Versioned {
    fn mark_entered_in_error(
        &self,
        conn: &mut DbConn,
        expected: Option<i32>,
        reason: String,
        by: &str,
    ) -> AppResult<Self::View>;
}

crate::text_enum! {
    /// Where the medication list learnt of a drug.
    MedicationSource {
        Pharmacy => "pharmacy" ("薬局", "Pharmacy"),
        Physician => "physician" ("医師", "Physician"),
        Family => "family" ("家族", "Family"),
    }
}

crate::text_enum! {
    /// FHIR R4 MedicationStatement.status (`-` written `_`). `entered_in_error` is reached only
    /// by marking a medication entered in error, with a reason.
    MedicationStatus {
        Active => "active" ("服用中", "Active"),
        Completed => "completed" ("服用終了", "Completed"),
        Stopped => "stopped" ("中止", "Stopped"),
        OnHold => "on_hold" ("休薬中", "On hold"),
        Intended => "intended" ("開始予定", "Intended"),
        EnteredInError => "entered_in_error" ("入力誤り", "Entered in error"),
    }
}

crate::text_enum! {
    /// FHIR R4 AllergyIntolerance.category.
    AllergyCategory {
        Medication => "medication" ("薬剤", "Medication"),
        Food => "food" ("食物", "Food"),
        Environment => "environment" ("環境", "Environment"),
        Biologic => "biologic" ("生物由来製品", "Biologic"),
    }
}

crate::text_enum! {
    /// FHIR R4 AllergyIntolerance.reaction.severity.
    AllergySeverity {
        Mild => "mild" ("軽度", "Mild"),
        Moderate => "moderate" ("中等度", "Moderate"),
        Severe => "severe" ("重度", "Severe"),
    }
}

crate::text_enum! {
    /// FHIR R4 AllergyIntolerance.clinicalStatus.
    AllergyClinicalStatus {
        Active => "active" ("あり", "Active"),
        Inactive => "inactive" ("なし", "Inactive"),
        Resolved => "resolved" ("消失", "Resolved"),
    }
}

crate::text_enum! {
    /// FHIR R4 AllergyIntolerance.verificationStatus. `entered_in_error` is reached only by
    /// marking an allergy entered in error, with a reason.
    AllergyVerification {
        Unconfirmed => "unconfirmed" ("未確認", "Unconfirmed"),
        Confirmed => "confirmed" ("確認済み", "Confirmed"),
        Refuted => "refuted" ("否定", "Refuted"),
        EnteredInError => "entered_in_error" ("入力誤り", "Entered in error"),
    }
}

crate::text_enum! {
    /// The physician's decision about cardiopulmonary resuscitation.
    DnarDecision {
        Dnar => "dnar" ("DNAR(心肺蘇生を行わない)", "DNAR (do not attempt resuscitation)"),
        AttemptResuscitation => "attempt_resuscitation" ("心肺蘇生を行う", "Attempt resuscitation"),
    }
}

crate::text_enum! {
    /// The home-care and care-insurance services a visit belongs to.
    ServiceType {
        HomeMedicalCare => "home_medical_care" ("訪問診療", "Home medical care"),
        HomeNursing => "home_nursing" ("訪問看護", "Home nursing"),
        HomeHelp => "home_help" ("訪問介護", "Home help"),
        HomePharmacy => "home_pharmacy" ("訪問薬剤管理指導", "Home pharmaceutical care"),
        HomeDental => "home_dental" ("訪問歯科診療", "Home dental care"),
        HomeRehabilitation => "home_rehabilitation" ("訪問リハビリテーション", "Home rehabilitation"),
        HomeBathing => "home_bathing" ("訪問入浴介護", "Home bathing"),
        DayService => "day_service" ("デイサービス(通所介護)", "Day service"),
        DayCare => "day_care" ("デイケア(通所リハビリテーション)", "Day care (rehabilitation)"),
        ShortStay => "short_stay" ("ショートステイ(短期入所)", "Short stay"),
    }
}

crate::text_enum! {
    /// What a one-off appointment is: a visit outside the plans, or one of the two conferences of
    /// home care.
    AppointmentKind {
        Visit => "visit" ("臨時の訪問", "One-off visit"),
        DischargeConference => "discharge_conference" ("退院前カンファレンス", "Pre-discharge conference"),
        ServiceMeeting => "service_meeting" ("サービス担当者会議", "Care-plan service meeting"),
        Other => "other" ("その他の予定", "Other appointment"),
    }
}

crate::text_enum! {
    /// FHIR R4 Appointment.status, the part a team uses. `cancelled` and `entered_in_error` are
    /// final: the appointment stays, with every version.
    AppointmentStatus {
        Booked => "booked" ("予定", "Booked"),
        Fulfilled => "fulfilled" ("実施済み", "Fulfilled"),
        Cancelled => "cancelled" ("中止", "Cancelled"),
        EnteredInError => "entered_in_error" ("入力誤り", "Entered in error"),
    }
}

/// The version a head moved to from `expected`: its update changed one row, or another change
/// got there first (412). The update names the expected version, so two concurrent changes of
/// the same version cannot both succeed.
pub fn moved_to(rows: usize, expected: i32) -> AppResult<i32> {
    if rows == 1 {
        Ok(expected + 1)
    } else {
        Err(AppError::precondition_failed())
    }
}

/// Longest reason for a change or for marking a record entered in error.
pub const REASON_MAX_CHARS: usize = 500;

/// A date of something that has happened (a decision, a check): not after today in Japan.
pub fn check_not_future(check: &mut Check, field: &str, day: Option<NaiveDate>) {
    if day.is_some_and(|d| d > crate::patients::today_jst()) {
        check.push(
            field,
            "in_the_future",
            format!("{field} に未来の日付は指定できません。"),
            format!("{field} cannot be a date in the future."),
        );
    }
}

/// The reason given when a record is marked entered in error: required, one short text.
pub fn check_reason(check: &mut Check, reason: &str) {
    check.text("reason", reason, REASON_MAX_CHARS);
}
