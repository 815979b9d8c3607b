DROP TABLE organization_closed_dates;
