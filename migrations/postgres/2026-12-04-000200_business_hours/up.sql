-- Each organisation's business hours and closed days (営業時間・営業日), read by the
-- 入院時情報連携加算 deadline of the care-management office that receives the admission
-- (src/calendar.rs). Existing rows get the common defaults: 9:00 to 17:00 JST, closed on
-- Saturdays, Sundays, national holidays and 年末年始 (29 December to 3 January).
-- Minutes after midnight JST: opens at 540 (9:00), closes at 1020 (17:00), closing excluded.
ALTER TABLE organizations ADD COLUMN opens_at_minute INTEGER NOT NULL DEFAULT 540;
ALTER TABLE organizations ADD COLUMN closes_at_minute INTEGER NOT NULL DEFAULT 1020;
-- The weekdays the office is closed, as a comma-separated list of codes (mon … sun).
ALTER TABLE organizations ADD COLUMN closed_weekdays TEXT NOT NULL DEFAULT 'sat,sun';
ALTER TABLE organizations ADD COLUMN closed_on_holidays BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE organizations ADD COLUMN closed_year_end BOOLEAN NOT NULL DEFAULT TRUE;
