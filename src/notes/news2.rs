//! NEWS2 (National Early Warning Score 2) from a note's vital signs.
//!
//! NEWS2 is validated in hospitals and ambulances, not in home care: the score is decision
//! support that raises a flag for a clinician to judge, never a diagnosis (DOMAIN.md, NEWS2).
//! It is scored only from the parameters given. A parameter that was not measured scores
//! nothing and is listed in `missing`, and the score is then `partial`: its total is a lower
//! bound of what the full score would be.

use serde::{Deserialize, Serialize};

use super::vitals::Vitals;
use crate::vocab::Spo2ScaleBasis;

crate::text_enum! {
    /// Clinical-response band (NEWS2; docs/domain.md): `low` for 0–4, `low_medium` when one
    /// parameter scores 3 and the total is below 5, `medium` for 5–6, `high` for 7 or more.
    Band {
        Low => "low",
        LowMedium => "low_medium",
        Medium => "medium",
        High => "high",
    }
}

/// The seven NEWS2 parameters, spelled as the keys of `subscores` and the entries of `missing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Parameter {
    RespiratoryRate,
    Spo2,
    AirOrOxygen,
    SystolicBp,
    Pulse,
    Consciousness,
    Temperature,
}

impl Parameter {
    /// In the order of the NEWS2 chart.
    pub const ALL: [Parameter; 7] = [
        Parameter::RespiratoryRate,
        Parameter::Spo2,
        Parameter::AirOrOxygen,
        Parameter::SystolicBp,
        Parameter::Pulse,
        Parameter::Consciousness,
        Parameter::Temperature,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Parameter::RespiratoryRate => "respiratory_rate",
            Parameter::Spo2 => "spo2",
            Parameter::AirOrOxygen => "air_or_oxygen",
            Parameter::SystolicBp => "systolic_bp",
            Parameter::Pulse => "pulse",
            Parameter::Consciousness => "consciousness",
            Parameter::Temperature => "temperature",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Parameter::RespiratoryRate => "呼吸数",
            Parameter::Spo2 => "SpO2",
            Parameter::AirOrOxygen => "酸素投与",
            Parameter::SystolicBp => "収縮期血圧",
            Parameter::Pulse => "脈拍",
            Parameter::Consciousness => "意識レベル",
            Parameter::Temperature => "体温",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Parameter::RespiratoryRate => "respiratory rate",
            Parameter::Spo2 => "SpO2",
            Parameter::AirOrOxygen => "air or oxygen",
            Parameter::SystolicBp => "systolic blood pressure",
            Parameter::Pulse => "pulse",
            Parameter::Consciousness => "consciousness",
            Parameter::Temperature => "temperature",
        }
    }
}

/// Score of each parameter; `None` (JSON `null`) when it was not measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscores {
    pub respiratory_rate: Option<u8>,
    pub spo2: Option<u8>,
    pub air_or_oxygen: Option<u8>,
    pub systolic_bp: Option<u8>,
    pub pulse: Option<u8>,
    pub consciousness: Option<u8>,
    pub temperature: Option<u8>,
}

impl Subscores {
    pub fn get(&self, p: Parameter) -> Option<u8> {
        match p {
            Parameter::RespiratoryRate => self.respiratory_rate,
            Parameter::Spo2 => self.spo2,
            Parameter::AirOrOxygen => self.air_or_oxygen,
            Parameter::SystolicBp => self.systolic_bp,
            Parameter::Pulse => self.pulse,
            Parameter::Consciousness => self.consciousness,
            Parameter::Temperature => self.temperature,
        }
    }
}

/// A NEWS2 score. JSON: `{"total", "band", "subscores", "missing", "partial", "max_single",
/// "spo2_scale", "spo2_scale_basis"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct News2 {
    /// Sum of the subscores given, 0–20.
    pub total: u8,
    pub band: Band,
    pub subscores: Subscores,
    /// Parameters not measured, in chart order.
    pub missing: Vec<Parameter>,
    /// True when any parameter is missing: the total is then a lower bound.
    pub partial: bool,
    /// The highest single subscore (3 triggers an urgent response on its own).
    pub max_single: u8,
    /// The SpO2 scale scored (1 or 2); `None` without SpO2.
    pub spo2_scale: Option<u8>,
    /// Why that scale: the standard, the patient's recorded 88–92% target, or this note's
    /// override with a reason; `None` without SpO2 and for notes scored before it was recorded.
    pub spo2_scale_basis: Option<Spo2ScaleBasis>,
}

/// How strongly a score asks for a clinician's attention; spelled as a flag's `severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    /// Total 5 or more, or 3 in any single parameter: urgent response.
    Urgent,
    /// Total 7 or more: emergency response.
    Emergency,
}

impl AlertLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertLevel::Urgent => "urgent",
            AlertLevel::Emergency => "emergency",
        }
    }
}

/// Total at and above which the response is urgent (the key threshold).
pub const URGENT_TOTAL: u8 = 5;
/// Total at and above which the response is an emergency.
pub const EMERGENCY_TOTAL: u8 = 7;
/// A single parameter scoring this much asks for an urgent response on its own.
pub const SINGLE_PARAMETER_TRIGGER: u8 = 3;

/// The NEWS2 chart, one function per row; ranges are inclusive.
///
/// Source: Royal College of Physicians, *National Early Warning Score (NEWS) 2: Standardising
/// the assessment of acute-illness severity in the NHS*, 2017 — the NEWS2 scoring chart, as
/// transcribed in shared/DOMAIN.md ("NEWS2"):
///
/// | parameter        | 3     | 2      | 1         | 0                 | 1            | 2            | 3          |
/// |------------------|-------|--------|-----------|-------------------|--------------|--------------|------------|
/// | respiration /min | ≤8    |        | 9–11      | 12–20             |              | 21–24        | ≥25        |
/// | SpO2 scale 1 %   | ≤91   | 92–93  | 94–95     | ≥96               |              |              |            |
/// | SpO2 scale 2 %   | ≤83   | 84–85  | 86–87     | 88–92, ≥93 on air | 93–94 on O2  | 95–96 on O2  | ≥97 on O2  |
/// | air or oxygen    |       | oxygen |           | air               |              |              |            |
/// | systolic BP mmHg | ≤90   | 91–100 | 101–110   | 111–219           |              |              | ≥220       |
/// | pulse /min       | ≤40   |        | 41–50     | 51–90             | 91–110       | 111–130      | ≥131       |
/// | consciousness    |       |        |           | alert             |              |              | C, V, P, U |
/// | temperature °C   | ≤35.0 |        | 35.1–36.0 | 36.1–38.0         | 38.1–39.0    | ≥39.1        |            |
mod chart {
    use crate::notes::vitals::Consciousness;

    pub(super) fn respiratory_rate(per_min: i32) -> u8 {
        match per_min {
            ..=8 => 3,
            9..=11 => 1,
            12..=20 => 0,
            21..=24 => 2,
            25.. => 3,
        }
    }

    pub(super) fn spo2_scale_1(percent: i32) -> u8 {
        match percent {
            ..=91 => 3,
            92..=93 => 2,
            94..=95 => 1,
            96.. => 0,
        }
    }

    /// Scale 2 is for a prescribed target saturation of 88–92% (hypercapnic respiratory failure):
    /// at 93% or more, saturation above target scores only when the patient is on oxygen.
    pub(super) fn spo2_scale_2(percent: i32, on_oxygen: bool) -> u8 {
        match (percent, on_oxygen) {
            (..=83, _) => 3,
            (84..=85, _) => 2,
            (86..=87, _) => 1,
            (88..=92, _) => 0,
            (93.., false) => 0,
            (93..=94, true) => 1,
            (95..=96, true) => 2,
            (97.., true) => 3,
        }
    }

    pub(super) fn air_or_oxygen(on_oxygen: bool) -> u8 {
        if on_oxygen {
            2
        } else {
            0
        }
    }

    pub(super) fn systolic_bp(mmhg: i32) -> u8 {
        match mmhg {
            ..=90 => 3,
            91..=100 => 2,
            101..=110 => 1,
            111..=219 => 0,
            220.. => 3,
        }
    }

    pub(super) fn pulse(per_min: i32) -> u8 {
        match per_min {
            ..=40 => 3,
            41..=50 => 1,
            51..=90 => 0,
            91..=110 => 1,
            111..=130 => 2,
            131.. => 3,
        }
    }

    pub(super) fn consciousness(c: Consciousness) -> u8 {
        match c {
            Consciousness::A => 0,
            Consciousness::C | Consciousness::V | Consciousness::P | Consciousness::U => 3,
        }
    }

    /// The chart's temperature rows have one-decimal boundaries, so the reading is first rounded
    /// to one decimal, halves upwards as in everyday rounding (35.04 → 35.0 scores 3; 35.05 and
    /// 35.06 → 35.1 score 1), and compared in tenths of °C.
    pub(super) fn temperature(celsius: f64) -> u8 {
        let tenths = (celsius * 10.0).round() as i64;
        match tenths {
            ..=350 => 3,
            351..=360 => 1,
            361..=380 => 0,
            381..=390 => 1,
            391.. => 2,
        }
    }
}

/// Scores NEWS2 from the vital signs given. Expects vitals that passed `Vitals::validate`;
/// a `spo2_scale` other than 2 is read as scale 1, and a non-finite temperature counts as
/// missing.
///
/// SpO2 scale 2 with `on_oxygen` unknown: the oxygen-dependent rows (93% or more) cannot be
/// told apart, so SpO2 is scored as on air — the lower possible value, in keeping with a
/// partial score being a lower bound — and `air_or_oxygen` is listed as missing, so the
/// reader sees that the score is partial.
pub fn score(v: &Vitals) -> News2 {
    let spo2 = v.spo2.map(|percent| match v.effective_spo2_scale() {
        Some(2) => chart::spo2_scale_2(percent, v.on_oxygen.unwrap_or(false)),
        _ => chart::spo2_scale_1(percent),
    });
    let subscores = Subscores {
        respiratory_rate: v.respiratory_rate.map(chart::respiratory_rate),
        spo2,
        air_or_oxygen: v.on_oxygen.map(chart::air_or_oxygen),
        systolic_bp: v.systolic_bp.map(chart::systolic_bp),
        pulse: v.pulse.map(chart::pulse),
        consciousness: v.consciousness.map(chart::consciousness),
        temperature: v.temperature.filter(|t| t.is_finite()).map(chart::temperature),
    };

    let given: Vec<u8> = Parameter::ALL.iter().filter_map(|&p| subscores.get(p)).collect();
    let total: u8 = given.iter().sum();
    let max_single = given.iter().copied().max().unwrap_or(0);
    let missing: Vec<Parameter> = Parameter::ALL.into_iter().filter(|&p| subscores.get(p).is_none()).collect();

    let band = if total >= EMERGENCY_TOTAL {
        Band::High
    } else if total >= URGENT_TOTAL {
        Band::Medium
    } else if max_single >= SINGLE_PARAMETER_TRIGGER {
        Band::LowMedium
    } else {
        Band::Low
    };

    let spo2_scale = v.effective_spo2_scale();
    News2 {
        total,
        band,
        subscores,
        partial: !missing.is_empty(),
        missing,
        max_single,
        spo2_scale,
        spo2_scale_basis: v.spo2_scale_basis(),
    }
}

impl News2 {
    /// `Emergency` for a total of 7 or more; `Urgent` for 5 or more or 3 in any single
    /// parameter; otherwise none. A partial score can only rise when the rest is measured, so
    /// a level reached on a partial score stands.
    pub fn alert_level(&self) -> Option<AlertLevel> {
        if self.total >= EMERGENCY_TOTAL {
            Some(AlertLevel::Emergency)
        } else if self.total >= URGENT_TOTAL || self.max_single >= SINGLE_PARAMETER_TRIGGER {
            Some(AlertLevel::Urgent)
        } else {
            None
        }
    }

    /// Parameters that scored 3 on their own, in chart order.
    pub fn parameters_scoring_3(&self) -> Vec<Parameter> {
        Parameter::ALL
            .into_iter()
            .filter(|&p| self.subscores.get(p).is_some_and(|s| s >= SINGLE_PARAMETER_TRIGGER))
            .collect()
    }

    /// What raised (or did not raise) an alert, in Japanese and English, worded as a prompt
    /// for a clinician's review: e.g. "NEWS2 合計 7" / "NEWS2 total 7", "呼吸数 単独3点" /
    /// "respiratory rate scored 3", and the parameters not measured when the score is partial.
    pub fn trigger_description(&self) -> (String, String) {
        let total = self.total;
        let mut ja = match self.alert_level() {
            Some(AlertLevel::Emergency) => format!("NEWS2 合計 {total}(7点以上: 緊急対応の目安)"),
            Some(AlertLevel::Urgent) if total >= URGENT_TOTAL => {
                format!("NEWS2 合計 {total}(5点以上: 迅速な対応の目安)")
            }
            Some(AlertLevel::Urgent) => format!("NEWS2 合計 {total}"),
            None => format!("NEWS2 合計 {total}(通知の基準未満)"),
        };
        let mut en = match self.alert_level() {
            Some(AlertLevel::Emergency) => format!("NEWS2 total {total} (7 or more: emergency-response threshold)"),
            Some(AlertLevel::Urgent) if total >= URGENT_TOTAL => {
                format!("NEWS2 total {total} (5 or more: urgent-response threshold)")
            }
            Some(AlertLevel::Urgent) => format!("NEWS2 total {total}"),
            None => format!("NEWS2 total {total} (below the alert thresholds)"),
        };

        let threes = self.parameters_scoring_3();
        if !threes.is_empty() {
            let names_ja: Vec<&str> = threes.iter().map(|p| p.label_ja()).collect();
            let names_en: Vec<&str> = threes.iter().map(|p| p.label_en()).collect();
            ja.push_str(&format!("、{} 単独3点", names_ja.join("・")));
            en.push_str(&format!("; {} scored 3", names_en.join(", ")));
        }

        if self.partial {
            let names_ja: Vec<&str> = self.missing.iter().map(|p| p.label_ja()).collect();
            let names_en: Vec<&str> = self.missing.iter().map(|p| p.label_en()).collect();
            ja.push_str(&format!("。未測定の項目があるため部分的なスコアです(未測定: {})", names_ja.join("、")));
            en.push_str(&format!(". Partial score; not measured: {}", names_en.join(", ")));
        }

        ja.push_str("。医療者による評価を促す目安であり、診断ではありません。");
        en.push_str(". A prompt for clinical review, not a diagnosis.");
        (ja, en)
    }
}

#[cfg(test)]
mod tests {
    use crate::notes::news2::*;
    use crate::notes::vitals::Consciousness;

    fn empty() -> Vitals {
        Vitals::default()
    }

    /// A complete set of vitals that scores 0 everywhere.
    fn normal() -> Vitals {
        Vitals {
            temperature: Some(37.0),
            systolic_bp: Some(120),
            diastolic_bp: Some(70),
            pulse: Some(70),
            respiratory_rate: Some(16),
            spo2: Some(98),
            spo2_scale: Some(1),
            spo2_scale_reason: None,
            on_oxygen: Some(false),
            consciousness: Some(Consciousness::A),
        }
    }

    /// Each (value, expected score) pair, scored on its own through `score`.
    fn check_row(param: Parameter, cases: &[(i32, u8)], make: impl Fn(i32) -> Vitals) {
        for &(value, expected) in cases {
            let s = score(&make(value));
            assert_eq!(s.subscores.get(param), Some(expected), "{} = {value}", param.as_str());
        }
    }

    #[test]
    fn respiratory_rate_row() {
        check_row(
            Parameter::RespiratoryRate,
            &[(1, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (80, 3)],
            |n| Vitals { respiratory_rate: Some(n), ..empty() },
        );
    }

    #[test]
    fn spo2_scale_1_row() {
        check_row(Parameter::Spo2, &[(50, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)], |n| {
            Vitals { spo2: Some(n), spo2_scale: Some(1), ..empty() }
        });
        // The default scale is 1.
        check_row(Parameter::Spo2, &[(91, 3), (92, 2), (95, 1), (96, 0)], |n| Vitals { spo2: Some(n), ..empty() });
        // On scale 1, oxygen does not change the SpO2 subscore; it scores in its own row.
        check_row(Parameter::Spo2, &[(91, 3), (92, 2), (95, 1), (96, 0), (100, 0)], |n| Vitals {
            spo2: Some(n),
            on_oxygen: Some(true),
            ..empty()
        });
    }

    #[test]
    fn spo2_scale_2_row_on_air() {
        check_row(
            Parameter::Spo2,
            &[
                (50, 3),
                (83, 3),
                (84, 2),
                (85, 2),
                (86, 1),
                (87, 1),
                (88, 0),
                (92, 0),
                (93, 0),
                (96, 0),
                (97, 0),
                (100, 0),
            ],
            |n| Vitals { spo2: Some(n), spo2_scale: Some(2), on_oxygen: Some(false), ..empty() },
        );
    }

    #[test]
    fn spo2_scale_2_row_on_oxygen() {
        check_row(
            Parameter::Spo2,
            &[
                (50, 3),
                (83, 3),
                (84, 2),
                (85, 2),
                (86, 1),
                (87, 1),
                (88, 0),
                (92, 0),
                (93, 1),
                (94, 1),
                (95, 2),
                (96, 2),
                (97, 3),
                (100, 3),
            ],
            |n| Vitals { spo2: Some(n), spo2_scale: Some(2), on_oxygen: Some(true), ..empty() },
        );
        let s = score(&Vitals { spo2: Some(97), spo2_scale: Some(2), on_oxygen: Some(true), ..empty() });
        assert_eq!(s.subscores.air_or_oxygen, Some(2));
        assert_eq!(s.total, 5);
    }

    #[test]
    fn spo2_scale_2_with_oxygen_unknown_scores_as_on_air_and_lists_air_or_oxygen_missing() {
        for (n, expected) in [(83, 3), (87, 1), (92, 0), (93, 0), (97, 0)] {
            let s = score(&Vitals { spo2: Some(n), spo2_scale: Some(2), ..empty() });
            assert_eq!(s.subscores.spo2, Some(expected), "{n}");
            assert_eq!(s.subscores.air_or_oxygen, None);
            assert!(s.missing.contains(&Parameter::AirOrOxygen));
            assert!(s.partial);
        }
    }

    #[test]
    fn air_or_oxygen_row() {
        let s = score(&Vitals { on_oxygen: Some(true), ..empty() });
        assert_eq!(s.subscores.air_or_oxygen, Some(2));
        let s = score(&Vitals { on_oxygen: Some(false), ..empty() });
        assert_eq!(s.subscores.air_or_oxygen, Some(0));
    }

    #[test]
    fn systolic_bp_row() {
        check_row(
            Parameter::SystolicBp,
            &[(40, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3), (300, 3)],
            |n| Vitals { systolic_bp: Some(n), ..empty() },
        );
    }

    #[test]
    fn diastolic_bp_is_not_scored() {
        let s = score(&Vitals { diastolic_bp: Some(30), ..empty() });
        assert_eq!(s.total, 0);
        assert_eq!(s.missing, Parameter::ALL.to_vec());
    }

    #[test]
    fn pulse_row() {
        check_row(
            Parameter::Pulse,
            &[
                (20, 3),
                (40, 3),
                (41, 1),
                (50, 1),
                (51, 0),
                (90, 0),
                (91, 1),
                (110, 1),
                (111, 2),
                (130, 2),
                (131, 3),
                (250, 3),
            ],
            |n| Vitals { pulse: Some(n), ..empty() },
        );
    }

    #[test]
    fn consciousness_row() {
        for (c, expected) in [
            (Consciousness::A, 0),
            (Consciousness::C, 3),
            (Consciousness::V, 3),
            (Consciousness::P, 3),
            (Consciousness::U, 3),
        ] {
            let s = score(&Vitals { consciousness: Some(c), ..empty() });
            assert_eq!(s.subscores.consciousness, Some(expected), "{c:?}");
        }
    }

    #[test]
    fn temperature_row_with_one_decimal_boundaries() {
        for (t, expected) in [
            (25.0, 3),
            (35.0, 3),
            (35.1, 1),
            (36.0, 1),
            (36.1, 0),
            (38.0, 0),
            (38.1, 1),
            (39.0, 1),
            (39.1, 2),
            (45.0, 2),
        ] {
            let s = score(&Vitals { temperature: Some(t), ..empty() });
            assert_eq!(s.subscores.temperature, Some(expected), "{t}");
        }
    }

    #[test]
    fn temperature_between_boundaries_is_rounded_to_one_decimal() {
        for (t, expected) in [
            (35.04, 3),
            (35.06, 1),
            (36.04, 1),
            (36.06, 0),
            (38.04, 0),
            (38.06, 1),
            (39.04, 1),
            (39.06, 2),
            (36.95, 0),
            // Exactly halfway rounds up.
            (35.05, 1),
            (36.05, 0),
            (38.05, 1),
            (39.05, 2),
        ] {
            let s = score(&Vitals { temperature: Some(t), ..empty() });
            assert_eq!(s.subscores.temperature, Some(expected), "{t}");
        }
    }

    #[test]
    fn non_finite_temperature_counts_as_missing() {
        let s = score(&Vitals { temperature: Some(f64::NAN), pulse: Some(70), ..empty() });
        assert_eq!(s.subscores.temperature, None);
        assert!(s.missing.contains(&Parameter::Temperature));
    }

    #[test]
    fn complete_normal_set_scores_0_low_not_partial() {
        let s = score(&normal());
        assert_eq!(s.total, 0);
        assert_eq!(s.band, Band::Low);
        assert!(s.missing.is_empty());
        assert!(!s.partial);
        assert_eq!(s.max_single, 0);
        assert_eq!(s.alert_level(), None);
    }

    #[test]
    fn maximum_total_is_20() {
        let v = Vitals {
            temperature: Some(34.0),
            systolic_bp: Some(80),
            diastolic_bp: Some(40),
            pulse: Some(140),
            respiratory_rate: Some(30),
            spo2: Some(85),
            spo2_scale: Some(1),
            spo2_scale_reason: None,
            on_oxygen: Some(true),
            consciousness: Some(Consciousness::U),
        };
        let s = score(&v);
        assert_eq!(s.total, 20);
        assert_eq!(s.band, Band::High);
        assert_eq!(s.max_single, 3);
        assert!(!s.partial);
        assert_eq!(s.alert_level(), Some(AlertLevel::Emergency));
        // Scale 2 reaches the same maximum, from either end of its row.
        let s = score(&Vitals { spo2: Some(97), spo2_scale: Some(2), ..v.clone() });
        assert_eq!(s.total, 20);
        let s = score(&Vitals { spo2: Some(80), spo2_scale: Some(2), ..v });
        assert_eq!(s.total, 20);
    }

    #[test]
    fn partial_score_lists_missing_parameters_in_chart_order() {
        let s = score(&Vitals { pulse: Some(120), temperature: Some(38.5), ..empty() });
        assert_eq!(s.total, 3);
        assert!(s.partial);
        assert_eq!(
            s.missing,
            vec![
                Parameter::RespiratoryRate,
                Parameter::Spo2,
                Parameter::AirOrOxygen,
                Parameter::SystolicBp,
                Parameter::Consciousness,
            ]
        );
        assert_eq!(s.subscores.pulse, Some(2));
        assert_eq!(s.subscores.temperature, Some(1));
        assert_eq!(s.subscores.spo2, None);

        let mut v = normal();
        v.consciousness = None;
        let s = score(&v);
        assert_eq!(s.missing, vec![Parameter::Consciousness]);
        assert!(s.partial);

        let s = score(&empty());
        assert_eq!(s.total, 0);
        assert_eq!(s.missing, Parameter::ALL.to_vec());
    }

    #[test]
    fn band_edges() {
        // Total 1–4 without a single 3: low.
        let s = score(&Vitals { pulse: Some(120), respiratory_rate: Some(22), ..normal() });
        assert_eq!((s.total, s.max_single, s.band), (4, 2, Band::Low));
        // Total 3 from one parameter: low-medium.
        let s = score(&Vitals { respiratory_rate: Some(26), ..normal() });
        assert_eq!((s.total, s.band), (3, Band::LowMedium));
        // Total 4 with a single 3: low-medium.
        let s = score(&Vitals { respiratory_rate: Some(26), pulse: Some(100), ..normal() });
        assert_eq!((s.total, s.max_single, s.band), (4, 3, Band::LowMedium));
        // Total 5: medium, whether or not a single 3 is among it.
        let s = score(&Vitals { respiratory_rate: Some(26), on_oxygen: Some(true), ..normal() });
        assert_eq!((s.total, s.band), (5, Band::Medium));
        let s = score(&Vitals { pulse: Some(120), respiratory_rate: Some(22), temperature: Some(38.5), ..normal() });
        assert_eq!((s.total, s.max_single, s.band), (5, 2, Band::Medium));
        // Total 6: medium.
        let s = score(&Vitals { pulse: Some(120), respiratory_rate: Some(22), on_oxygen: Some(true), ..normal() });
        assert_eq!((s.total, s.band), (6, Band::Medium));
        // Total 7: high.
        let s = score(&Vitals { pulse: Some(140), respiratory_rate: Some(22), on_oxygen: Some(true), ..normal() });
        assert_eq!((s.total, s.band), (7, Band::High));
    }

    #[test]
    fn alert_levels() {
        assert_eq!(score(&normal()).alert_level(), None);
        assert_eq!(score(&Vitals { pulse: Some(120), respiratory_rate: Some(22), ..normal() }).alert_level(), None);
        // A single 3.
        let s = score(&Vitals { consciousness: Some(Consciousness::C), ..normal() });
        assert_eq!(s.alert_level(), Some(AlertLevel::Urgent));
        // Total 5 and 6.
        let s = score(&Vitals { pulse: Some(120), respiratory_rate: Some(22), temperature: Some(38.5), ..normal() });
        assert_eq!(s.alert_level(), Some(AlertLevel::Urgent));
        let s = score(&Vitals { pulse: Some(120), respiratory_rate: Some(22), on_oxygen: Some(true), ..normal() });
        assert_eq!(s.alert_level(), Some(AlertLevel::Urgent));
        // Total 7.
        let s = score(&Vitals { pulse: Some(140), respiratory_rate: Some(22), on_oxygen: Some(true), ..normal() });
        assert_eq!(s.alert_level(), Some(AlertLevel::Emergency));
        // A partial score that already reaches a threshold still raises it.
        let s = score(&Vitals { respiratory_rate: Some(30), ..empty() });
        assert!(s.partial);
        assert_eq!(s.alert_level(), Some(AlertLevel::Urgent));
        assert!(AlertLevel::Emergency > AlertLevel::Urgent);
        assert_eq!(serde_json::to_value(AlertLevel::Emergency).unwrap(), "emergency");
        assert_eq!(AlertLevel::Urgent.as_str(), "urgent");
    }

    #[test]
    fn trigger_descriptions() {
        let s = score(&Vitals { pulse: Some(140), respiratory_rate: Some(22), on_oxygen: Some(true), ..normal() });
        let (ja, en) = s.trigger_description();
        assert!(ja.contains("NEWS2 合計 7"), "{ja}");
        assert!(en.contains("NEWS2 total 7"), "{en}");
        assert!(ja.contains("脈拍 単独3点"), "{ja}");
        assert!(en.contains("pulse scored 3"), "{en}");
        assert!(ja.contains("診断ではありません"), "{ja}");
        assert!(en.contains("not a diagnosis"), "{en}");
        assert!(!ja.contains("未測定"), "{ja}");

        let s = score(&Vitals { respiratory_rate: Some(7), ..empty() });
        let (ja, en) = s.trigger_description();
        assert!(ja.contains("呼吸数 単独3点"), "{ja}");
        assert!(en.contains("respiratory rate scored 3"), "{en}");
        assert!(ja.contains("未測定: SpO2、酸素投与、収縮期血圧、脈拍、意識レベル、体温"), "{ja}");
        assert!(
            en.contains(
                "not measured: SpO2, air or oxygen, systolic blood pressure, pulse, consciousness, temperature"
            ),
            "{en}"
        );

        let s = score(&Vitals { respiratory_rate: Some(7), consciousness: Some(Consciousness::V), ..normal() });
        let (ja, en) = s.trigger_description();
        assert!(ja.contains("NEWS2 合計 6"), "{ja}");
        assert!(ja.contains("呼吸数・意識レベル 単独3点"), "{ja}");
        assert!(en.contains("respiratory rate, consciousness scored 3"), "{en}");

        let (ja, en) = score(&normal()).trigger_description();
        assert!(ja.contains("基準未満"), "{ja}");
        assert!(en.contains("below the alert thresholds"), "{en}");
    }

    #[test]
    fn json_shape() {
        let s = score(&Vitals { pulse: Some(120), respiratory_rate: Some(26), on_oxygen: Some(false), ..empty() });
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "total": 5,
                "band": "medium",
                "subscores": {
                    "respiratory_rate": 3,
                    "spo2": null,
                    "air_or_oxygen": 0,
                    "systolic_bp": null,
                    "pulse": 2,
                    "consciousness": null,
                    "temperature": null
                },
                "missing": ["spo2", "systolic_bp", "consciousness", "temperature"],
                "partial": true,
                "max_single": 3,
                "spo2_scale": null,
                "spo2_scale_basis": null
            })
        );
        for (band, text) in
            [(Band::Low, "low"), (Band::LowMedium, "low_medium"), (Band::Medium, "medium"), (Band::High, "high")]
        {
            assert_eq!(serde_json::to_value(band).unwrap(), text);
            assert_eq!(band.as_str(), text);
        }
        for p in Parameter::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
    }
}
