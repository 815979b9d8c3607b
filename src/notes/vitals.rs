//! Vital signs recorded on a note (DESIGN.md §4; JSON field names per DESIGN.md §8). Every
//! measurement is optional: a home visit records what was measured, and NEWS2 is scored from
//! what is given (see `news2`).

use serde::{Deserialize, Serialize};

use crate::api::Check;
use crate::error::AppError;
use crate::vocab::Spo2ScaleBasis;

/// The longest reason a note gives for overriding the patient's SpO2 scale.
pub const SPO2_SCALE_REASON_MAX_CHARS: usize = 1_000;

crate::text_enum! {
    /// Level of consciousness on the ACVPU scale, sent as `"A"`, `"C"`, `"V"`, `"P"` or `"U"`:
    /// alert; new confusion (new-onset or worsening disorientation, delirium); responds to
    /// voice; responds to pain; unresponsive.
    Consciousness {
        A => "A",
        C => "C",
        V => "V",
        P => "P",
        U => "U",
    }
}

/// The `vitals` object of a note. Unknown fields are refused so that a misspelt measurement
/// is reported instead of silently dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vitals {
    /// Body temperature, °C.
    pub temperature: Option<f64>,
    /// Systolic blood pressure, mmHg.
    pub systolic_bp: Option<i32>,
    /// Diastolic blood pressure, mmHg.
    pub diastolic_bp: Option<i32>,
    /// Pulse, beats per minute.
    pub pulse: Option<i32>,
    /// Respiration rate, breaths per minute.
    pub respiratory_rate: Option<i32>,
    /// Oxygen saturation by pulse oximetry, %.
    pub spo2: Option<i32>,
    /// NEWS2 SpO2 scale. Sent: omitted to follow the patient (scale 2 when a clinician recorded
    /// the patient's 88–92% target, scale 1 otherwise), or 1 with `spo2_scale_reason` to override
    /// the patient's scale 2 in this note. Shown: the scale the note was scored on.
    pub spo2_scale: Option<u8>,
    /// Why this note overrides the patient's scale 2 with scale 1; only with that override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spo2_scale_reason: Option<String>,
    /// Supplemental oxygen at the time of measurement (`false` = on room air).
    pub on_oxygen: Option<bool>,
    /// ACVPU.
    pub consciousness: Option<Consciousness>,
}

/// An inclusive range of plausible values for one whole-number measurement.
struct IntRange {
    field: &'static str,
    label_ja: &'static str,
    label_en: &'static str,
    unit_ja: &'static str,
    unit_en: &'static str,
    min: i32,
    max: i32,
}

// Physiologically plausible ranges. They catch typing slips (a missing or extra digit, a value
// in the wrong box, °F for °C) while still accepting extreme but survivable readings; they are
// not clinical normal ranges. Diastolic pressure must also be below systolic.
//
//   temperature       25.0–45.0 °C   (severe hypothermia to extreme hyperpyrexia)
//   systolic_bp       40–300 mmHg
//   diastolic_bp      20–200 mmHg, and below systolic_bp
//   pulse             20–250 /min
//   respiratory_rate  1–80 /min
//   spo2              50–100 %       (pulse oximetry is unreliable below this)
//   spo2_scale        1 or 2; 2 only when the patient's prescribed target is 88–92%
const TEMPERATURE_MIN: f64 = 25.0;
const TEMPERATURE_MAX: f64 = 45.0;
const SYSTOLIC: IntRange = IntRange {
    field: "vitals.systolic_bp",
    label_ja: "収縮期血圧",
    label_en: "systolic_bp",
    unit_ja: "mmHg",
    unit_en: "mmHg",
    min: 40,
    max: 300,
};
const DIASTOLIC: IntRange = IntRange {
    field: "vitals.diastolic_bp",
    label_ja: "拡張期血圧",
    label_en: "diastolic_bp",
    unit_ja: "mmHg",
    unit_en: "mmHg",
    min: 20,
    max: 200,
};
const PULSE: IntRange = IntRange {
    field: "vitals.pulse",
    label_ja: "脈拍",
    label_en: "pulse",
    unit_ja: "回/分",
    unit_en: "/min",
    min: 20,
    max: 250,
};
const RESPIRATORY_RATE: IntRange = IntRange {
    field: "vitals.respiratory_rate",
    label_ja: "呼吸数",
    label_en: "respiratory_rate",
    unit_ja: "回/分",
    unit_en: "/min",
    min: 1,
    max: 80,
};
const SPO2: IntRange = IntRange {
    field: "vitals.spo2",
    label_ja: "SpO2",
    label_en: "spo2",
    unit_ja: "%",
    unit_en: "%",
    min: 50,
    max: 100,
};

impl IntRange {
    fn contains(&self, value: i32) -> bool {
        (self.min..=self.max).contains(&value)
    }

    fn check(&self, check: &mut Check, value: Option<i32>) {
        let Some(value) = value else { return };
        if !self.contains(value) {
            let IntRange { label_ja, label_en, unit_ja, unit_en, min, max, .. } = self;
            check.push(
                self.field,
                "out_of_range",
                format!("{label_ja}は {min}〜{max} {unit_ja} の範囲で入力してください(入力値: {value})。"),
                format!("{label_en} must be between {min} and {max} {unit_en} (got {value})."),
            );
        }
    }
}

impl Vitals {
    /// True when no measurement at all is given.
    pub fn is_empty(&self) -> bool {
        self == &Vitals::default()
    }

    /// The SpO2 scale that applies: the one given, or 1 when `spo2` is given without a scale.
    pub fn effective_spo2_scale(&self) -> Option<u8> {
        self.spo2.map(|_| self.spo2_scale.unwrap_or(1))
    }

    /// The vitals as they are scored and stored for a patient with (`patient_target`) or without
    /// a recorded 88–92% target: a note that sends no scale follows the patient, and scale 1 for
    /// a patient on scale 2 is an override (it carries its reason). Expects vitals that passed
    /// [`Vitals::validate`] with the same `patient_target`.
    pub fn following_patient(mut self, patient_target: bool) -> Vitals {
        if self.spo2.is_none() {
            return self;
        }
        let overridden = patient_target && self.spo2_scale == Some(1);
        self.spo2_scale = Some(if patient_target && !overridden { 2 } else { 1 });
        if !overridden {
            self.spo2_scale_reason = None;
        }
        self
    }

    /// Why SpO2 is scored on its scale, read from vitals resolved by
    /// [`Vitals::following_patient`]: scale 2 is the patient's recorded target, scale 1 with a
    /// reason is a note's override of it, scale 1 without one the standard; `None` without SpO2.
    pub fn spo2_scale_basis(&self) -> Option<Spo2ScaleBasis> {
        self.effective_spo2_scale().map(|scale| match (scale, &self.spo2_scale_reason) {
            (2, _) => Spo2ScaleBasis::PatientTarget,
            (_, Some(_)) => Spo2ScaleBasis::NoteOverride,
            _ => Spo2ScaleBasis::Standard,
        })
    }

    /// The scale rules of [`Vitals::validate`].
    fn check_scale(&self, check: &mut Check, patient_target: bool) {
        let reason = self.spo2_scale_reason.as_deref();
        if self.spo2.is_none() {
            if self.spo2_scale.is_some() {
                check.push(
                    "vitals.spo2_scale",
                    "without_spo2",
                    "SpO2 スケールは SpO2 の値と一緒に入力してください。",
                    "spo2_scale may only be given together with spo2.",
                );
            }
            if reason.is_some() {
                check.push(
                    "vitals.spo2_scale_reason",
                    "without_spo2",
                    "SpO2 スケールの変更理由は SpO2 の値と一緒に入力してください。",
                    "spo2_scale_reason may only be given together with spo2.",
                );
            }
            return;
        }
        match self.spo2_scale {
            Some(scale) if scale != 1 && scale != 2 => check.push(
                "vitals.spo2_scale",
                "invalid_scale",
                format!("SpO2 スケールは 1 または 2 を指定してください(入力値: {scale})。"),
                format!("spo2_scale must be 1 or 2 (got {scale})."),
            ),
            Some(2) if !patient_target => check.push(
                "vitals.spo2_scale",
                "scale_2_not_allowed",
                "SpO2 スケール2は、目標 SpO2 88〜92% が医療職により患者に登録されている場合(高二酸化炭素血症性呼吸不全など)にのみ使えます。この患者にはその指示が登録されていないため、スケール1を使ってください。",
                "SpO2 scale 2 is only for a patient whose target saturation of 88–92% a clinician has recorded (e.g. hypercapnic respiratory failure). No such target is recorded for this patient: use scale 1.",
            ),
            Some(1) if patient_target => match reason {
                Some(r) => check.text("vitals.spo2_scale_reason", r, SPO2_SCALE_REASON_MAX_CHARS),
                None => check.push(
                    "vitals.spo2_scale_reason",
                    "required",
                    "この患者には目標 SpO2 88〜92%(スケール2)が登録されています。この記録だけスケール1で評価する場合は、その理由(spo2_scale_reason)を入力してください。",
                    "A target saturation of 88–92% (scale 2) is recorded for this patient. To score this note on scale 1 instead, give the reason in spo2_scale_reason.",
                ),
            },
            _ if reason.is_some() => check.push(
                "vitals.spo2_scale_reason",
                "not_an_override",
                "spo2_scale_reason は、スケール2の患者をこの記録だけスケール1で評価する場合(spo2_scale: 1)にのみ入力します。",
                "spo2_scale_reason is only for scoring a scale-2 patient's note on scale 1 (spo2_scale: 1).",
            ),
            _ => {}
        }
    }

    /// Checks every measurement and reports all faults at once, with field names under
    /// `vitals.`. `patient_target` says whether a clinician recorded the patient's target
    /// saturation of 88–92% (DOMAIN.md, NEWS2): the only case where SpO2 scale 2 applies, and
    /// then the scale every note follows unless it overrides it with a reason.
    pub fn validate(&self, patient_target: bool) -> Result<(), AppError> {
        let mut check = Check::new();
        if self.is_empty() {
            check.push(
                "vitals",
                "empty",
                "バイタルサインは少なくとも1項目を入力してください。",
                "Give at least one measurement in vitals.",
            );
            return check.finish();
        }

        if let Some(t) = self.temperature {
            if !(t.is_finite() && (TEMPERATURE_MIN..=TEMPERATURE_MAX).contains(&t)) {
                check.push(
                    "vitals.temperature",
                    "out_of_range",
                    format!(
                        "体温は {TEMPERATURE_MIN:.1}〜{TEMPERATURE_MAX:.1} ℃ の範囲で入力してください(入力値: {t})。"
                    ),
                    format!("temperature must be between {TEMPERATURE_MIN:.1} and {TEMPERATURE_MAX:.1} °C (got {t})."),
                );
            }
        }

        SYSTOLIC.check(&mut check, self.systolic_bp);
        DIASTOLIC.check(&mut check, self.diastolic_bp);
        if let (Some(sys), Some(dia)) = (self.systolic_bp, self.diastolic_bp) {
            if SYSTOLIC.contains(sys) && DIASTOLIC.contains(dia) && dia >= sys {
                check.push(
                    "vitals.diastolic_bp",
                    "not_below_systolic",
                    format!("拡張期血圧({dia} mmHg)は収縮期血圧({sys} mmHg)より低い値にしてください。"),
                    format!("diastolic_bp ({dia} mmHg) must be below systolic_bp ({sys} mmHg)."),
                );
            }
        }

        PULSE.check(&mut check, self.pulse);
        RESPIRATORY_RATE.check(&mut check, self.respiratory_rate);
        SPO2.check(&mut check, self.spo2);

        self.check_scale(&mut check, patient_target);
        check.finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::notes::vitals::*;

    /// (field, code) of every field error, in order.
    fn faults(v: &Vitals, scale_2_allowed: bool) -> Vec<(String, &'static str)> {
        match v.validate(scale_2_allowed) {
            Ok(()) => Vec::new(),
            Err(e) => {
                assert_eq!(e.slug(), "validation");
                e.field_errors().iter().map(|f| (f.field.clone(), f.code)).collect()
            }
        }
    }

    fn one(field: &str, code: &'static str) -> Vec<(String, &'static str)> {
        vec![(field.to_string(), code)]
    }

    #[test]
    fn empty_vitals_are_refused() {
        let v = Vitals::default();
        assert!(v.is_empty());
        assert_eq!(faults(&v, true), one("vitals", "empty"));
        let v: Vitals = serde_json::from_str("{}").unwrap();
        assert!(v.is_empty());
        let v = Vitals { on_oxygen: Some(false), ..Vitals::default() };
        assert!(!v.is_empty());
        assert!(v.validate(false).is_ok());
    }

    #[test]
    fn a_full_set_within_range_is_accepted() {
        let v = Vitals {
            temperature: Some(36.8),
            systolic_bp: Some(128),
            diastolic_bp: Some(76),
            pulse: Some(72),
            respiratory_rate: Some(16),
            spo2: Some(97),
            spo2_scale: Some(1),
            spo2_scale_reason: None,
            on_oxygen: Some(false),
            consciousness: Some(Consciousness::A),
        };
        assert!(v.validate(false).is_ok());
    }

    #[test]
    fn range_limits_are_inclusive() {
        let ok = |v: Vitals| assert!(v.validate(false).is_ok(), "{v:?}");
        ok(Vitals { temperature: Some(25.0), ..Vitals::default() });
        ok(Vitals { temperature: Some(45.0), ..Vitals::default() });
        ok(Vitals { systolic_bp: Some(40), ..Vitals::default() });
        ok(Vitals { systolic_bp: Some(300), ..Vitals::default() });
        ok(Vitals { diastolic_bp: Some(20), ..Vitals::default() });
        ok(Vitals { diastolic_bp: Some(200), ..Vitals::default() });
        ok(Vitals { pulse: Some(20), ..Vitals::default() });
        ok(Vitals { pulse: Some(250), ..Vitals::default() });
        ok(Vitals { respiratory_rate: Some(1), ..Vitals::default() });
        ok(Vitals { respiratory_rate: Some(80), ..Vitals::default() });
        ok(Vitals { spo2: Some(50), ..Vitals::default() });
        ok(Vitals { spo2: Some(100), ..Vitals::default() });
    }

    #[test]
    fn temperature_out_of_range() {
        for t in [24.9, 45.1, -1.0, f64::NAN, f64::INFINITY] {
            let v = Vitals { temperature: Some(t), ..Vitals::default() };
            assert_eq!(faults(&v, false), one("vitals.temperature", "out_of_range"), "{t}");
        }
    }

    #[test]
    fn each_integer_field_out_of_range_names_its_field() {
        let cases: [(Vitals, &str); 10] = [
            (Vitals { systolic_bp: Some(39), ..Vitals::default() }, "vitals.systolic_bp"),
            (Vitals { systolic_bp: Some(301), ..Vitals::default() }, "vitals.systolic_bp"),
            (Vitals { diastolic_bp: Some(19), ..Vitals::default() }, "vitals.diastolic_bp"),
            (Vitals { diastolic_bp: Some(201), ..Vitals::default() }, "vitals.diastolic_bp"),
            (Vitals { pulse: Some(19), ..Vitals::default() }, "vitals.pulse"),
            (Vitals { pulse: Some(251), ..Vitals::default() }, "vitals.pulse"),
            (Vitals { respiratory_rate: Some(0), ..Vitals::default() }, "vitals.respiratory_rate"),
            (Vitals { respiratory_rate: Some(81), ..Vitals::default() }, "vitals.respiratory_rate"),
            (Vitals { spo2: Some(49), ..Vitals::default() }, "vitals.spo2"),
            (Vitals { spo2: Some(101), ..Vitals::default() }, "vitals.spo2"),
        ];
        for (v, field) in cases {
            assert_eq!(faults(&v, false), one(field, "out_of_range"), "{v:?}");
        }
    }

    #[test]
    fn messages_are_japanese_and_english_and_name_the_range() {
        let e = Vitals { pulse: Some(400), ..Vitals::default() }.validate(false).unwrap_err();
        let f = &e.field_errors()[0];
        assert!(f.message.ja.contains("脈拍"), "{}", f.message.ja);
        assert!(f.message.ja.contains("20〜250"), "{}", f.message.ja);
        assert!(f.message.en.contains("between 20 and 250 /min"), "{}", f.message.en);
        let e = Vitals { temperature: Some(50.0), ..Vitals::default() }.validate(false).unwrap_err();
        let f = &e.field_errors()[0];
        assert!(f.message.ja.contains("25.0〜45.0"), "{}", f.message.ja);
        assert!(f.message.en.contains("between 25.0 and 45.0 °C"), "{}", f.message.en);
    }

    #[test]
    fn diastolic_must_be_below_systolic() {
        let v = Vitals { systolic_bp: Some(120), diastolic_bp: Some(120), ..Vitals::default() };
        assert_eq!(faults(&v, false), one("vitals.diastolic_bp", "not_below_systolic"));
        let v = Vitals { systolic_bp: Some(100), diastolic_bp: Some(140), ..Vitals::default() };
        assert_eq!(faults(&v, false), one("vitals.diastolic_bp", "not_below_systolic"));
        let v = Vitals { systolic_bp: Some(120), diastolic_bp: Some(119), ..Vitals::default() };
        assert!(v.validate(false).is_ok());
        // Diastolic alone is fine.
        assert!(Vitals { diastolic_bp: Some(80), ..Vitals::default() }.validate(false).is_ok());
    }

    #[test]
    fn spo2_scale_must_be_1_or_2() {
        for scale in [0u8, 3, 255] {
            let v = Vitals { spo2: Some(95), spo2_scale: Some(scale), ..Vitals::default() };
            assert_eq!(faults(&v, true), one("vitals.spo2_scale", "invalid_scale"), "{scale}");
        }
        let v = Vitals { spo2: Some(95), spo2_scale: Some(1), ..Vitals::default() };
        assert!(v.validate(false).is_ok());
    }

    #[test]
    fn spo2_scale_2_only_when_allowed() {
        let v = Vitals { spo2: Some(90), spo2_scale: Some(2), ..Vitals::default() };
        assert!(v.validate(true).is_ok());
        assert_eq!(faults(&v, false), one("vitals.spo2_scale", "scale_2_not_allowed"));
        let e = v.validate(false).unwrap_err();
        let f = &e.field_errors()[0];
        assert!(f.message.ja.contains("88〜92%"), "{}", f.message.ja);
        assert!(f.message.en.contains("88–92%"), "{}", f.message.en);
    }

    #[test]
    fn a_note_without_a_scale_follows_the_patient() {
        let v = Vitals { spo2: Some(97), on_oxygen: Some(true), ..Vitals::default() };
        assert!(v.validate(true).is_ok());
        let scored = v.clone().following_patient(true);
        assert_eq!(scored.spo2_scale, Some(2));
        assert_eq!(scored.spo2_scale_basis(), Some(Spo2ScaleBasis::PatientTarget));
        let scored = v.following_patient(false);
        assert_eq!(scored.spo2_scale, Some(1));
        assert_eq!(scored.spo2_scale_basis(), Some(Spo2ScaleBasis::Standard));
        let no_spo2 = Vitals { pulse: Some(80), ..Vitals::default() }.following_patient(true);
        assert_eq!((no_spo2.spo2_scale, no_spo2.spo2_scale_basis()), (None, None));
    }

    #[test]
    fn overriding_scale_2_needs_a_reason() {
        let v = Vitals { spo2: Some(97), spo2_scale: Some(1), ..Vitals::default() };
        assert_eq!(faults(&v, true), one("vitals.spo2_scale_reason", "required"));
        let blank = Vitals { spo2_scale_reason: Some("  ".into()), ..v.clone() };
        assert_eq!(faults(&blank, true), one("vitals.spo2_scale_reason", "required"));
        let v = Vitals {
            spo2_scale_reason: Some("急性増悪は否定され、主治医の指示で本日はスケール1".into()), ..v
        };
        assert!(v.validate(true).is_ok());
        let scored = v.clone().following_patient(true);
        assert_eq!(scored.spo2_scale, Some(1));
        assert_eq!(scored.spo2_scale_basis(), Some(Spo2ScaleBasis::NoteOverride));
        // A reason is only for that override.
        assert_eq!(faults(&v, false), one("vitals.spo2_scale_reason", "not_an_override"));
        let two = Vitals { spo2_scale: Some(2), ..v.clone() };
        assert_eq!(faults(&two, true), one("vitals.spo2_scale_reason", "not_an_override"));
        let alone = Vitals { spo2: None, spo2_scale: None, pulse: Some(80), ..v };
        assert_eq!(faults(&alone, true), one("vitals.spo2_scale_reason", "without_spo2"));
    }

    #[test]
    fn spo2_scale_without_spo2_is_refused() {
        let v = Vitals { spo2_scale: Some(1), pulse: Some(80), ..Vitals::default() };
        assert_eq!(faults(&v, true), one("vitals.spo2_scale", "without_spo2"));
    }

    #[test]
    fn effective_scale_defaults_to_1() {
        assert_eq!(Vitals { spo2: Some(95), ..Vitals::default() }.effective_spo2_scale(), Some(1));
        assert_eq!(Vitals { spo2: Some(95), spo2_scale: Some(2), ..Vitals::default() }.effective_spo2_scale(), Some(2));
        assert_eq!(Vitals { pulse: Some(80), ..Vitals::default() }.effective_spo2_scale(), None);
    }

    #[test]
    fn all_faults_are_reported_together() {
        let v = Vitals {
            temperature: Some(50.0),
            systolic_bp: Some(10),
            diastolic_bp: Some(500),
            pulse: Some(0),
            respiratory_rate: Some(200),
            spo2: Some(20),
            spo2_scale: Some(2),
            spo2_scale_reason: None,
            on_oxygen: Some(true),
            consciousness: Some(Consciousness::U),
        };
        let fields: Vec<String> = faults(&v, false).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "vitals.temperature",
                "vitals.systolic_bp",
                "vitals.diastolic_bp",
                "vitals.pulse",
                "vitals.respiratory_rate",
                "vitals.spo2",
                "vitals.spo2_scale",
            ]
        );
    }

    #[test]
    fn json_uses_the_design_field_names() {
        let v: Vitals = serde_json::from_str(
            r#"{"temperature":37.2,"systolic_bp":130,"diastolic_bp":80,"pulse":88,"respiratory_rate":18,
                "spo2":94,"spo2_scale":2,"on_oxygen":true,"consciousness":"C"}"#,
        )
        .unwrap();
        assert_eq!(v.consciousness, Some(Consciousness::C));
        assert_eq!(v.spo2_scale, Some(2));
        let back = serde_json::to_value(&v).unwrap();
        assert_eq!(back["consciousness"], "C");
        assert_eq!(back["respiratory_rate"], 18);
        for c in ["A", "C", "V", "P", "U"] {
            let parsed: Consciousness = serde_json::from_value(serde_json::json!(c)).unwrap();
            assert_eq!(parsed.as_str(), c);
        }
    }

    #[test]
    fn unknown_fields_and_values_are_refused() {
        assert!(serde_json::from_str::<Vitals>(r#"{"heart_rate":80}"#).is_err());
        assert!(serde_json::from_str::<Vitals>(r#"{"consciousness":"X"}"#).is_err());
        assert!(serde_json::from_str::<Vitals>(r#"{"consciousness":"a"}"#).is_err());
        assert!(serde_json::from_str::<Vitals>(r#"{"spo2_scale":-1}"#).is_err());
    }
}
