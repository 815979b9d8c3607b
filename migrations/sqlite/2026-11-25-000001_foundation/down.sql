DROP TABLE login_throttle;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
DROP TABLE organization_services;
DROP TABLE organizations;
DROP TABLE wards;
