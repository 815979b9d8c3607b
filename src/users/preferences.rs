//! Notification preferences: whether a person wants each kind of alert by e-mail and by push.
//! Everything is on until turned off. An emergency flag's alerts (raised or escalated) go out on
//! every channel whatever the person chose: `mail::notify` asks [`Preferences::wants`] only for
//! the others.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::db::schema::notification_preferences;
use crate::db::{now, DbConn};
use crate::error::AppResult;

crate::text_enum! {
    /// The kinds of alert a person chooses channels for.
    AlertKind {
        FlagRaised => "flag_raised",
        FlagEscalated => "flag_escalated",
        TaskAssigned => "task_assigned",
    }
}

crate::text_enum! {
    /// The channels an alert goes out on.
    AlertChannel {
        Email => "email",
        Push => "push",
    }
}

/// One channel's choices, one per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Kinds {
    pub flag_raised: bool,
    pub flag_escalated: bool,
    pub task_assigned: bool,
}

impl Kinds {
    const ALL_ON: Kinds = Kinds { flag_raised: true, flag_escalated: true, task_assigned: true };

    fn get(&self, kind: AlertKind) -> bool {
        match kind {
            AlertKind::FlagRaised => self.flag_raised,
            AlertKind::FlagEscalated => self.flag_escalated,
            AlertKind::TaskAssigned => self.task_assigned,
        }
    }

    fn set(&mut self, kind: AlertKind, on: bool) {
        match kind {
            AlertKind::FlagRaised => self.flag_raised = on,
            AlertKind::FlagEscalated => self.flag_escalated = on,
            AlertKind::TaskAssigned => self.task_assigned = on,
        }
    }
}

/// A person's preferences, as `GET /me/notification-preferences` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Preferences {
    pub email: Kinds,
    pub push: Kinds,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences { email: Kinds::ALL_ON, push: Kinds::ALL_ON }
    }
}

impl Preferences {
    /// Whether the person wants this kind of alert on this channel (emergencies aside).
    pub fn wants(&self, kind: AlertKind, channel: AlertChannel) -> bool {
        match channel {
            AlertChannel::Email => self.email.get(kind),
            AlertChannel::Push => self.push.get(kind),
        }
    }
}

/// A change: only the choices named are changed (a named one must be `true` or `false`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindsInput {
    #[serde(default, deserialize_with = "named")]
    pub flag_raised: Option<bool>,
    #[serde(default, deserialize_with = "named")]
    pub flag_escalated: Option<bool>,
    #[serde(default, deserialize_with = "named")]
    pub task_assigned: Option<bool>,
}

/// A field that may be left out but, when present, has a value: `null` is refused (422).
fn named<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreferencesInput {
    #[serde(default, deserialize_with = "named")]
    pub email: Option<KindsInput>,
    #[serde(default, deserialize_with = "named")]
    pub push: Option<KindsInput>,
}

impl PreferencesInput {
    fn choices(&self) -> Vec<(AlertKind, AlertChannel, bool)> {
        let mut out = Vec::new();
        for (channel, kinds) in [(AlertChannel::Email, &self.email), (AlertChannel::Push, &self.push)] {
            let Some(k) = kinds else { continue };
            for (kind, on) in [
                (AlertKind::FlagRaised, k.flag_raised),
                (AlertKind::FlagEscalated, k.flag_escalated),
                (AlertKind::TaskAssigned, k.task_assigned),
            ] {
                if let Some(on) = on {
                    out.push((kind, channel, on));
                }
            }
        }
        out
    }
}

pub fn load(conn: &mut DbConn, user_id: &str) -> AppResult<Preferences> {
    use notification_preferences::dsl as n;
    let rows: Vec<(String, String, bool)> = n::notification_preferences
        .filter(n::user_id.eq(user_id))
        .select((n::kind, n::channel, n::enabled))
        .load(conn)?;
    let mut prefs = Preferences::default();
    for (kind, channel, on) in rows {
        // A kind or channel no longer known is ignored, never an error.
        let (Some(kind), Some(channel)) = (AlertKind::parse(&kind), AlertChannel::parse(&channel)) else { continue };
        match channel {
            AlertChannel::Email => prefs.email.set(kind, on),
            AlertChannel::Push => prefs.push.set(kind, on),
        }
    }
    Ok(prefs)
}

/// Stores the choices named in `input` (one upsert each, so two concurrent changes never
/// collide) and returns the preferences that result.
pub fn save(conn: &mut DbConn, user_id: &str, input: &PreferencesInput) -> AppResult<Preferences> {
    use notification_preferences::dsl as n;
    let t = now();
    for (kind, channel, on) in input.choices() {
        let row = (
            n::user_id.eq(user_id),
            n::kind.eq(kind.as_str()),
            n::channel.eq(channel.as_str()),
            n::enabled.eq(on),
            n::updated_at.eq(t),
        );
        let insert = diesel::insert_into(n::notification_preferences).values(row);
        let conflict = (n::user_id, n::kind, n::channel);
        let update = (n::enabled.eq(on), n::updated_at.eq(t));
        match conn {
            DbConn::Postgres(c) => insert.on_conflict(conflict).do_update().set(update).execute(c)?,
            DbConn::Sqlite(c) => insert.on_conflict(conflict).do_update().set(update).execute(c)?,
        };
    }
    load(conn, user_id)
}
