//! The seeded discharge task templates load on both backends: one active row per line of the
//! discharge-coordination table in shared/DOMAIN.md, the second deadlines as inactive variants,
//! and every row readable as a typed rule.

use chrono::NaiveDate;
use diesel::prelude::*;
use renkei::db::schema::discharge_task_templates;
use renkei::db::{self, DbConn, DbManager};
use renkei::discharge::deadlines::{due_at, Anchors};
use renkei::discharge::templates::{active_templates, Anchor, DueRule, Template};
use renkei::vocab::Profession;

/// The lines of shared/DOMAIN.md's table, in its order, by the key of their default row, with
/// the anchor, day offset and profession that row was seeded with.
const DOMAIN_LINES: &[(&str, Anchor, i32, Profession)] = &[
    ("admission_info", Anchor::Admission, 0, Profession::CareManager),
    ("discharge_screening", Anchor::Admission, 3, Profession::SocialWorker),
    ("patient_family_interview", Anchor::Admission, 7, Profession::SocialWorker),
    ("multidisciplinary_conference", Anchor::Admission, 7, Profession::SocialWorker),
    ("joint_discharge_conference", Anchor::DischargeDay, 0, Profession::SocialWorker),
    ("discharge_info_collection", Anchor::Discharge, 7, Profession::CareManager),
    ("care_plan", Anchor::PlannedDischarge, 0, Profession::CareManager),
    ("home_nursing_order", Anchor::PlannedDischarge, 0, Profession::Physician),
    ("special_home_nursing_order", Anchor::PlannedDischarge, 0, Profession::Physician),
    ("medication_reconciliation", Anchor::PlannedDischarge, 0, Profession::Pharmacist),
    ("equipment_home_adaptation", Anchor::PlannedDischarge, 0, Profession::CareManager),
    ("first_home_visit", Anchor::Discharge, 2, Profession::Nurse),
];

/// Where the table gives a second deadline: 入院時情報連携加算(II), 入退院支援加算2 (3 days since the
/// 2020 revision, like 加算1), and the interview on long-term-care wards.
const VARIANTS: &[(&str, i32)] =
    &[("admission_info_ii", 2), ("discharge_screening_addon2", 3), ("patient_family_interview_long_term_care", 14)];

fn check_seeded_templates(conn: &mut DbConn) {
    let active = active_templates(conn).unwrap();
    let keys: Vec<&str> = active.iter().map(|t| t.key.as_str()).collect();
    let expected: Vec<&str> = DOMAIN_LINES.iter().map(|line| line.0).collect();
    assert_eq!(keys, expected, "one active template per DOMAIN.md line, in order");
    for (template, &(key, anchor, offset_days, profession)) in active.iter().zip(DOMAIN_LINES) {
        let rule = template.rule();
        assert_eq!((rule.anchor, rule.offset_days), (anchor, offset_days), "{key}");
        assert_eq!(template.profession, profession, "{key}");
        // Tasks "before discharge" are the ones anchored on the planned discharge date; the joint
        // discharge guidance may be held on the discharge day itself, by the end of that day.
        let before = if anchor == Anchor::PlannedDischarge { DueRule::BeforeAnchor } else { DueRule::EndOfDay };
        assert_eq!(rule.due_rule, before, "{key}");
        assert!(!template.title.is_ascii() && template.title_en.is_ascii(), "{key}: Japanese and English titles");
        assert!(!template.source.is_empty(), "{key}");
    }
    let business_hours: Vec<&str> = active.iter().filter(|t| t.business_hours_rule).map(|t| t.key.as_str()).collect();
    assert_eq!(business_hours, ["admission_info"], "only 入院時情報連携加算(I) has the business-hours rule");

    let all: Vec<Template> = discharge_task_templates::table.select(Template::as_select()).load(conn).unwrap();
    assert_eq!(all.len(), DOMAIN_LINES.len() + VARIANTS.len());
    for &(key, offset_days) in VARIANTS {
        let variant = all.iter().find(|t| t.key == key).unwrap_or_else(|| panic!("variant {key} is seeded"));
        assert!(!variant.active, "{key}: a variant is off until a city chooses it");
        assert_eq!(variant.rule().offset_days, offset_days, "{key}");
    }
    let addon2 = all.iter().find(|t| t.key == "discharge_screening_addon2").unwrap();
    assert!(addon2.source.contains("2020"), "the source names the revision: {}", addon2.source);
    assert!(addon2.note.as_deref().unwrap_or_default().contains("3日以内"), "{:?}", addon2.note);

    // A seeded row through the deadline rules: admitted on Saturday 31 January 2026 at 10:00 JST
    // (01:00 UTC), a day the common office is closed, the home-life information is due by the
    // end of its next business day, Monday, 14:59:59.999999 UTC.
    let admission_info = active[0].rule();
    let date = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
    let anchors = Anchors {
        admitted_at: date(1, 31).and_hms_opt(1, 0, 0).unwrap(),
        planned_discharge_on: None,
        discharged_on: None,
        office: renkei::calendar::BusinessHours::default(),
    };
    assert_eq!(due_at(&admission_info, &anchors), Some(date(2, 2).and_hms_micro_opt(14, 59, 59, 999_999).unwrap()));
}

#[test]
fn seeded_templates_load_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("templates.db").display());
    let mut conn = DbManager::new(&url).unwrap().connect_now().unwrap();
    db::migrate(&mut conn).unwrap();
    check_seeded_templates(&mut conn);
}

#[test]
fn seeded_templates_load_on_postgres() {
    let Some(cluster) = crate::helpers::postgres() else { return };
    // A fresh database is a copy of the migrated template database.
    let mut conn = DbManager::new(&cluster.fresh_database()).unwrap().connect_now().unwrap();
    check_seeded_templates(&mut conn);
}
