//! Deadlines of discharge tasks: pure date arithmetic, with no database and no clock (the caller
//! passes `now`, so that one request judges every task at one instant and tests are exact).
//!
//! Deadlines "by the end of day N" are computed in Asia/Tokyo (DESIGN.md §6): days are JST
//! calendar days, and a deadline is the last microsecond of its day, 23:59:59.999999 JST, given
//! back as UTC like every stored timestamp (microseconds, because that is what both backends keep).
//!
//! Japan has not observed daylight saving time since 1951, so Asia/Tokyo is UTC+09:00 all year
//! and a fixed offset is exact; no time-zone database is needed.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};

use crate::calendar::BusinessHours;

crate::text_enum! {
    /// The date a task's clock starts from. The admission is always known; the planned discharge
    /// date is set some time into the stay, and the discharge date once the patient has left.
    /// `discharge_day` is the day the patient leaves: the actual discharge date once known, the
    /// planned one until then (退院時共同指導 may be held on the day of discharge itself).
    Anchor {
        Admission => "admission",
        PlannedDischarge => "planned_discharge",
        Discharge => "discharge",
        DischargeDay => "discharge_day",
    }
}

crate::text_enum! {
    /// How a template's due day (the anchor day plus `offset_days`) becomes a deadline:
    /// `end_of_day` — by the end of that day; `before_anchor` — before that day begins, that is
    /// by the end of the day before it ("before discharge": the patient leaves during the day).
    DueRule {
        EndOfDay => "end_of_day",
        BeforeAnchor => "before_anchor",
    }
}

/// Asia/Tokyo's offset from UTC (fixed: no daylight saving time since 1951).
const JST_OFFSET: TimeDelta = TimeDelta::hours(9);

/// The deadline rule of one template, typed (read from a row with `Template::rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateRule {
    pub anchor: Anchor,
    /// Day N relative to the anchor day: 0 is the anchor day itself, negative is before it.
    pub offset_days: i32,
    pub due_rule: DueRule,
    /// 入院時情報連携加算: an admission outside the receiving office's business hours, or on a
    /// day it is closed, moves the deadline to its next business day.
    pub business_hours_rule: bool,
}

/// What is known of one case's dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchors {
    /// When the patient was admitted, in UTC. Its JST calendar day is the admission day.
    pub admitted_at: NaiveDateTime,
    /// The planned discharge date, a JST calendar date, once the hospital has set one.
    pub planned_discharge_on: Option<NaiveDate>,
    /// The discharge date, a JST calendar date, once the patient has left hospital.
    pub discharged_on: Option<NaiveDate>,
    /// The business hours and closed days of the office that receives the admission (the
    /// patient's care-management office), for the business-hours rule.
    pub office: BusinessHours,
}

/// The deadline of a task, in UTC: the end (JST) of the anchor day plus `offset_days`, one day
/// earlier for `before_anchor`; under the business-hours rule, an admission outside the
/// receiving office's hours or on a day it is closed moves it to the office's business days.
///
/// None when the anchor is not known yet (no planned discharge date, not discharged): such a
/// task has no deadline until the date is set, and moves with it when it changes.
pub fn due_at(template: &TemplateRule, anchors: &Anchors) -> Option<NaiveDateTime> {
    let admitted_jst = to_jst(anchors.admitted_at)?;
    let anchor_day = match template.anchor {
        Anchor::Admission => admitted_jst.date(),
        Anchor::PlannedDischarge => anchors.planned_discharge_on?,
        Anchor::Discharge => anchors.discharged_on?,
        Anchor::DischargeDay => anchors.discharged_on.or(anchors.planned_discharge_on)?,
    };
    let mut days = i64::from(template.offset_days);
    if template.due_rule == DueRule::BeforeAnchor {
        days -= 1;
    }
    let mut due_day = anchor_day.checked_add_signed(TimeDelta::try_days(days)?)?;
    // The rule is about the hour of admission, so it applies only to tasks whose clock starts then.
    if template.business_hours_rule && template.anchor == Anchor::Admission && !anchors.office.is_open_at(admitted_jst)
    {
        // 入院時情報連携加算(I), "営業時間終了後又は営業日以外の日に入院した場合": the admission day
        // does not count, the deadline is the office's next business day. (II), the day after or
        // the day after that: a due day the office is closed moves to its next business day.
        if due_day <= anchor_day {
            due_day = anchor_day.succ_opt()?;
        }
        due_day = anchors.office.first_business_day_from(due_day);
    }
    end_of_jst_day(due_day)
}

/// True when a task is still open and its deadline has passed. At the deadline's own microsecond
/// the task is still on time; a task without a deadline is never overdue.
pub fn is_overdue(due: Option<NaiveDateTime>, open: bool, now: NaiveDateTime) -> bool {
    open && due.is_some_and(|due| now > due)
}

/// The last microsecond of a JST calendar day, in UTC: 23:59:59.999999 JST, which is
/// 14:59:59.999999 UTC the same day. None only past the end of the calendar chrono can represent.
pub fn end_of_jst_day(day: NaiveDate) -> Option<NaiveDateTime> {
    let next_midnight_jst = day.succ_opt()?.and_time(NaiveTime::MIN);
    next_midnight_jst.checked_sub_signed(JST_OFFSET + TimeDelta::microseconds(1))
}

/// The wall-clock time in Japan at a UTC instant.
fn to_jst(utc: NaiveDateTime) -> Option<NaiveDateTime> {
    utc.checked_add_signed(JST_OFFSET)
}

/// The JST calendar day of a UTC instant (an admission at 23:30 JST is on that day in Japan).
pub fn jst_day(utc: NaiveDateTime) -> Option<NaiveDate> {
    to_jst(utc).map(|t| t.date())
}

/// Noon JST of a calendar day, in UTC: the instant used for an admission known only by its
/// date. Noon is within the common business hours, so on a business day the business-hours
/// rule gives the earlier, safer deadline; on a weekend, a holiday or over 年末年始 the office
/// is closed all day and the deadline moves to its next business day.
pub fn jst_noon(day: NaiveDate) -> Option<NaiveDateTime> {
    day.and_hms_opt(12, 0, 0)?.checked_sub_signed(JST_OFFSET)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded rules (migrations/*/2026-11-25-000030_discharge_templates), spelled out here so that
    /// these tests state the arithmetic without a database.
    const ADMISSION_INFO: TemplateRule = TemplateRule {
        anchor: Anchor::Admission,
        offset_days: 0,
        due_rule: DueRule::EndOfDay,
        business_hours_rule: true,
    };
    const SCREENING: TemplateRule = TemplateRule {
        anchor: Anchor::Admission,
        offset_days: 3,
        due_rule: DueRule::EndOfDay,
        business_hours_rule: false,
    };
    const CARE_PLAN: TemplateRule = TemplateRule {
        anchor: Anchor::PlannedDischarge,
        offset_days: 0,
        due_rule: DueRule::BeforeAnchor,
        business_hours_rule: false,
    };
    const FIRST_HOME_VISIT: TemplateRule = TemplateRule {
        anchor: Anchor::Discharge,
        offset_days: 2,
        due_rule: DueRule::EndOfDay,
        business_hours_rule: false,
    };
    const JOINT_DISCHARGE_GUIDANCE: TemplateRule = TemplateRule {
        anchor: Anchor::DischargeDay,
        offset_days: 0,
        due_rule: DueRule::EndOfDay,
        business_hours_rule: false,
    };
    /// A rule "the day after admission", for stepping over month and year ends one day at a time.
    const NEXT_DAY: TemplateRule = TemplateRule {
        anchor: Anchor::Admission,
        offset_days: 1,
        due_rule: DueRule::EndOfDay,
        business_hours_rule: false,
    };

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        date(y, m, d).and_hms_opt(h, min, 0).unwrap()
    }

    /// A JST wall-clock time, as the UTC instant it is.
    fn jst(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        utc(y, m, d, h, min) - TimeDelta::hours(9)
    }

    /// The expected deadline for a JST day, written out: 14:59:59.999999 UTC that day.
    fn end_of(y: i32, m: u32, d: u32) -> NaiveDateTime {
        date(y, m, d).and_hms_micro_opt(14, 59, 59, 999_999).unwrap()
    }

    fn admitted(at: NaiveDateTime) -> Anchors {
        Anchors { admitted_at: at, planned_discharge_on: None, discharged_on: None, office: BusinessHours::default() }
    }

    #[test]
    fn jst_days_and_noon() {
        assert_eq!(jst_day(utc(2026, 1, 31, 14, 59)), Some(date(2026, 1, 31)));
        assert_eq!(jst_day(utc(2026, 1, 31, 15, 0)), Some(date(2026, 2, 1)));
        assert_eq!(jst_noon(date(2026, 1, 30)), Some(utc(2026, 1, 30, 3, 0)));
        // A weekday admission known only by its date gets the same-day deadline.
        let by_date = admitted(jst_noon(date(2026, 1, 30)).unwrap());
        assert_eq!(due_at(&ADMISSION_INFO, &by_date), Some(end_of(2026, 1, 30)));
    }

    #[test]
    fn a_day_ends_at_midnight_in_tokyo() {
        assert_eq!(end_of_jst_day(date(2026, 3, 10)), Some(end_of(2026, 3, 10)));
        assert_eq!(end_of(2026, 3, 10) + TimeDelta::microseconds(1), jst(2026, 3, 11, 0, 0));
    }

    #[test]
    fn the_admission_day_is_the_jst_calendar_day() {
        // 23:30 JST on 31 January is still 31 January in Japan (14:30 UTC).
        let late_evening = jst(2026, 1, 31, 23, 30);
        assert_eq!(late_evening, utc(2026, 1, 31, 14, 30));
        assert_eq!(due_at(&NEXT_DAY, &admitted(late_evening)), Some(end_of(2026, 2, 1)));
        // 15:00 UTC on 31 January is already midnight, 1 February, in Japan.
        assert_eq!(due_at(&NEXT_DAY, &admitted(utc(2026, 1, 31, 14, 59))), Some(end_of(2026, 2, 1)));
        assert_eq!(due_at(&NEXT_DAY, &admitted(utc(2026, 1, 31, 15, 0))), Some(end_of(2026, 2, 2)));
        assert_eq!(due_at(&NEXT_DAY, &admitted(utc(2026, 1, 31, 15, 30))), Some(end_of(2026, 2, 2)));
    }

    #[test]
    fn deadlines_cross_month_and_year_ends() {
        let next_day_after = |at| due_at(&NEXT_DAY, &admitted(at));
        assert_eq!(next_day_after(jst(2026, 1, 31, 10, 0)), Some(end_of(2026, 2, 1)));
        // 2026 is not a leap year; 2028 is.
        assert_eq!(next_day_after(jst(2026, 2, 28, 10, 0)), Some(end_of(2026, 3, 1)));
        assert_eq!(next_day_after(jst(2028, 2, 28, 10, 0)), Some(end_of(2028, 2, 29)));
        assert_eq!(next_day_after(jst(2028, 2, 29, 10, 0)), Some(end_of(2028, 3, 1)));
        assert_eq!(next_day_after(jst(2026, 12, 31, 10, 0)), Some(end_of(2027, 1, 1)));
        // Screening within 3 days (入退院支援加算1) of an admission on 30 January.
        assert_eq!(due_at(&SCREENING, &admitted(jst(2026, 1, 30, 10, 0))), Some(end_of(2026, 2, 2)));
        assert_eq!(due_at(&SCREENING, &admitted(jst(2026, 12, 30, 10, 0))), Some(end_of(2027, 1, 2)));
    }

    #[test]
    fn admission_information_is_due_the_same_day_within_business_hours() {
        // Thursday 29 January 2026.
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2026, 1, 29, 10, 0))), Some(end_of(2026, 1, 29)));
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2026, 1, 29, 9, 0))), Some(end_of(2026, 1, 29)));
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2026, 1, 29, 16, 59))), Some(end_of(2026, 1, 29)));
    }

    #[test]
    fn admission_information_gets_the_next_day_outside_business_hours() {
        // Thursday evening, and before opening.
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2026, 1, 29, 18, 0))), Some(end_of(2026, 1, 30)));
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2026, 1, 29, 17, 0))), Some(end_of(2026, 1, 30)));
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2026, 1, 29, 8, 59))), Some(end_of(2026, 1, 30)));
        // Saturday 31 January, even at 10:00: the office's next business day is Monday.
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2026, 1, 31, 10, 0))), Some(end_of(2026, 2, 2)));
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2026, 2, 1, 10, 0))), Some(end_of(2026, 2, 2)));
        // Friday 18:00 gives until the end of Monday.
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2026, 1, 30, 18, 0))), Some(end_of(2026, 2, 2)));
        // Business hours are judged in JST: 02:00 UTC Thursday is 11:00 JST, within them.
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(utc(2026, 1, 29, 2, 0))), Some(end_of(2026, 1, 29)));
        // Without the rule, the hour does not matter.
        let same_day = TemplateRule { business_hours_rule: false, ..ADMISSION_INFO };
        assert_eq!(due_at(&same_day, &admitted(jst(2026, 1, 31, 10, 0))), Some(end_of(2026, 1, 31)));
    }

    #[test]
    fn a_holiday_admission_gets_the_next_business_day() {
        // 成人の日, Monday 11 January 2027, at 10:00: due by the end of Tuesday.
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2027, 1, 11, 10, 0))), Some(end_of(2027, 1, 12)));
        // Friday 8 January 2027 after hours: Saturday, Sunday and 成人の日 are closed.
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2027, 1, 8, 19, 0))), Some(end_of(2027, 1, 12)));
        // 勤労感謝の日, Monday 23 November 2026, known only by its date.
        let by_date = admitted(jst_noon(date(2026, 11, 23)).unwrap());
        assert_eq!(due_at(&ADMISSION_INFO, &by_date), Some(end_of(2026, 11, 24)));
        // 国民の休日 (22 September 2026) between 敬老の日 and 秋分の日: open again on the 24th.
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2026, 9, 21, 11, 0))), Some(end_of(2026, 9, 24)));
        // A screening counts calendar days, holiday or not.
        assert_eq!(due_at(&SCREENING, &admitted(jst(2027, 1, 11, 10, 0))), Some(end_of(2027, 1, 14)));
    }

    #[test]
    fn year_end_admissions_wait_for_the_new_year() {
        // 年末年始: 29 December to 3 January. 2027-01-04 is a Monday.
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2026, 12, 29, 10, 0))), Some(end_of(2027, 1, 4)));
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2027, 1, 3, 10, 0))), Some(end_of(2027, 1, 4)));
        // The last business day of the year after hours.
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2026, 12, 28, 17, 30))), Some(end_of(2027, 1, 4)));
        assert_eq!(due_at(&ADMISSION_INFO, &admitted(jst(2026, 12, 28, 16, 0))), Some(end_of(2026, 12, 28)));
    }

    #[test]
    fn the_receiving_office_has_its_own_hours() {
        // Open 8:00–20:00 every day but Sunday, holidays and 年末年始 included.
        let office = BusinessHours::new(8 * 60, 20 * 60, &[chrono::Weekday::Sun], false, false);
        let at = |t| Anchors { office: office.clone(), ..admitted(t) };
        assert_eq!(due_at(&ADMISSION_INFO, &at(jst(2026, 1, 29, 18, 0))), Some(end_of(2026, 1, 29)));
        assert_eq!(due_at(&ADMISSION_INFO, &at(jst(2026, 1, 31, 10, 0))), Some(end_of(2026, 1, 31)), "Saturday");
        assert_eq!(due_at(&ADMISSION_INFO, &at(jst(2027, 1, 11, 10, 0))), Some(end_of(2027, 1, 11)), "成人の日");
        assert_eq!(due_at(&ADMISSION_INFO, &at(jst(2026, 12, 30, 9, 0))), Some(end_of(2026, 12, 30)));
        // Saturday 20:00: Sunday is closed, so Monday.
        assert_eq!(due_at(&ADMISSION_INFO, &at(jst(2026, 1, 31, 20, 0))), Some(end_of(2026, 2, 2)));
        assert_eq!(due_at(&ADMISSION_INFO, &at(jst(2026, 1, 29, 7, 59))), Some(end_of(2026, 1, 30)));
    }

    #[test]
    fn admission_information_ii_moves_off_closed_days_only_after_hours() {
        let ii = TemplateRule { offset_days: 2, ..ADMISSION_INFO };
        // Thursday 10:00: the day after the day after, Saturday, within hours: no move.
        assert_eq!(due_at(&ii, &admitted(jst(2026, 1, 29, 10, 0))), Some(end_of(2026, 1, 31)));
        // Thursday 18:00: day 3 is Saturday, closed: Monday.
        assert_eq!(due_at(&ii, &admitted(jst(2026, 1, 29, 18, 0))), Some(end_of(2026, 2, 2)));
        // Tuesday 18:00: day 3 is Thursday, open: it stays.
        assert_eq!(due_at(&ii, &admitted(jst(2026, 1, 27, 18, 0))), Some(end_of(2026, 1, 29)));
    }

    #[test]
    fn before_anchor_is_the_end_of_the_day_before() {
        let anchors = Anchors { planned_discharge_on: Some(date(2026, 3, 10)), ..admitted(jst(2026, 3, 2, 10, 0)) };
        assert_eq!(due_at(&CARE_PLAN, &anchors), Some(end_of(2026, 3, 9)));
        // Across a month end, in a common and in a leap year.
        let anchors = Anchors { planned_discharge_on: Some(date(2026, 3, 1)), ..anchors };
        assert_eq!(due_at(&CARE_PLAN, &anchors), Some(end_of(2026, 2, 28)));
        let anchors = Anchors { planned_discharge_on: Some(date(2028, 3, 1)), ..admitted(jst(2028, 2, 20, 10, 0)) };
        assert_eq!(due_at(&CARE_PLAN, &anchors), Some(end_of(2028, 2, 29)));
    }

    #[test]
    fn a_task_on_an_unknown_date_has_no_deadline() {
        let anchors = admitted(jst(2026, 3, 2, 10, 0));
        assert_eq!(due_at(&CARE_PLAN, &anchors), None, "no planned discharge date yet");
        assert_eq!(due_at(&FIRST_HOME_VISIT, &anchors), None, "not discharged yet");
        // Planned but not yet discharged: the first home visit still waits for the real date.
        let planned = Anchors { planned_discharge_on: Some(date(2026, 3, 10)), ..anchors };
        assert_eq!(due_at(&FIRST_HOME_VISIT, &planned), None);
        let discharged = Anchors { discharged_on: Some(date(2026, 3, 11)), ..planned };
        assert_eq!(due_at(&FIRST_HOME_VISIT, &discharged), Some(end_of(2026, 3, 13)));
    }

    #[test]
    fn changing_the_planned_discharge_date_moves_the_deadline() {
        let before = Anchors { planned_discharge_on: Some(date(2026, 3, 10)), ..admitted(jst(2026, 3, 2, 10, 0)) };
        let after = Anchors { planned_discharge_on: Some(date(2026, 3, 17)), ..before.clone() };
        assert_eq!(due_at(&CARE_PLAN, &before), Some(end_of(2026, 3, 9)));
        assert_eq!(due_at(&CARE_PLAN, &after), Some(end_of(2026, 3, 16)));
        // Tasks whose clock is the admission stay where they were.
        assert_eq!(due_at(&SCREENING, &before), due_at(&SCREENING, &after));
    }

    #[test]
    fn a_negative_offset_counts_back_from_the_anchor() {
        let two_days_before = TemplateRule { offset_days: -2, due_rule: DueRule::EndOfDay, ..CARE_PLAN };
        let anchors = Anchors { planned_discharge_on: Some(date(2026, 1, 1)), ..admitted(jst(2025, 12, 20, 10, 0)) };
        assert_eq!(due_at(&two_days_before, &anchors), Some(end_of(2025, 12, 30)));
    }

    #[test]
    fn joint_discharge_guidance_may_be_held_on_the_day_of_discharge() {
        let admitted_on = admitted(jst(2026, 2, 2, 10, 0));
        assert_eq!(due_at(&JOINT_DISCHARGE_GUIDANCE, &admitted_on), None, "no discharge date known yet");
        // Planned for Friday 27 February: due by the end of that day, not the day before.
        let planned = Anchors { planned_discharge_on: Some(date(2026, 2, 27)), ..admitted_on };
        assert_eq!(due_at(&JOINT_DISCHARGE_GUIDANCE, &planned), Some(end_of(2026, 2, 27)));
        // The patient left a day late: the actual day counts.
        let left = Anchors { discharged_on: Some(date(2026, 2, 28)), ..planned.clone() };
        assert_eq!(due_at(&JOINT_DISCHARGE_GUIDANCE, &left), Some(end_of(2026, 2, 28)));
        // Other "before discharge" tasks stay due the day before the planned date.
        assert_eq!(due_at(&CARE_PLAN, &planned), Some(end_of(2026, 2, 26)));
    }

    #[test]
    fn overdue_starts_one_microsecond_after_the_deadline() {
        let due = end_of(2026, 3, 9);
        let just_after = due + TimeDelta::microseconds(1);
        assert!(!is_overdue(Some(due), true, due), "at the deadline itself the task is on time");
        assert!(is_overdue(Some(due), true, just_after));
        assert!(!is_overdue(Some(due), true, due - TimeDelta::microseconds(1)));
        assert!(!is_overdue(Some(due), false, just_after), "a closed task is never overdue");
        assert!(!is_overdue(None, true, just_after), "a task without a deadline is never overdue");
    }
}
