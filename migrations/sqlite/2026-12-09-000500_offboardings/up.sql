-- A person leaving their organisation (退職・異動): an administrator offboards the account in one
-- transaction (src/users/offboarding.rs). The row keeps what was done and why, so that the
-- account's history stays readable and a repeated request answers the same. The reason is
-- typed by the administrator: it is shown to administrators, never e-mailed.
CREATE TABLE offboardings (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    reason TEXT NOT NULL,
    offboarded_by TEXT NOT NULL REFERENCES users (id),
    offboarded_at TIMESTAMP NOT NULL,
    sessions_ended INTEGER NOT NULL,
    memberships_ended INTEGER NOT NULL,
    tasks_unassigned INTEGER NOT NULL,
    coordinator_assignments_ended INTEGER NOT NULL,
    leads_told INTEGER NOT NULL
);
CREATE INDEX offboardings_user ON offboardings (user_id, offboarded_at);
