-- Dates an office names as its own closed days (お盆休み, 創立記念日, a training day), beside its
-- closed weekdays, national holidays and 年末年始 (src/calendar.rs). The 入院時情報提供 deadline
-- of the care-management office that receives an admission skips them. Existing offices have
-- none, so every deadline already set stays as it is.
CREATE TABLE organization_closed_dates (
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    closed_on DATE NOT NULL,
    PRIMARY KEY (organization_id, closed_on)
);
