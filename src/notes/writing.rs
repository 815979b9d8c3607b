//! Writing a note: the checks a new note and an amendment share, and posting a new note with
//! what follows from it (its audit record, and the flag its vital signs may raise), the same
//! from the API and the console.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};

use crate::api::Check;
use crate::audit::{self, Action, Event, Resource};
use crate::auth::CurrentUser;
use crate::db::{new_id, now, DbConn};
use crate::error::AppResult;
use crate::flags::{self, EscalationLimits};
use crate::mail::Mailer;
use crate::notes::vitals::Vitals;
use crate::notes::{self, Content, Listed, Note, PhysicianInfo, Soap, Version};
use crate::patients::Patient;
use crate::vocab::{NoteKind, Spo2ScaleBasis};

/// How far in the future `occurred_at` may be, for clocks that run a little fast.
pub const CLOCK_SKEW_MINUTES: i64 = 5;
pub const TEXT_MAX_CHARS: usize = 20_000;
pub const SOAP_PART_MAX_CHARS: usize = 10_000;
pub const PHYSICIAN_FIELD_MAX_CHARS: usize = 4_000;
pub const REASON_MAX_CHARS: usize = 1_000;

/// The content fields a new note and an amendment share.
pub struct Draft {
    pub occurred_at: DateTime<Utc>,
    pub text: Option<String>,
    pub soap: Option<Soap>,
    pub vitals: Option<Vitals>,
    pub next_visit_on: Option<NaiveDate>,
    pub treatment_policy_changed: Option<bool>,
    pub treatment_policy_summary: Option<String>,
    pub cautions_for_team: Option<String>,
}

/// The date in Japan of a UTC time (Asia/Tokyo is a fixed +09:00).
fn date_jst(t: NaiveDateTime) -> NaiveDate {
    (t + Duration::hours(9)).date()
}

/// Checks a draft for a note of `kind` about `patient`, collecting every fault in `check`; the
/// content is only meaningful when `check` ends without faults.
pub fn check_content(check: &mut Check, mut draft: Draft, kind: NoteKind, patient: &Patient) -> Content {
    let occurred_at = crate::db::truncate(draft.occurred_at.naive_utc());
    if occurred_at > now() + Duration::minutes(CLOCK_SKEW_MINUTES) {
        check.push(
            "occurred_at",
            "in_future",
            "occurred_at(実施日時)が未来になっています。端末の時計を確認してください。",
            "occurred_at is in the future. Check the device's clock.",
        );
    } else if date_jst(occurred_at) < patient.birth_date {
        check.push(
            "occurred_at",
            "before_birth",
            "occurred_at(実施日時)が患者の生年月日より前になっています。",
            "occurred_at is before the patient's birth date.",
        );
    }

    let physician = kind == NoteKind::PhysicianInfoSharing;
    let text = draft.text.take().unwrap_or_default();
    if physician {
        check.optional_text("text", Some(&text), TEXT_MAX_CHARS);
    } else {
        check.text("text", &text, TEXT_MAX_CHARS);
    }

    let soap = draft.soap.take().filter(|s| !s.is_empty());
    if let Some(s) = &soap {
        check.optional_text("soap.subjective", s.subjective.as_deref(), SOAP_PART_MAX_CHARS);
        check.optional_text("soap.objective", s.objective.as_deref(), SOAP_PART_MAX_CHARS);
        check.optional_text("soap.assessment", s.assessment.as_deref(), SOAP_PART_MAX_CHARS);
        check.optional_text("soap.plan", s.plan.as_deref(), SOAP_PART_MAX_CHARS);
    }

    if let Some(v) = &draft.vitals {
        if let Err(e) = v.validate(patient.spo2_target_88_92) {
            for f in e.field_errors() {
                check.push(&f.field, f.code, f.message.ja.clone(), f.message.en.clone());
            }
        }
    }

    let info = if physician {
        physician_info(check, &draft, occurred_at)
    } else {
        for (field, given) in [
            ("next_visit_on", draft.next_visit_on.is_some()),
            ("treatment_policy_changed", draft.treatment_policy_changed.is_some()),
            ("treatment_policy_summary", draft.treatment_policy_summary.is_some()),
            ("cautions_for_team", draft.cautions_for_team.is_some()),
        ] {
            if given {
                check.push(
                    field,
                    "not_for_kind",
                    format!("{field} は医師の情報共有ノート(physician_info_sharing)の項目です。"),
                    format!("{field} belongs to a physician's information-sharing note (physician_info_sharing) only."),
                );
            }
        }
        None
    };

    // Scored on the patient's scale unless the note overrides it (checked above).
    let vitals = draft.vitals.take().map(|v| v.following_patient(patient.spo2_target_88_92));
    Content { occurred_at, text, soap, vitals, physician: info }
}

/// The items 在宅医療情報連携加算 requires: the next visit date, whether the treatment policy
/// changed (with a summary when it did) and cautions for the care team.
fn physician_info(check: &mut Check, draft: &Draft, occurred_at: NaiveDateTime) -> Option<PhysicianInfo> {
    let required = |check: &mut Check, field: &str, ja: &str| {
        check.push(field, "required", format!("{ja}({field})を入力してください。"), format!("{field} is required."));
    };
    if draft.next_visit_on.is_none() {
        required(check, "next_visit_on", "次回の訪問予定日");
    }
    if draft.treatment_policy_changed.is_none() {
        required(check, "treatment_policy_changed", "治療方針の変更の有無");
    }
    if let Some(day) = draft.next_visit_on {
        if day < date_jst(occurred_at) {
            check.push(
                "next_visit_on",
                "before_occurred_at",
                "次回の訪問予定日が記録の日付より前になっています。",
                "next_visit_on is before the date of the note.",
            );
        }
    }
    match (draft.treatment_policy_changed, draft.treatment_policy_summary.as_deref()) {
        (Some(true), None) => required(check, "treatment_policy_summary", "治療方針の変更内容"),
        (Some(true), Some(s)) => check.text("treatment_policy_summary", s, PHYSICIAN_FIELD_MAX_CHARS),
        (_, summary) => check.optional_text("treatment_policy_summary", summary, PHYSICIAN_FIELD_MAX_CHARS),
    }
    match draft.cautions_for_team.as_deref() {
        None => required(check, "cautions_for_team", "ケアチームへの注意事項"),
        Some(c) => check.text("cautions_for_team", c, PHYSICIAN_FIELD_MAX_CHARS),
    }
    Some(PhysicianInfo {
        next_visit_on: draft.next_visit_on?,
        treatment_policy_changed: draft.treatment_policy_changed?,
        treatment_policy_summary: draft.treatment_policy_summary.clone(),
        cautions_for_team: draft.cautions_for_team.clone()?,
    })
}

/// The audit detail of a version that overrides the patient's SpO2 scale 2 with scale 1: the
/// override is a clinical decision, so the trail shows it (its reason stays in the version).
pub fn scale_override(version: &Version) -> Option<&'static str> {
    (version.spo2_scale_basis == Some(Spo2ScaleBasis::NoteOverride)).then_some("spo2_scale_override:1")
}

/// Posts a new note of `kind` about `patient` (whom the policy already let the caller write for):
/// 422 naming each field at fault, otherwise the note, audited, with the flag its vital signs
/// raise or worsen.
pub fn post(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    limits: &EscalationLimits,
    patient: &Patient,
    kind: NoteKind,
    draft: Draft,
) -> AppResult<Listed> {
    let mut check = Check::new();
    let content = check_content(&mut check, draft, kind, patient);
    check.finish()?;
    let t = now();
    let note = Note {
        id: new_id(),
        patient_id: patient.id.clone(),
        kind,
        author_id: me.id.clone(),
        organization_id: me.employer()?.to_string(),
        author_profession: me.profession,
        created_at: t,
    };
    let first = Version::new(&note, 1, content, &me.id, None, t);
    notes::insert(conn, &note, &first)?;
    let mut event = Event::new(Action::Create, Resource::Note, Some(&note.id), Some(&patient.id));
    if let Some(detail) = scale_override(&first) {
        event = event.detail(detail);
    }
    audit::record(conn, me, event)?;
    // Vital signs that reach a NEWS2 trigger raise (or update) the patient's flag.
    if let Some(score) = first.news2()? {
        flags::alerts::on_note_scored(conn, mailer, limits, &me.id, patient, &note.id, &score, t)?;
    }
    Ok(Listed { note, version: first, author_name: me.name.clone() })
}
