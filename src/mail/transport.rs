//! How e-mail leaves: SMTP in production (STARTTLS, implicit TLS, or plain to a relay on this
//! host), `.eml` files or the log in development. Messages are built with lettre's typed
//! builders: addresses are parsed into mailboxes and every header value is encoded by lettre,
//! so no stored text can add a header.
//!
//! Every SMTP exchange is bounded: lettre's own timeout covers only the connection, so each send
//! runs under a timeout of its own, and a send that runs out is dropped together with its
//! connection. Connections are not reused across e-mails, so a server that went silent
//! mid-exchange never leaves a half-finished connection behind for the next e-mail; each attempt,
//! and each retry, starts on a fresh one.

use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox};
use lettre::{Address, AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::outbox::OutboxEmail;
use super::{mask_address, mask_addresses_in};
use crate::config::MailTransport;

/// How many e-mails a worker sends at once (each on its own SMTP connection).
pub const CONNECTIONS: u32 = 4;

/// Bounds of one SMTP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening the TCP (and TLS) connection.
    pub connect: Duration,
    /// The whole exchange: connection, greeting, every command and the message.
    pub send: Duration,
}

impl Timeouts {
    pub fn from_config(config: &crate::config::Config) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(config.smtp_connect_timeout_secs.max(1)),
            send: Duration::from_secs(config.smtp_send_timeout_secs.max(1)),
        }
    }
}

pub enum Transport {
    Smtp { smtp: AsyncSmtpTransport<Tokio1Executor>, send_timeout: Duration },
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
    pub fn from_config(mail: &MailTransport, timeouts: Timeouts) -> Result<Transport, String> {
        match mail {
            MailTransport::Smtp(url) => {
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| format!("RENKEI_SMTP_URL: cannot use this URL: {e}"))?;
                // Built without lettre's connection pool (the `pool` feature is off): a pooled
                // connection abandoned by a timeout would go back to the pool mid-exchange.
                let smtp = builder.timeout(Some(timeouts.connect)).build();
                Ok(Transport::Smtp { smtp, send_timeout: timeouts.send })
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
            Transport::Smtp { .. } => "smtp",
            Transport::Files(_) => "files",
            Transport::Log => "log",
        }
    }

    pub async fn send(&self, from: &Mailbox, email: &OutboxEmail) -> Delivery {
        // A development .eml file is read in a text editor: its Japanese body is left as UTF-8
        // (8bit) rather than base64. Over SMTP base64 stays: 8bit needs the server's 8BITMIME.
        let encoding = match self {
            Transport::Files(_) => ContentTransferEncoding::EightBit,
            Transport::Smtp { .. } | Transport::Log => ContentTransferEncoding::Base64,
        };
        let message = match build_message_encoded(from, email, encoding) {
            Ok(m) => m,
            Err(e) => return Delivery::Rejected(e),
        };
        match self {
            // Dropping the send on timeout drops its connection, which closes the socket.
            Transport::Smtp { smtp, send_timeout } => {
                match tokio::time::timeout(*send_timeout, smtp.send(message)).await {
                    Ok(Ok(_)) => Delivery::Sent,
                    Ok(Err(e)) if e.is_permanent() => Delivery::Rejected(mask_addresses_in(&e.to_string())),
                    Ok(Err(e)) => Delivery::Failed(mask_addresses_in(&error_chain(&e))),
                    Err(_) => Delivery::Failed(format!(
                    "timed out: the mail server did not complete the exchange within {} s; the connection was closed",
                    send_timeout.as_secs_f64()
                )),
                }
            }
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
    build_message_encoded(from, email, ContentTransferEncoding::Base64)
}

/// The same, with the body in this transfer encoding (8bit or base64); a body that 8bit cannot
/// carry (a line longer than 998 bytes) falls back to base64.
pub fn build_message_encoded(
    from: &Mailbox,
    email: &OutboxEmail,
    encoding: ContentTransferEncoding,
) -> Result<Message, String> {
    let address: Address =
        email.to_address.parse().map_err(|e| format!("cannot e-mail {}: {e}", mask_address(&email.to_address)))?;
    let name = email.to_name.as_deref().map(|n| super::templates::one_line(n, 100)).filter(|n| !n.is_empty());
    let readable = match encoding {
        ContentTransferEncoding::EightBit => eight_bit(&email.body_text),
        _ => None,
    };
    let body = match readable {
        Some(body) => body,
        None => Body::new_with_encoding(email.body_text.clone(), ContentTransferEncoding::Base64)
            .map_err(|_| "the body cannot be encoded".to_string())?,
    };
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

/// The body as written, UTF-8 in 8bit with CRLF line ends, if every line fits RFC 5322's 998
/// bytes. lettre's own check for 8bit stops at 76 bytes (the length it recommends, not the limit),
/// which a Japanese sentence of 26 characters already passes, so the limit is checked here.
fn eight_bit(text: &str) -> Option<Body> {
    let crlf = text.replace("\r\n", "\n").replace('\r', "\n").replace('\n', "\r\n");
    if crlf.split("\r\n").any(|line| line.len() > 998) {
        return None;
    }
    Some(Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::EightBit))
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
            kind: crate::mail::templates::MailKind::Test,
            subject: "テストメール（在宅療養連携ノート）".into(),
            body_text: "本文\n.\n".into(),
            patient_id: None,
            dedupe_key: None,
            status: crate::mail::outbox::EmailStatus::Pending,
            attempts: 0,
            next_attempt_at: t,
            locked_until: None,
            claimed_by: None,
            last_error: None,
            message_id: "<0193a3f2-7c4e-7d2a-9b1f-3c5d7e9f1a2b@example.jp>".into(),
            created_at: t,
            sent_at: None,
            sent_by: None,
            channel: crate::mail::outbox::Channel::Email,
            push_subscription_id: None,
            webhook_endpoint_id: None,
        }
    }

    fn timeouts() -> Timeouts {
        Timeouts { connect: Duration::from_secs(1), send: Duration::from_secs(1) }
    }

    /// A server that accepts the connection and never answers: the send gives up at its timeout
    /// and closes the connection.
    #[tokio::test]
    async fn a_silent_server_times_out_and_the_connection_is_closed() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 64];
            // Never writes; reading returns 0 once the client has closed its end.
            while stream.read(&mut buf).await.unwrap_or(0) > 0 {}
        });
        let url = format!("smtp://127.0.0.1:{port}");
        let t = Transport::from_config(&MailTransport::Smtp(url), timeouts()).unwrap();
        let from: Mailbox = "no-reply@example.jp".parse().unwrap();
        let started = std::time::Instant::now();
        let delivery = t.send(&from, &row(None)).await;
        assert!(matches!(&delivery, Delivery::Failed(e) if e.starts_with("timed out")), "{delivery:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        tokio::time::timeout(Duration::from_secs(2), held).await.expect("the connection was closed").unwrap();
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
            let t = Transport::from_config(&MailTransport::Smtp(url.into()), timeouts());
            assert!(matches!(t, Ok(Transport::Smtp { .. })), "{url}");
        }
        let bad =
            Transport::from_config(&MailTransport::Smtp("smtp://mail.example.jp?tls=sometimes".into()), timeouts());
        assert!(bad.err().unwrap_or_default().starts_with("RENKEI_SMTP_URL"));
    }

    /// A development .eml file shows its Japanese body as written.
    #[tokio::test]
    async fn eml_files_are_readable_in_a_text_editor() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transport::from_config(&MailTransport::Files(dir.path().to_path_buf()), timeouts()).unwrap();
        let from: Mailbox = "no-reply@example.jp".parse().unwrap();
        let mut email = row(None);
        email.body_text = "これは在宅療養連携ノートから送信したテストメールです。\n".into();
        assert_eq!(t.send(&from, &email).await, Delivery::Sent);
        let file = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        let raw = std::fs::read_to_string(file).unwrap();
        assert!(raw.contains("Content-Transfer-Encoding: 8bit"), "{raw}");
        assert!(raw.contains("これは在宅療養連携ノートから送信したテストメールです。"), "{raw}");
    }

    #[test]
    fn a_bad_stored_address_is_rejected_for_good() {
        let from: Mailbox = "no-reply@example.jp".parse().unwrap();
        let mut email = row(None);
        email.to_address = "yamada@example.jp\r\nBcc: evil@example.jp".into();
        assert!(build_message(&from, &email).is_err());
    }
}
