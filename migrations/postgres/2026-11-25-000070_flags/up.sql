-- Deterioration flags (急性増悪): raised by a team member or by the system from a note's NEWS2,
-- acknowledged, resolved; escalated step by step while nobody acknowledges.

CREATE TABLE flags (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    -- `manual` or `news2`.
    source TEXT NOT NULL,
    source_note_id TEXT,
    reason TEXT NOT NULL,
    raised_by TEXT REFERENCES users (id),
    raised_at TIMESTAMP NOT NULL,
    acknowledged_by TEXT REFERENCES users (id),
    acknowledged_at TIMESTAMP,
    acknowledge_note TEXT,
    resolved_by TEXT REFERENCES users (id),
    resolved_at TIMESTAMP,
    resolve_note TEXT,
    -- 0: the team was told; 1: the backup physician; 2: the ward's coordinating physicians.
    escalation_level INTEGER NOT NULL,
    next_escalation_at TIMESTAMP,
    version INTEGER NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX flags_patient ON flags (patient_id, status);
CREATE INDEX flags_escalation ON flags (status, next_escalation_at);

-- Which deterioration alerts a person wants by e-mail: `all`, `emergency_only` or `none`.
-- An emergency always reaches the primary and backup physicians and the team lead.
ALTER TABLE users ADD COLUMN flag_notifications TEXT NOT NULL DEFAULT 'all';
