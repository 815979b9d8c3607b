DROP TABLE appointment_versions;
DROP TABLE appointments;
DROP TABLE visit_plan_versions;
DROP TABLE visit_plans;
DROP FUNCTION visit_week_append_only();
