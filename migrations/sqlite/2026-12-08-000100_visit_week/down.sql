DROP TABLE appointment_versions;
DROP TABLE appointments;
DROP TABLE visit_plan_versions;
DROP TABLE visit_plans;
