//! Vital-sign trends as SVG drawn on the server: one chart per parameter, the NEWS2 score bands
//! shaded behind the readings and each band named in text, so the chart reads without colour
//! and without script. Only numbers and the fixed words below go into the markup.

use chrono::NaiveDateTime;

use super::text;
use crate::error::Lang;
use crate::notes::trends::{Point, Series};

/// One chart, ready for the page.
pub struct ChartView {
    pub key: &'static str,
    pub title: &'static str,
    pub count: usize,
    pub latest: String,
    /// The `<svg>` element (built here from numbers and fixed words only).
    pub svg: String,
}

struct Parameter {
    key: &'static str,
    ja: &'static str,
    en: &'static str,
    unit: &'static str,
    lo: f64,
    hi: f64,
    decimals: usize,
    /// (upper bound, NEWS2 score) from the bottom up; the last band reaches `hi`.
    bands: &'static [(f64, u8)],
}

const SPO2_SCALE_1: Parameter = Parameter {
    key: "spo2",
    ja: "SpO2(経皮的酸素飽和度)",
    en: "SpO2 (oxygen saturation)",
    unit: "%",
    lo: 80.0,
    hi: 100.0,
    decimals: 0,
    bands: &[(91.5, 3), (93.5, 2), (95.5, 1), (100.0, 0)],
};
/// Scale 2 (target 88–92 %), readings on air.
const SPO2_SCALE_2: Parameter = Parameter {
    key: "spo2",
    ja: "SpO2(経皮的酸素飽和度、目標 88–92%)",
    en: "SpO2 (oxygen saturation, target 88–92%)",
    unit: "%",
    lo: 78.0,
    hi: 100.0,
    decimals: 0,
    bands: &[(83.5, 3), (85.5, 2), (87.5, 1), (100.0, 0)],
};
const PULSE: Parameter = Parameter {
    key: "pulse",
    ja: "脈拍",
    en: "Pulse",
    unit: "/min",
    lo: 30.0,
    hi: 170.0,
    decimals: 0,
    bands: &[(40.5, 3), (50.5, 1), (90.5, 0), (110.5, 1), (130.5, 2), (170.0, 3)],
};
const SYSTOLIC: Parameter = Parameter {
    key: "systolic_bp",
    ja: "収縮期血圧",
    en: "Systolic blood pressure",
    unit: "mmHg",
    lo: 60.0,
    hi: 240.0,
    decimals: 0,
    bands: &[(90.5, 3), (100.5, 2), (110.5, 1), (219.5, 0), (240.0, 3)],
};
const TEMPERATURE: Parameter = Parameter {
    key: "temperature",
    ja: "体温",
    en: "Temperature",
    unit: "℃",
    lo: 34.0,
    hi: 41.0,
    decimals: 1,
    bands: &[(35.05, 3), (36.05, 1), (38.05, 0), (39.05, 1), (41.0, 2)],
};
const RESPIRATION: Parameter = Parameter {
    key: "respiratory_rate",
    ja: "呼吸数",
    en: "Respiration rate",
    unit: "/min",
    lo: 4.0,
    hi: 36.0,
    decimals: 0,
    bands: &[(8.5, 3), (11.5, 1), (20.5, 0), (24.5, 2), (36.0, 3)],
};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 250.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 560.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 212.0;

fn fill(score: u8) -> &'static str {
    match score {
        0 => "#ffffff",
        1 => "#fff3c4",
        2 => "#ffdcb0",
        _ => "#ffc4c4",
    }
}

fn number(v: f64, decimals: usize) -> String {
    format!("{v:.decimals$}")
}

/// The band's range in words: `≤91`, `92–93`, `≥96`.
fn range(p: &Parameter, i: usize) -> String {
    let step = if p.decimals == 0 { 1.0 } else { 0.1 };
    let (lo, hi) = (if i == 0 { None } else { Some(p.bands[i - 1].0) }, p.bands[i].0);
    let last = i + 1 == p.bands.len();
    let from = lo.map(|l| l + step / 2.0);
    let to = hi - step / 2.0;
    match (from, last) {
        (None, _) => format!("≤{}", number(to, p.decimals)),
        (Some(f), true) => format!("≥{}", number(f, p.decimals)),
        (Some(f), false) => format!("{}–{}", number(f, p.decimals), number(to, p.decimals)),
    }
}

fn draw(
    lang: Lang,
    p: &Parameter,
    points: &[(NaiveDateTime, f64)],
    since: NaiveDateTime,
    until: NaiveDateTime,
) -> ChartView {
    let title = match lang {
        Lang::Ja => p.ja,
        Lang::En => p.en,
    };
    let y = |v: f64| BOTTOM - (v.clamp(p.lo, p.hi) - p.lo) / (p.hi - p.lo) * (BOTTOM - TOP);
    let span = (until - since).num_seconds().max(1) as f64;
    let x = |t: NaiveDateTime| LEFT + ((t - since).num_seconds() as f64 / span).clamp(0.0, 1.0) * (RIGHT - LEFT);
    let t = text::texts(lang);
    let latest = points
        .last()
        .map(|(at, v)| format!("{} {}{} ({})", t.latest, number(*v, p.decimals), p.unit, text::moment(lang, *at)))
        .unwrap_or_default();
    let id = format!("chart-{}", p.key);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" class=\"chart\" role=\"img\" \
aria-labelledby=\"{id}-title {id}-desc\" data-parameter=\"{}\"><title id=\"{id}-title\">{title}</title>\
<desc id=\"{id}-desc\">{} {} {}. {}</desc>",
        p.key,
        points.len(),
        t.readings,
        latest,
        t.band
    );
    let mut below = p.lo;
    for (i, (upper, score)) in p.bands.iter().enumerate() {
        let (top, bottom) = (y(*upper), y(below));
        let label = match lang {
            Lang::Ja => format!("NEWS2 {score}点 ({}{})", range(p, i), p.unit),
            Lang::En => format!("NEWS2 score {score} ({}{})", range(p, i), p.unit),
        };
        s.push_str(&format!(
            "<g class=\"band band-{score}\"><rect x=\"{LEFT}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" \
stroke=\"#888\" stroke-width=\"0.5\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#222\">{label}</text></g>",
            RIGHT - LEFT,
            (bottom - top).max(0.0),
            fill(*score),
            RIGHT + 6.0,
            (top + bottom) / 2.0 + 4.0,
        ));
        below = *upper;
    }
    // The axes: values at the band edges, the period's ends.
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#222\" text-anchor=\"end\">{}</text>\
<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#222\" text-anchor=\"end\">{}</text>\
<text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"11\" fill=\"#222\">{}</text>\
<text x=\"{RIGHT}\" y=\"{:.1}\" font-size=\"11\" fill=\"#222\" text-anchor=\"end\">{}</text>",
        LEFT - 4.0,
        BOTTOM,
        number(p.lo, p.decimals),
        LEFT - 4.0,
        TOP + 8.0,
        number(p.hi, p.decimals),
        BOTTOM + 16.0,
        text::short_moment(since),
        BOTTOM + 16.0,
        text::short_moment(until),
    ));
    if points.len() > 1 {
        let line: Vec<String> = points.iter().map(|(at, v)| format!("{:.1},{:.1}", x(*at), y(*v))).collect();
        s.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#1a3d7c\" stroke-width=\"2\"/>",
            line.join(" ")
        ));
    }
    for (at, v) in points {
        s.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#1a3d7c\"><title>{}: {}{}</title></circle>",
            x(*at),
            y(*v),
            text::moment(lang, *at),
            number(*v, p.decimals),
            p.unit
        ));
    }
    s.push_str("</svg>");
    ChartView { key: p.key, title, count: points.len(), latest, svg: s }
}

fn values<T: Copy + Into<f64> + serde::Serialize>(points: &[Point<T>]) -> Vec<(NaiveDateTime, f64)> {
    let mut v: Vec<(NaiveDateTime, f64)> = points.iter().map(|p| (p.at, p.value.into())).collect();
    v.sort_by_key(|(at, _)| *at);
    v
}

/// The charts of a trend: SpO2, pulse, systolic blood pressure, temperature, respiration rate.
pub fn charts(
    lang: Lang,
    series: &Series,
    since: NaiveDateTime,
    until: NaiveDateTime,
    spo2_scale_2: bool,
) -> Vec<ChartView> {
    let spo2 = if spo2_scale_2 { &SPO2_SCALE_2 } else { &SPO2_SCALE_1 };
    vec![
        draw(lang, spo2, &values(&series.spo2), since, until),
        draw(lang, &PULSE, &values(&series.pulse), since, until),
        draw(lang, &SYSTOLIC, &values(&series.systolic_bp), since, until),
        draw(lang, &TEMPERATURE, &values(&series.temperature), since, until),
        draw(lang, &RESPIRATION, &values(&series.respiratory_rate), since, until),
    ]
}

/// A ward's counts as a bar chart: one bar per count against the number of patients, each
/// bar named and numbered in text, so it reads without colour. `counts` follows `labels`; the
/// first is the number of patients.
pub fn summary_bars(lang: Lang, title: &str, labels: &[&str], counts: &[i64]) -> String {
    const W: f64 = 640.0;
    const LABEL: f64 = 210.0;
    const BAR: f64 = 340.0;
    const ROW: f64 = 28.0;
    let h = ROW * labels.len() as f64 + 8.0;
    let whole = counts.first().copied().unwrap_or(0).max(1) as f64;
    let desc: Vec<String> = labels.iter().zip(counts).map(|(l, n)| format!("{l} {n}")).collect();
    let sep = if lang == Lang::Ja { "、" } else { ", " };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {h}\" class=\"chart summary\" role=\"img\" \
aria-labelledby=\"summary-title summary-desc\"><title id=\"summary-title\">{}</title><desc id=\"summary-desc\">{}</desc>",
        escape(title),
        escape(&desc.join(sep))
    );
    for (i, (label, n)) in labels.iter().zip(counts).enumerate() {
        let y = 4.0 + ROW * i as f64;
        let width = (*n as f64 / whole).clamp(0.0, 1.0) * BAR;
        let fill = if i == 0 { "#9fb3d1" } else { "#1a3d7c" };
        s.push_str(&format!(
            "<g class=\"count\"><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" fill=\"#222\" text-anchor=\"end\">{}</text>\
<rect x=\"{LABEL}\" y=\"{:.1}\" width=\"{BAR}\" height=\"18\" fill=\"#f4f7fb\" stroke=\"#888\" stroke-width=\"0.5\"/>\
<rect x=\"{LABEL}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"18\" fill=\"{fill}\"/>\
<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" fill=\"#222\">{n}</text></g>",
            LABEL - 8.0,
            y + 14.0,
            escape(label),
            y,
            y,
            LABEL + BAR + 8.0,
            y + 14.0,
        ));
    }
    s.push_str("</svg>");
    s
}

/// Text for SVG markup (the fixed words carry no markup, but a ward's name is data).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_are_named_in_words() {
        assert_eq!(range(&SPO2_SCALE_1, 0), "≤91");
        assert_eq!(range(&SPO2_SCALE_1, 1), "92–93");
        assert_eq!(range(&SPO2_SCALE_1, 3), "≥96");
        assert_eq!(range(&TEMPERATURE, 1), "35.1–36.0");
        assert_eq!(range(&PULSE, 5), "≥131");
    }

    #[test]
    fn summary_bars_name_every_count() {
        let svg = summary_bars(Lang::Ja, "区の概況 <川崎区>", &["患者数", "主治医なし"], &[40, 10]);
        assert!(svg.contains("&lt;川崎区&gt;") && !svg.contains("<川崎区>"));
        assert!(svg.contains(">患者数</text>") && svg.contains(">10</text>"));
        assert!(svg.contains("width=\"85.0\""), "a quarter of the bar: {svg}");
    }
}
