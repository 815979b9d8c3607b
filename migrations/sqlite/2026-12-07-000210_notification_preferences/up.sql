-- Whether a person wants one kind of alert on one channel (e-mail, push). No row: yes, as
-- before this table. An emergency flag's alerts go out on every channel whatever is stored here.
CREATE TABLE notification_preferences (
    user_id TEXT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, kind, channel)
);
