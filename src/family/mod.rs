//! The family channel (家族との連絡): messages between the patient's family and the care team.
//! What a professional posts here is what they choose to share with the family; the family
//! never sees the professional notes by default. A family member's message can raise a flag for
//! the team ("昨夜から熱が38度あります"): the team is alerted as for any flag. Messages are never
//! edited or deleted (the table refuses it); one sent by mistake is marked entered in error by its
//! writer, with a reason, and stays readable as such. Who may read and post is
//! `access::family_channel`, who may mark one `access::family_message_in_error`.

pub mod handlers;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api;
use crate::audit::{self, Action, Event, Resource};
use crate::auth::CurrentUser;
use crate::db::schema::{family_message_errors, family_messages, users};
use crate::db::{new_id, now, DbConn};
use crate::error::AppResult;
use crate::flags::{self, EscalationLimits};
use crate::mail::{self, Mailer, Notice};
use crate::patients::Patient;
use crate::vocab::{FlagSeverity, FlagSource, Profession};

/// Longest message, in characters.
pub const MAX_CHARS: usize = 2000;

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = family_messages)]
pub struct Message {
    pub id: String,
    pub patient_id: String,
    pub author_id: String,
    pub text: String,
    pub flag_id: Option<String>,
    pub created_at: NaiveDateTime,
}

/// A message as the channel shows it, with who wrote it.
#[derive(Debug, Serialize)]
pub struct MessageView {
    pub id: String,
    pub patient_id: String,
    pub author_id: String,
    pub author_name: String,
    /// `layperson` for the patient and the family; a professional's profession otherwise.
    pub author_profession: Profession,
    pub text: String,
    /// The flag this message raised for the team, if it raised one.
    pub flag_id: Option<String>,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
    /// Marked entered in error by its writer: why, and when. The text stays as it was.
    pub entered_in_error: bool,
    pub error_reason: Option<String>,
    #[serde(serialize_with = "api::utc_opt")]
    pub marked_at: Option<NaiveDateTime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkInError {
    pub reason: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Post {
    pub text: String,
    /// Ask the team to look now: raises an urgent flag with the message as its reason.
    #[serde(default)]
    pub raise_flag: bool,
}

fn view(
    m: Message,
    author_name: String,
    author_profession: Profession,
    error: Option<(String, NaiveDateTime)>,
) -> MessageView {
    let (error_reason, marked_at) = error.map_or((None, None), |(r, at)| (Some(r), Some(at)));
    MessageView {
        entered_in_error: error_reason.is_some(),
        error_reason,
        marked_at,
        id: m.id,
        patient_id: m.patient_id,
        author_id: m.author_id,
        author_name,
        author_profession,
        text: m.text,
        flag_id: m.flag_id,
        created_at: m.created_at,
    }
}

/// Posts a message (the caller was allowed by `access::family_channel`), audited; with
/// `raise_flag`, in the same transaction an urgent flag is raised and the team alerted.
pub fn post(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    limits: &EscalationLimits,
    patient: &Patient,
    input: Post,
) -> AppResult<MessageView> {
    let t = now();
    let flag_id = if input.raise_flag {
        let (severity, source) = (FlagSeverity::Urgent, FlagSource::FamilyMessage);
        Some(flags::alerts::raise(conn, me, mailer, limits, patient, severity, source, input.text.clone())?.id)
    } else {
        None
    };
    let message = Message {
        id: new_id(),
        patient_id: patient.id.clone(),
        author_id: me.id.clone(),
        text: input.text,
        flag_id,
        created_at: t,
    };
    diesel::insert_into(family_messages::table).values(&message).execute(conn)?;
    crate::changes::record(conn, crate::changes::Change::FamilyMessage { patient_id: &patient.id })?;
    tell(conn, me, mailer, patient, &message)?;
    audit::record(conn, me, Event::new(Action::Create, Resource::FamilyMessage, Some(&message.id), Some(&patient.id)))?;
    Ok(view(message, me.name.clone(), me.profession, None))
}

/// One message of the patient's channel.
pub fn find(conn: &mut DbConn, patient_id: &str, id: &str) -> AppResult<Option<Message>> {
    Ok(family_messages::table
        .filter(family_messages::id.eq(id))
        .filter(family_messages::patient_id.eq(patient_id))
        .select(Message::as_select())
        .first(conn)
        .optional()?)
}

/// Marks a message entered in error (the caller, its writer, was allowed by
/// `access::family_message_in_error`), audited; 409 when it is marked already.
pub fn mark_in_error(conn: &mut DbConn, me: &CurrentUser, message: &Message, reason: &str) -> AppResult<MessageView> {
    let t = now();
    let inserted = crate::per_backend!(conn, |c| diesel::insert_into(family_message_errors::table)
        .values((
            family_message_errors::message_id.eq(&message.id),
            family_message_errors::patient_id.eq(&message.patient_id),
            family_message_errors::marked_by.eq(&me.id),
            family_message_errors::reason.eq(reason),
            family_message_errors::marked_at.eq(t),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    if inserted != 1 {
        return Err(crate::error::AppError::conflict(
            "このメッセージはすでに取り消されています。",
            "This message has been marked entered in error already.",
        ));
    }
    crate::changes::record(conn, crate::changes::Change::FamilyMessage { patient_id: &message.patient_id })?;
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::FamilyMessage, Some(&message.id), Some(&message.patient_id))
            .detail("entered in error"),
    )?;
    Ok(view(message.clone(), me.name.clone(), me.profession, Some((reason.to_string(), t))))
}

/// Tells the other side of the channel, in the message's transaction: a professional's message
/// goes to the participants (the family far away hears of it), a family member's to the team's
/// lead or care managers. Without the text.
fn tell(conn: &mut DbConn, me: &CurrentUser, mailer: &Mailer, patient: &Patient, m: &Message) -> AppResult<usize> {
    let mut recipients = if me.organization_id.is_some() {
        crate::patients::participants::active_user_ids(conn, &patient.id)?
    } else {
        crate::patients::team::lead_user_ids(conn, &patient.id)?
    };
    recipients.retain(|id| *id != me.id);
    let notice = Notice::FamilyMessage {
        author: crate::patients::team::person_kind(conn, me.profession, me.organization_id.as_deref())?,
        posted_at: m.created_at,
        patient: patient.email_label(mailer.patient_label()),
        patient_id: patient.id.clone(),
    };
    mail::notify(conn, mailer, &recipients, &notice, Some(&patient.id), &format!("family_message:{}", m.id))
}

/// Where a page of the channel ends: the last message's time and id.
pub fn position(m: &MessageView) -> String {
    format!("{}|{}", api::format_utc(&m.created_at), m.id)
}

fn decode(position: &str) -> Option<(NaiveDateTime, String)> {
    let (at, id) = position.split_once('|')?;
    let at = chrono::DateTime::parse_from_rfc3339(at).ok()?.naive_utc();
    (!id.is_empty()).then(|| (at, id.to_string()))
}

/// A page of the channel, newest first, after `position` (422 naming `cursor` when it is not
/// one this list handed out).
pub fn page(conn: &mut DbConn, patient_id: &str, after: Option<&str>, limit: i64) -> AppResult<Vec<MessageView>> {
    let mut q = family_messages::table
        .inner_join(users::table.on(users::id.eq(family_messages::author_id)))
        .left_join(family_message_errors::table)
        .filter(family_messages::patient_id.eq(patient_id))
        .into_boxed();
    if let Some(position) = after {
        let (at, id) = decode(position).ok_or_else(api::invalid_cursor)?;
        q = q.filter(
            family_messages::created_at.lt(at).or(family_messages::created_at.eq(at).and(family_messages::id.lt(id))),
        );
    }
    type Row = (Message, String, Profession, Option<(String, NaiveDateTime)>);
    let rows: Vec<Row> = q
        .order((family_messages::created_at.desc(), family_messages::id.desc()))
        .limit(limit + 1)
        .select((
            Message::as_select(),
            users::name,
            users::profession,
            (family_message_errors::reason, family_message_errors::marked_at).nullable(),
        ))
        .load(conn)?;
    Ok(rows.into_iter().map(|(m, name, profession, error)| view(m, name, profession, error)).collect())
}
