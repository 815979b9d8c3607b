//! The outbox table: queueing an e-mail in the caller's transaction, the worker's claim and its
//! outcome, and the operators' view.
//!
//! Claiming differs per backend, and only that: PostgreSQL locks the candidate rows with
//! `FOR UPDATE SKIP LOCKED`, so instances never wait for or take each other's rows; SQLite has
//! one writer at a time, so one conditional `UPDATE` both picks and leases the rows. Either way
//! the claim sets a lease (`locked_until`, `claimed_by`) that other workers respect until it
//! ends, so a worker that dies mid-send leaves its e-mails to be retried, not lost. The lease is
//! short and the worker renews it ([`renew`]) while it still holds the e-mails, so a dead
//! instance's e-mails are taken over quickly and a live instance's slow send is not.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::templates::{MailKind, Rendered};
use crate::db::schema::email_outbox;
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};

crate::text_enum! {
    /// An e-mail's delivery: waiting (or being retried), handed to the mail server, or given up.
    EmailStatus {
        Pending => "pending",
        Sent => "sent",
        Dead => "dead",
    }
}

crate::text_enum! {
    /// How an outbox message goes out. One row per message and channel (and per push
    /// subscription), each with its own dedupe key, attempts and outcome: a push that fails never
    /// holds up or repeats the e-mail of the same alert.
    Channel {
        Email => "email",
        Push => "push",
        Webhook => "webhook",
    }
}

/// Longest error text kept with an e-mail.
const MAX_ERROR_CHARS: usize = 500;

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = email_outbox)]
pub struct OutboxEmail {
    pub id: String,
    pub recipient_user_id: Option<String>,
    pub to_address: String,
    pub to_name: Option<String>,
    pub locale: String,
    pub kind: MailKind,
    pub subject: String,
    pub body_text: String,
    pub patient_id: Option<String>,
    pub dedupe_key: Option<String>,
    pub status: EmailStatus,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub locked_until: Option<NaiveDateTime>,
    pub claimed_by: Option<String>,
    pub last_error: Option<String>,
    pub message_id: String,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
    /// The instance that handed the e-mail to the mail server.
    pub sent_by: Option<String>,
    pub channel: Channel,
    /// For a push message: the subscription it goes to. `to_address` then holds the push
    /// service's origin, `subject` the title and `body_text` the message (JSON) to encrypt.
    pub push_subscription_id: Option<String>,
    /// For a webhook event: the endpoint it goes to. `to_address` then holds the endpoint's
    /// origin, `subject` the event type, `body_text` the event (JSON, signed as is) and
    /// `message_id` the event id.
    pub webhook_endpoint_id: Option<String>,
}

/// An e-mail ready to queue. Made by [`super::Mailer`] from a template, so its subject and body
/// are never raw input.
#[derive(Debug, Clone)]
pub struct NewEmail {
    pub(super) recipient_user_id: Option<String>,
    to_address: String,
    to_name: Option<String>,
    content: Rendered,
    domain: String,
    patient_id: Option<String>,
    dedupe_key: Option<String>,
}

impl NewEmail {
    pub(super) fn new(to_address: &str, content: Rendered, domain: &str) -> NewEmail {
        NewEmail {
            recipient_user_id: None,
            to_address: to_address.trim().to_string(),
            to_name: None,
            content,
            domain: domain.to_string(),
            patient_id: None,
            dedupe_key: None,
        }
    }

    /// The patient the notice is about.
    pub fn about_patient(mut self, patient_id: &str) -> NewEmail {
        self.patient_id = Some(patient_id.to_string());
        self
    }

    /// Queue at most one e-mail for this key, ever: for producers that must notify exactly once
    /// per step (e.g. `flag:<id>:escalation:2:<user_id>`), even when two instances try.
    pub fn once(mut self, dedupe_key: impl Into<String>) -> NewEmail {
        self.dedupe_key = Some(dedupe_key.into());
        self
    }

    /// The outbox row for this e-mail, pending, with a new id and its Message-ID.
    pub fn into_row(self) -> OutboxEmail {
        let id = new_id();
        let t = now();
        let email = self;
        OutboxEmail {
            message_id: message_id(&id, &email.domain),
            id: id.clone(),
            recipient_user_id: email.recipient_user_id,
            to_address: email.to_address,
            to_name: email.to_name,
            locale: email.content.locale().as_str().to_string(),
            kind: email.content.kind(),
            subject: email.content.subject().to_string(),
            body_text: email.content.body().to_string(),
            patient_id: email.patient_id,
            dedupe_key: email.dedupe_key,
            status: EmailStatus::Pending,
            attempts: 0,
            next_attempt_at: t,
            locked_until: None,
            claimed_by: None,
            last_error: None,
            created_at: t,
            sent_at: None,
            sent_by: None,
            channel: Channel::Email,
            push_subscription_id: None,
            webhook_endpoint_id: None,
        }
    }

    /// The push counterpart of this e-mail for one of the recipient's subscriptions: the same
    /// kind, patient and locale, `message` as its body, a dedupe key of its own.
    pub fn push_row(&self, subscription: &crate::push::Subscription, message: &str) -> OutboxEmail {
        let mut row = self.clone().into_row();
        row.channel = Channel::Push;
        row.push_subscription_id = Some(subscription.id.clone());
        row.to_address = crate::push::origin(&subscription.endpoint);
        row.to_name = None;
        row.body_text = message.to_string();
        row.dedupe_key = self.dedupe_key.as_ref().map(|k| format!("{k}:push:{}", subscription.id));
        row
    }

    pub fn to_address(&self) -> &str {
        &self.to_address
    }

    pub(super) fn content(&self) -> &Rendered {
        &self.content
    }

    pub fn subject(&self) -> &str {
        self.content.subject()
    }

    pub fn body(&self) -> &str {
        self.content.body()
    }
}

/// The outbox row of one webhook event for one endpoint, pending.
pub fn webhook_row(
    endpoint_id: &str,
    origin: &str,
    event_type: &str,
    event_id: &str,
    body: &str,
    patient_id: &str,
) -> OutboxEmail {
    let t = now();
    OutboxEmail {
        id: new_id(),
        recipient_user_id: None,
        to_address: origin.to_string(),
        to_name: None,
        locale: crate::vocab::Locale::Ja.as_str().to_string(),
        kind: MailKind::Webhook,
        subject: event_type.to_string(),
        body_text: body.to_string(),
        patient_id: Some(patient_id.to_string()),
        dedupe_key: None,
        status: EmailStatus::Pending,
        attempts: 0,
        next_attempt_at: t,
        locked_until: None,
        claimed_by: None,
        last_error: None,
        message_id: event_id.to_string(),
        created_at: t,
        sent_at: None,
        sent_by: None,
        channel: Channel::Webhook,
        push_subscription_id: None,
        webhook_endpoint_id: Some(endpoint_id.to_string()),
    }
}

/// The Message-ID of an outbox e-mail: derived from its id, so every attempt carries the same one
/// and a receiver can drop a duplicate after an ambiguous failure.
pub fn message_id(id: &str, domain: &str) -> String {
    format!("<{id}@{domain}>")
}

/// Queues an e-mail inside the caller's transaction: it is sent if and only if the transaction
/// commits. Returns the outbox id, or `None` when an e-mail with the same dedupe key was queued
/// before. This instance's worker is woken once the transaction commits.
pub fn enqueue(conn: &mut DbConn, email: NewEmail) -> AppResult<Option<String>> {
    enqueue_row(conn, email.into_row())
}

/// Queues a prepared outbox row (an e-mail or a push message), as [`enqueue`].
pub fn enqueue_row(conn: &mut DbConn, row: OutboxEmail) -> AppResult<Option<String>> {
    let id = row.id.clone();
    let inserted = if row.dedupe_key.is_none() {
        diesel::insert_into(email_outbox::table).values(&row).execute(conn)?
    } else {
        // A duplicate key must not abort the caller's transaction (PostgreSQL would), so the
        // insert itself skips it; the upsert syntax is per backend.
        match conn {
            DbConn::Postgres(c) => {
                diesel::insert_into(email_outbox::table).values(&row).on_conflict_do_nothing().execute(c)?
            }
            DbConn::Sqlite(c) => {
                diesel::insert_into(email_outbox::table).values(&row).on_conflict_do_nothing().execute(c)?
            }
        }
    };
    if inserted == 1 {
        crate::db::wake_outbox_after_commit();
    }
    Ok((inserted == 1).then_some(id))
}

pub fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<OutboxEmail>> {
    Ok(email_outbox::table.find(id).select(OutboxEmail::as_select()).first(conn).optional()?)
}

/// Leases up to `limit` e-mails that are due to this worker until `until`, oldest due first.
/// Run it as the first statement of its transaction (SQLite then takes the write lock at once).
pub fn claim(
    conn: &mut DbConn,
    worker: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
    limit: i64,
) -> AppResult<Vec<OutboxEmail>> {
    use diesel::sql_types::{BigInt, Text, Timestamp};
    use email_outbox::dsl as o;
    // The candidates and the lease in one statement: on PostgreSQL the candidates are locked and
    // rows another worker is claiming right now are skipped, not waited for; on SQLite the
    // statement holds the single write lock, so no other worker can pick the same rows.
    let sql = match conn {
        DbConn::Postgres(_) => {
            "UPDATE email_outbox SET locked_until = $1, claimed_by = $2 WHERE id IN ( \
               SELECT id FROM email_outbox \
               WHERE status = $3 AND next_attempt_at <= $4 AND (locked_until IS NULL OR locked_until < $4) \
               ORDER BY next_attempt_at, id LIMIT $5 FOR UPDATE SKIP LOCKED)"
        }
        DbConn::Sqlite(_) => {
            "UPDATE email_outbox SET locked_until = ?1, claimed_by = ?2 WHERE id IN ( \
               SELECT id FROM email_outbox \
               WHERE status = ?3 AND next_attempt_at <= ?4 AND (locked_until IS NULL OR locked_until < ?4) \
               ORDER BY next_attempt_at, id LIMIT ?5)"
        }
    };
    diesel::sql_query(sql)
        .bind::<Timestamp, _>(until)
        .bind::<Text, _>(worker)
        .bind::<Text, _>(EmailStatus::Pending)
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(limit)
        .execute(conn)?;
    // This worker finishes a batch before it claims the next, so its name and this lease's end
    // identify exactly the rows just claimed.
    Ok(o::email_outbox
        .filter(o::claimed_by.eq(worker))
        .filter(o::locked_until.eq(until))
        .filter(o::status.eq(EmailStatus::Pending))
        .order((o::next_attempt_at.asc(), o::id.asc()))
        .select(OutboxEmail::as_select())
        .load(conn)?)
}

/// Extends the lease of these e-mails while this worker still holds them (sending, or waiting
/// for a free connection). Returns how many it still holds; one taken over by another worker
/// after a missed renewal is not taken back.
pub fn renew(conn: &mut DbConn, worker: &str, ids: &[String], until: NaiveDateTime) -> AppResult<usize> {
    use email_outbox::dsl as o;
    if ids.is_empty() {
        return Ok(0);
    }
    let mine = o::email_outbox
        .filter(o::id.eq_any(ids))
        .filter(o::claimed_by.eq(worker))
        .filter(o::status.eq(EmailStatus::Pending));
    Ok(diesel::update(mine).set(o::locked_until.eq(Some(until))).execute(conn)?)
}

/// What became of one delivery attempt, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent { at: NaiveDateTime },
    Retry { attempts: i32, at: NaiveDateTime, error: String },
    Dead { attempts: i32, error: String },
}

/// Records an attempt's outcome and ends the lease. False when this worker no longer holds the
/// e-mail (its lease ran out and another worker took it over).
pub fn record(conn: &mut DbConn, id: &str, worker: &str, outcome: &Outcome) -> AppResult<bool> {
    use email_outbox::dsl as o;
    let mine = o::email_outbox
        .filter(o::id.eq(id))
        .filter(o::claimed_by.eq(worker))
        .filter(o::status.eq(EmailStatus::Pending));
    let release = (o::locked_until.eq(None::<NaiveDateTime>), o::claimed_by.eq(None::<String>));
    let n = match outcome {
        Outcome::Sent { at } => diesel::update(mine)
            .set((
                o::status.eq(EmailStatus::Sent),
                o::attempts.eq(o::attempts + 1),
                o::sent_at.eq(Some(*at)),
                o::sent_by.eq(Some(worker)),
                release,
            ))
            .execute(conn)?,
        Outcome::Retry { attempts, at, error } => diesel::update(mine)
            .set((o::attempts.eq(*attempts), o::next_attempt_at.eq(*at), o::last_error.eq(Some(clip(error))), release))
            .execute(conn)?,
        Outcome::Dead { attempts, error } => diesel::update(mine)
            .set((
                o::status.eq(EmailStatus::Dead),
                o::attempts.eq(*attempts),
                o::last_error.eq(Some(clip(error))),
                release,
            ))
            .execute(conn)?,
    };
    Ok(n == 1)
}

fn clip(error: &str) -> String {
    super::templates::one_line(&super::mask_addresses_in(error), MAX_ERROR_CHARS)
}

/// How far behind delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    pub pending: i64,
    pub dead: i64,
    pub oldest_pending_created_at: Option<NaiveDateTime>,
}

impl Depth {
    /// Seconds since the oldest pending e-mail was queued.
    pub fn oldest_pending_age_secs(&self, now: NaiveDateTime) -> Option<i64> {
        self.oldest_pending_created_at.map(|t| (now - t).num_seconds().max(0))
    }
}

/// Pending and dead counts (both served by the status index; sent e-mails are counted only on
/// request, see [`count_sent`]).
pub fn depth(conn: &mut DbConn) -> AppResult<Depth> {
    use diesel::dsl::{count_star, min};
    use email_outbox::dsl as o;
    let pending: i64 = o::email_outbox.filter(o::status.eq(EmailStatus::Pending)).select(count_star()).first(conn)?;
    let dead: i64 = o::email_outbox.filter(o::status.eq(EmailStatus::Dead)).select(count_star()).first(conn)?;
    let oldest: Option<NaiveDateTime> =
        o::email_outbox.filter(o::status.eq(EmailStatus::Pending)).select(min(o::created_at)).first(conn)?;
    Ok(Depth { pending, dead, oldest_pending_created_at: oldest })
}

pub fn count_sent(conn: &mut DbConn) -> AppResult<i64> {
    use email_outbox::dsl as o;
    Ok(o::email_outbox.filter(o::status.eq(EmailStatus::Sent)).select(diesel::dsl::count_star()).first(conn)?)
}

/// Dead e-mails, newest first, one page (`limit + 1` rows, for the cursor).
pub fn dead_page(conn: &mut DbConn, after: Option<&str>, limit: i64) -> AppResult<Vec<OutboxEmail>> {
    use email_outbox::dsl as o;
    let mut q = o::email_outbox.filter(o::status.eq(EmailStatus::Dead)).into_boxed();
    if let Some(after) = after {
        q = q.filter(o::id.lt(after.to_string()));
    }
    Ok(q.order(o::id.desc()).limit(limit + 1).select(OutboxEmail::as_select()).load(conn)?)
}

/// Puts a dead e-mail back in the queue with a fresh count of attempts.
pub fn retry(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> AppResult<OutboxEmail> {
    use email_outbox::dsl as o;
    let n = diesel::update(o::email_outbox.filter(o::id.eq(id)).filter(o::status.eq(EmailStatus::Dead)))
        .set((
            o::status.eq(EmailStatus::Pending),
            o::attempts.eq(0),
            o::next_attempt_at.eq(now),
            o::locked_until.eq(None::<NaiveDateTime>),
            o::claimed_by.eq(None::<String>),
        ))
        .execute(conn)?;
    let email = find(conn, id)?.ok_or_else(AppError::not_found)?;
    if n == 0 {
        return Err(AppError::conflict(
            format!(
                "このメールは再送できません（状態: {}）。再送できるのは配信を諦めた (dead) メールだけです。",
                email.status
            ),
            format!("Only a dead e-mail can be retried; this one is {}.", email.status),
        ));
    }
    crate::db::wake_outbox_after_commit();
    Ok(email)
}
