//! What a home-care team keeps besides notes (docs/domain.md, "Medications, allergies and the
//! emergency card"): the medication list (FHIR MedicationStatement) with the pharmacist's
//! reconciliation, allergies and contraindications (AllergyIntolerance), and the emergency card
//! (急変時情報 / ACP) that draws on both.
//!
//! Every record is versioned like a note: a head row holds the current version number (the
//! optimistic-concurrency counter behind `ETag` / `If-Match`), each version is a row of its own
//! that the database refuses to change or delete, and a record entered by mistake gets one more
//! version marked entered in error — nothing is ever removed.

pub mod allergies;
pub mod card;
pub mod handlers;
pub mod medications;
pub mod print;

use chrono::NaiveDate;

use crate::api::Check;

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
