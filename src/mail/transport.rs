//! How e-mail leaves: SMTP in production (STARTTLS, implicit TLS, or plain to a relay on this
//! host), `.eml` files or the log in development. Messages are built with lettre's typed
//! builders: addresses are parsed into mailboxes and every header value is encoded by lettre,
//! so no stored text can add a header.

use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::PoolConfig;
use lettre::{Address, AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::outbox::OutboxEmail;
use super::{mask_address, mask_addresses_in};
use crate::config::MailTransport;

/// Longest one SMTP exchange may take before it counts as failed (and is retried).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// SMTP connections kept open per instance; also how many e-mails a worker sends at once.
pub const CONNECTIONS: u32 = 4;

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
    Log,
}

/// The result of handing one e-mail to the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Refused for good (an SMTP 5xx, an address that cannot be e-mailed): retrying cannot help.
    Rejected(String),
    /// Failed for now (server down, 4xx, timeout): try again later.
    Failed(String),
}

impl Transport {
    pub fn from_config(mail: &MailTransport) -> Result<Transport, String> {
        match mail {
            MailTransport::Smtp(url) => {
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| format!("RENKEI_SMTP_URL: cannot use this URL: {e}"))?;
                let pool = PoolConfig::new().max_size(CONNECTIONS).idle_timeout(Duration::from_secs(60));
                Ok(Transport::Smtp(builder.timeout(Some(SEND_TIMEOUT)).pool_config(pool).build()))
            }
            MailTransport::Files(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create the mail folder {}: {e}", dir.display()))?;
                Ok(Transport::Files(AsyncFileTransport::new(dir)))
            }
            MailTransport::Log => Ok(Transport::Log),
        }
    }

    /// For the start-up log line (never with credentials).
    pub fn describe(&self) -> &'static str {
        match self {
            Transport::Smtp(_) => "smtp",
            Transport::Files(_) => "files",
            Transport::Log => "log",
        }
    }

    pub async fn send(&self, from: &Mailbox, email: &OutboxEmail) -> Delivery {
        let message = match build_message(from, email) {
            Ok(m) => m,
            Err(e) => return Delivery::Rejected(e),
        };
        match self {
            Transport::Smtp(smtp) => match smtp.send(message).await {
                Ok(_) => Delivery::Sent,
                Err(e) if e.is_permanent() => Delivery::Rejected(mask_addresses_in(&e.to_string())),
                Err(e) => Delivery::Failed(mask_addresses_in(&error_chain(&e))),
            },
            Transport::Files(files) => match files.send(message).await {
                Ok(_) => Delivery::Sent,
                Err(e) => Delivery::Failed(error_chain(&e)),
            },
            Transport::Log => {
                tracing::info!(
                    to = %mask_address(&email.to_address),
                    message_id = %email.message_id,
                    subject = %email.subject,
                    body = %email.body_text,
                    "e-mail (log transport, not sent)"
                );
                Delivery::Sent
            }
        }
    }
}

/// An error with its causes ("Connection error: … : Connection refused"), which lettre's
/// top-level message alone does not say.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The message for an outbox row. The recipient's address is parsed, their name becomes an
/// encoded display name, and the subject and body come from the templates.
pub fn build_message(from: &Mailbox, email: &OutboxEmail) -> Result<Message, String> {
    let address: Address =
        email.to_address.parse().map_err(|e| format!("cannot e-mail {}: {e}", mask_address(&email.to_address)))?;
    let name = email.to_name.as_deref().map(|n| super::templates::one_line(n, 100)).filter(|n| !n.is_empty());
    let body = Body::new_with_encoding(email.body_text.clone(), ContentTransferEncoding::Base64)
        .map_err(|_| "the body cannot be encoded".to_string())?;
    Message::builder()
        .from(from.clone())
        .to(Mailbox::new(name, address))
        .subject(super::templates::one_line(&email.subject, 200))
        .message_id(Some(email.message_id.clone()))
        // RFC 3834: tells auto-responders (out-of-office replies) not to answer.
        .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("Auto-Submitted"), "auto-generated".to_string()))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("cannot build the message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: Option<&str>) -> OutboxEmail {
        let t = crate::db::now();
        OutboxEmail {
            id: "0193a3f2-7c4e-7d2a-9b1f-3c5d7e9f1a2b".into(),
            recipient_user_id: None,
            to_address: "yamada@example.jp".into(),
            to_name: name.map(Into::into),
            locale: "ja".into(),
            kind: "test".into(),
            subject: "テストメール（在宅療養連携ノート）".into(),
            body_text: "本文\n.\n".into(),
            patient_id: None,
            dedupe_key: None,
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: t,
            locked_until: None,
            claimed_by: None,
            last_error: None,
            message_id: "<0193a3f2-7c4e-7d2a-9b1f-3c5d7e9f1a2b@example.jp>".into(),
            created_at: t,
            sent_at: None,
        }
    }

    fn headers(message: &Message) -> String {
        let raw = String::from_utf8(message.formatted()).unwrap();
        raw.split("\r\n\r\n").next().unwrap().to_string()
    }

    #[test]
    fn a_display_name_cannot_add_headers() {
        let from: Mailbox = "在宅療養連携ノート <no-reply@example.jp>".parse().unwrap();
        let m = build_message(&from, &row(Some("山田\r\nBcc: evil@example.jp"))).unwrap();
        let head = headers(&m);
        assert!(!head.to_ascii_lowercase().contains("\r\nbcc:"), "{head}");
        assert_eq!(m.envelope().to().len(), 1);
        assert_eq!(m.envelope().to()[0].to_string(), "yamada@example.jp");
        assert!(head.contains("Message-ID: <0193a3f2-7c4e-7d2a-9b1f-3c5d7e9f1a2b@example.jp>"), "{head}");
        assert!(head.contains("Auto-Submitted: auto-generated"));
    }

    #[tokio::test]
    async fn every_smtp_url_form_builds_a_transport() {
        for url in [
            "smtps://user:p%40ss@mail.example.jp:465",
            "smtp://user:pass@mail.example.jp:587?tls=required",
            "smtp://localhost:1025",
        ] {
            let t = Transport::from_config(&MailTransport::Smtp(url.into()));
            assert!(matches!(t, Ok(Transport::Smtp(_))), "{url}");
        }
        let bad = Transport::from_config(&MailTransport::Smtp("smtp://mail.example.jp?tls=sometimes".into()));
        assert!(bad.err().unwrap_or_default().starts_with("RENKEI_SMTP_URL"));
    }

    #[test]
    fn a_bad_stored_address_is_rejected_for_good() {
        let from: Mailbox = "no-reply@example.jp".parse().unwrap();
        let mut email = row(None);
        email.to_address = "yamada@example.jp\r\nBcc: evil@example.jp".into();
        assert!(build_message(&from, &email).is_err());
    }
}
