//! Business days in Japan: which calendar days an office is open, and at which hours.
//!
//! 入院時情報連携加算 counts from the receiving office's hours: "営業時間終了後又は営業日以外"
//! (after its hours, or on a day it is closed) moves the deadline to its next business day
//! (docs/domain.md). A day is closed when it is one of the office's closed weekdays, a national
//! holiday (国民の祝日, 振替休日, 国民の休日) when the office closes on them, or within 年末年始
//! (29 December to 3 January) when it closes then, or one of the dates the office names as its
//! own closed days (お盆休み, 創立記念日, a training day). The defaults are the common ones:
//! Monday to Friday, 9:00 up to 17:00 JST, closed on holidays and over 年末年始, no dates of its own.
//!
//! The national holidays come from the `jpholiday` crate (MIT), which derives them from the
//! Act on National Holidays (国民の祝日に関する法律) as the Cabinet Office publishes it,
//! 振替休日 and 国民の休日 included and the equinoxes computed; no list is typed here.
//! Pure: no database and no clock.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike, Weekday};
use jpholiday::jpholiday::JPHoliday;

/// Minutes after midnight, JST, when the common office opens (9:00) and closes (17:00).
pub const DEFAULT_OPENS_AT: i32 = 9 * 60;
pub const DEFAULT_CLOSES_AT: i32 = 17 * 60;
/// The weekdays the common office is closed.
pub const DEFAULT_CLOSED_WEEKDAYS: &[Weekday] = &[Weekday::Sat, Weekday::Sun];

/// The longest run of closed days looked through for the next business day: a year, so an
/// office whose settings leave it never open (refused on input) still gets an answer.
const LOOKAHEAD_DAYS: u32 = 366;

/// True on a Japanese national holiday: 国民の祝日, 振替休日 or 国民の休日.
pub fn is_national_holiday(day: NaiveDate) -> bool {
    JPHoliday::new().is_holiday(&day)
}

/// True from 29 December to 3 January (年末年始), when most offices are closed.
pub fn is_year_end_break(day: NaiveDate) -> bool {
    matches!((day.month(), day.day()), (12, 29..=31) | (1, 1..=3))
}

/// The most closed dates of its own an office may name: about two years of one a week, far more
/// than any office keeps, so a runaway client cannot grow the list without end.
pub const MAX_CLOSED_DATES: usize = 100;

/// The years a closed date of an office's own may lie in: the ones deadlines are set in.
pub const CLOSED_DATE_YEARS: std::ops::RangeInclusive<i32> = 2000..=2099;

/// An office's business hours and closed days, as its organisation's settings say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessHours {
    /// Opening, in minutes after midnight JST (inclusive).
    pub opens_at: i32,
    /// Closing, in minutes after midnight JST (exclusive: at 17:00 the office is closed).
    pub closes_at: i32,
    /// Closed weekdays, one bit per day from Monday (bit 0) to Sunday (bit 6).
    closed_weekdays: u8,
    pub closed_on_holidays: bool,
    pub closed_year_end: bool,
    /// Dates of the office's own on which it is closed, ascending and without repeats.
    closed_dates: Vec<NaiveDate>,
}

impl Default for BusinessHours {
    fn default() -> Self {
        BusinessHours {
            opens_at: DEFAULT_OPENS_AT,
            closes_at: DEFAULT_CLOSES_AT,
            closed_weekdays: weekday_bits(DEFAULT_CLOSED_WEEKDAYS),
            closed_on_holidays: true,
            closed_year_end: true,
            closed_dates: Vec::new(),
        }
    }
}

fn weekday_bits(days: &[Weekday]) -> u8 {
    days.iter().fold(0, |bits, d| bits | (1 << d.num_days_from_monday()))
}

impl BusinessHours {
    pub fn new(
        opens_at: i32,
        closes_at: i32,
        closed_weekdays: &[Weekday],
        closed_on_holidays: bool,
        closed_year_end: bool,
    ) -> Self {
        BusinessHours {
            opens_at,
            closes_at,
            closed_weekdays: weekday_bits(closed_weekdays),
            closed_on_holidays,
            closed_year_end,
            closed_dates: Vec::new(),
        }
    }

    /// The same hours, closed also on `dates` (in any order, repeats ignored).
    pub fn with_closed_dates(mut self, mut dates: Vec<NaiveDate>) -> Self {
        dates.sort_unstable();
        dates.dedup();
        self.closed_dates = dates;
        self
    }

    /// The office's own closed dates, ascending.
    pub fn closed_dates(&self) -> &[NaiveDate] {
        &self.closed_dates
    }

    /// The closed weekdays, Monday first.
    pub fn closed_weekdays(&self) -> Vec<Weekday> {
        ALL_WEEKDAYS.iter().copied().filter(|d| self.closes_on_weekday(*d)).collect()
    }

    fn closes_on_weekday(&self, day: Weekday) -> bool {
        self.closed_weekdays & (1 << day.num_days_from_monday()) != 0
    }

    /// Whether the office is open at all on a JST calendar day.
    pub fn is_business_day(&self, day: NaiveDate) -> bool {
        !(self.closes_on_weekday(day.weekday())
            || (self.closed_year_end && is_year_end_break(day))
            || (self.closed_on_holidays && is_national_holiday(day))
            || self.closed_dates.binary_search(&day).is_ok())
    }

    /// Whether a JST wall-clock time is within the office's hours on one of its business days.
    pub fn is_open_at(&self, jst: NaiveDateTime) -> bool {
        let minute = (jst.hour() * 60 + jst.minute()) as i32;
        self.is_business_day(jst.date()) && (self.opens_at..self.closes_at).contains(&minute)
    }

    /// The first business day on or after `day`; `day` itself when no business day comes within
    /// a year (settings that leave the office never open, which input validation refuses).
    pub fn first_business_day_from(&self, day: NaiveDate) -> NaiveDate {
        day.iter_days().take(LOOKAHEAD_DAYS as usize).find(|d| self.is_business_day(*d)).unwrap_or(day)
    }
}

pub const ALL_WEEKDAYS: &[Weekday] =
    &[Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

/// The code a weekday is stored and sent as: `mon` … `sun`.
pub fn weekday_code(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

/// Reads a weekday code; None for anything else.
pub fn parse_weekday(code: &str) -> Option<Weekday> {
    ALL_WEEKDAYS.iter().copied().find(|d| weekday_code(*d) == code)
}

/// Minutes after midnight as `HH:MM`.
pub fn format_minute(minute: i32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// Reads `HH:MM` (00:00 to 24:00) as minutes after midnight.
pub fn parse_minute(text: &str) -> Option<i32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    let minute = h * 60 + m;
    ((0..24).contains(&h) && (0..60).contains(&m) || minute == 24 * 60).then_some(minute)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn national_holidays_in_the_years_in_use() {
        // Dates as the Cabinet Office published them: 成人の日, 勤労感謝の日, 国民の休日
        // (between 敬老の日 and 秋分の日, 2026) and 振替休日 (春分の日 on a Sunday, 2027).
        for day in [date(2026, 11, 23), date(2027, 1, 11), date(2026, 9, 22), date(2027, 3, 22), date(2026, 5, 6)] {
            assert!(is_national_holiday(day), "{day}");
        }
        for day in [date(2026, 11, 24), date(2027, 1, 12), date(2026, 9, 24), date(2027, 3, 23)] {
            assert!(!is_national_holiday(day), "{day}");
        }
    }

    #[test]
    fn the_common_office_closes_on_weekends_holidays_and_new_year() {
        let office = BusinessHours::default();
        assert!(office.is_business_day(date(2026, 11, 24)), "Tuesday");
        assert!(!office.is_business_day(date(2026, 11, 23)), "勤労感謝の日");
        assert!(!office.is_business_day(date(2026, 11, 28)), "Saturday");
        for day in date(2026, 12, 29).iter_days().take(6) {
            assert!(!office.is_business_day(day), "年末年始 {day}");
        }
        assert!(office.is_business_day(date(2026, 12, 28)));
        assert_eq!(office.first_business_day_from(date(2026, 12, 29)), date(2027, 1, 4));
        // 成人の日 on Monday 11 January 2027 after a weekend.
        assert_eq!(office.first_business_day_from(date(2027, 1, 9)), date(2027, 1, 12));
    }

    #[test]
    fn an_office_with_its_own_hours() {
        // Open on Saturdays until 12:00 from 8:30, on holidays and over 年末年始, closed on Wednesdays.
        let office = BusinessHours::new(8 * 60 + 30, 12 * 60, &[Weekday::Wed, Weekday::Sun], false, false);
        let at = |d: NaiveDate, h, m| d.and_hms_opt(h, m, 0).unwrap();
        assert!(office.is_open_at(at(date(2026, 11, 28), 8, 30)));
        assert!(!office.is_open_at(at(date(2026, 11, 28), 12, 0)));
        assert!(office.is_open_at(at(date(2026, 11, 23), 10, 0)), "open on 勤労感謝の日");
        assert!(!office.is_business_day(date(2026, 11, 25)), "closed on Wednesdays");
        assert!(office.is_business_day(date(2026, 12, 31)));
        assert_eq!(office.closed_weekdays(), vec![Weekday::Wed, Weekday::Sun]);
        // Never open: the same day comes back rather than a search without end.
        let never = BusinessHours::new(540, 1020, ALL_WEEKDAYS, true, true);
        assert_eq!(never.first_business_day_from(date(2026, 1, 5)), date(2026, 1, 5));
    }

    #[test]
    fn an_office_closed_on_dates_of_its_own() {
        // お盆休み from Thursday 12 to Friday 13 August 2027, given out of order and twice.
        let office =
            BusinessHours::default().with_closed_dates(vec![date(2027, 8, 13), date(2027, 8, 12), date(2027, 8, 13)]);
        assert_eq!(office.closed_dates(), &[date(2027, 8, 12), date(2027, 8, 13)]);
        assert!(office.is_business_day(date(2027, 8, 10)));
        assert!(!office.is_business_day(date(2027, 8, 11)), "山の日");
        assert!(!office.is_business_day(date(2027, 8, 12)));
        assert!(!office.is_open_at(date(2027, 8, 13).and_hms_opt(10, 0, 0).unwrap()));
        // Thursday's admission waits past the weekend for Monday the 16th.
        assert_eq!(office.first_business_day_from(date(2027, 8, 12)), date(2027, 8, 16));
        // The same dates a year on are ordinary days: a date is a date, not an annual rule.
        assert!(office.is_business_day(date(2028, 8, 14)));
    }

    #[test]
    fn times_and_weekdays_read_and_write() {
        assert_eq!(parse_minute("09:00"), Some(540));
        assert_eq!(parse_minute("24:00"), Some(1440));
        assert_eq!(format_minute(1020), "17:00");
        for bad in ["9:00", "24:01", "12:60", "ab:cd", "", "12:000"] {
            assert_eq!(parse_minute(bad), None, "{bad}");
        }
        assert_eq!(parse_weekday("sat"), Some(Weekday::Sat));
        assert_eq!(parse_weekday("Saturday"), None);
    }
}
