//! E-mail: every notice of the service goes through the outbox (docs/architecture.md, "The outbox").
//!
//! A module that notifies someone builds the e-mail from a fixed template with [`Mailer`] and
//! queues it with [`outbox::enqueue`] inside its own transaction, so the commit is the promise
//! that the e-mail will go out. Once that transaction commits, the worker of this instance is
//! woken and sends at once (`db::Db::transaction`): no caller has to remember to. Workers also poll, so e-mails queued by other instances and
//! retries that have come due are picked up too.
//!
//! ```text
//! let mailer = state.mail.clone();
//! state.db.run(move |conn| {
//!     // … the change that causes the notice …
//!     let email = mailer.to_user(&user, &Notice::FlagRaised { .. })?.about_patient(&patient_id);
//!     mail::outbox::enqueue(conn, email)?;
//!     Ok(())
//! }).await?;
//! ```

pub mod handlers;
pub mod outbox;
pub mod templates;
pub mod transport;
pub mod worker;

use std::sync::Arc;

use lettre::message::Mailbox;

use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::users::User;
use crate::vocab::{Locale, PatientLabel};

pub use outbox::NewEmail;
pub use templates::{Described, DigestTask, Notice, Severity, TaskName};

/// What producers of e-mail need, shared through `AppState`: how to build an e-mail.
#[derive(Clone)]
pub struct Mailer {
    public_url: Arc<str>,
    /// The domain of Message-IDs: that of the sender address.
    domain: Arc<str>,
    /// How e-mails name a patient.
    patient_label: PatientLabel,
    /// This instance, as outbox leases and sent e-mails name it.
    instance: Arc<str>,
}

impl Mailer {
    pub fn new(config: &Config) -> Mailer {
        // The configuration has already checked that the sender parses.
        let domain = config
            .mail_from
            .parse::<Mailbox>()
            .map(|m| m.email.domain().to_string())
            .unwrap_or_else(|_| "localhost".to_string());
        Mailer {
            public_url: config.public_url.as_str().into(),
            domain: domain.into(),
            patient_label: config.mail_patient_label,
            instance: instance_id().into(),
        }
    }

    /// The id of this instance, made at start: host, process and a random part, so that two
    /// instances (or one restarted) never share it.
    pub fn instance_id(&self) -> &str {
        &self.instance
    }

    /// How e-mails name a patient (`RENKEI_MAIL_PATIENT_LABEL`).
    pub fn patient_label(&self) -> PatientLabel {
        self.patient_label
    }

    /// An e-mail to an account, in the account's language.
    pub fn to_user(&self, user: &User, notice: &Notice) -> AppResult<NewEmail> {
        let locale = user.locale;
        let mut email = self.to_address(&user.email, locale, notice)?;
        email.recipient_user_id = Some(user.id.clone());
        Ok(email)
    }

    /// An e-mail to an address that may have no account (e.g. an operator's test).
    /// The recipient's display name is left out of `To` as from the greeting: it is typed text.
    pub fn to_address(&self, address: &str, locale: Locale, notice: &Notice) -> AppResult<NewEmail> {
        let content = templates::render(notice, locale, &self.public_url)?;
        if address.parse::<lettre::Address>().is_err() {
            return Err(AppError::internal(format!("cannot e-mail the address {}", mask_address(address))));
        }
        Ok(NewEmail::new(address, content, &self.domain))
    }
}

fn instance_id() -> String {
    let host = hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    let host: String =
        host.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')).take(64).collect();
    let host = if host.is_empty() { "host".to_string() } else { host };
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}/{}/{}", std::process::id(), &random[..12])
}

/// `yamada.hanako@example.jp` → `y***@example.jp`: enough to tell recipients apart in a log,
/// not enough to harvest addresses from it.
pub fn mask_address(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((user, domain)) => {
            let first: String = user.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

/// Masks every address inside a piece of text, such as an SMTP server's reply that repeats the
/// recipient (`550 5.1.1 <yamada@example.jp>: unknown user`).
pub fn mask_addresses_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.contains('@') {
            out.push_str(&mask_address(word));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | ',' | ';' | '(' | ')' | '[' | ']') {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Queues one notice for each of these accounts (inactive ones, and those of deactivated
/// organisations, skipped), in the caller's
/// transaction. `dedupe` names the event: the same event never queues twice for one person,
/// whichever instance or retry produces it. Returns how many were queued.
pub fn notify(
    conn: &mut crate::db::DbConn,
    mailer: &Mailer,
    user_ids: &[String],
    notice: &Notice,
    patient_id: Option<&str>,
    dedupe: &str,
) -> AppResult<usize> {
    use crate::users::preferences::{self, AlertChannel, AlertKind};
    let alert = match notice {
        Notice::FlagRaised { .. } => Some(AlertKind::FlagRaised),
        Notice::FlagEscalated { .. } => Some(AlertKind::FlagEscalated),
        Notice::TaskAssigned { .. } => Some(AlertKind::TaskAssigned),
        _ => None,
    };
    // An emergency goes out on every channel, whatever anyone chose.
    let emergency = matches!(
        notice,
        Notice::FlagRaised { severity: Severity::Emergency, .. }
            | Notice::FlagEscalated { severity: Severity::Emergency, .. }
    );
    let mut queued = 0;
    for user_id in user_ids {
        let Some(user) = crate::users::find_in_service(conn, user_id)? else { continue };
        let prefs = match alert {
            Some(_) if !emergency => Some(preferences::load(conn, &user.id)?),
            _ => None,
        };
        let wants = |channel| match (alert, &prefs) {
            (Some(kind), Some(p)) => p.wants(kind, channel),
            _ => true,
        };
        let mut email = mailer.to_user(&user, notice)?.once(format!("{dedupe}:{user_id}"));
        if let Some(p) = patient_id {
            email = email.about_patient(p);
        }
        // The alert also goes to each of the person's push subscriptions, each its own outbox
        // row with its own key, queued in this same transaction.
        if wants(AlertChannel::Push) {
            if let Some(message) = templates::push_message(notice, email.content(), &mailer.public_url)? {
                let message = serde_json::to_string(&message).map_err(|e| AppError::internal(e.to_string()))?;
                for subscription in crate::push::for_user(conn, &user.id)? {
                    outbox::enqueue_row(conn, email.push_row(&subscription, &message))?;
                }
            }
        }
        if wants(AlertChannel::Email) && outbox::enqueue(conn, email)?.is_some() {
            queued += 1;
        }
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked() {
        assert_eq!(mask_address("yamada.hanako@example.jp"), "y***@example.jp");
        assert_eq!(mask_address("nobody"), "***");
        assert_eq!(
            mask_addresses_in("550 5.1.1 <yamada@example.jp>: Recipient address rejected"),
            "550 5.1.1 <y***@example.jp>: Recipient address rejected"
        );
        assert_eq!(mask_addresses_in("connection refused"), "connection refused");
    }

    #[test]
    fn instance_ids_name_the_process_and_differ() {
        let (a, b) = (instance_id(), instance_id());
        assert_ne!(a, b);
        assert!(a.contains(&format!("/{}/", std::process::id())), "{a}");
        assert!(a.len() <= 64 + 1 + 10 + 1 + 12, "{a}");
    }
}
