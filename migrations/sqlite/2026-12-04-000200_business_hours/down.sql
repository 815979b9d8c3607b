ALTER TABLE organizations DROP COLUMN closed_year_end;
ALTER TABLE organizations DROP COLUMN closed_on_holidays;
ALTER TABLE organizations DROP COLUMN closed_weekdays;
ALTER TABLE organizations DROP COLUMN closes_at_minute;
ALTER TABLE organizations DROP COLUMN opens_at_minute;
