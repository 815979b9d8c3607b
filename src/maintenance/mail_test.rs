//! `renkei mail test --to ADDRESS`: one test e-mail through the configured transport, now, with
//! the outcome printed. It does not go through the outbox: an operator checking the SMTP
//! settings wants the server's answer at once, not an e-mail that retries for an hour in the
//! background. The e-mail is the fixed `test` template; the only thing typed by the operator is
//! the recipient, which must parse as a bare address.

use lettre::message::Mailbox;

use crate::config::{Config, MailTransport};
use crate::mail::transport::{Delivery, Timeouts, Transport};
use crate::mail::{Mailer, Notice};
use crate::vocab::Locale;

/// The recipient as typed, if it is one bare address (`name@example.jp`): no display name, no
/// list, no line breaks.
pub fn recipient(typed: &str) -> Result<String, String> {
    let address = typed.trim();
    if address.is_empty() || address.len() > 254 || address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("--to must be one e-mail address such as yamada@example.jp, not {typed:?}"));
    }
    address
        .parse::<lettre::Address>()
        .map(|a| a.to_string())
        .map_err(|e| format!("--to must be one e-mail address such as yamada@example.jp: {e}"))
}

/// Sends the test e-mail and says what happened, in one line for the operator.
pub async fn run(config: &Config, typed: &str) -> Result<String, String> {
    let to = recipient(typed)?;
    let from: Mailbox = config.mail_from.parse().map_err(|e| format!("RENKEI_MAIL_FROM: {e}"))?;
    let email = Mailer::new(config).to_address(&to, Locale::Ja, &Notice::Test).map_err(|e| e.to_string())?;
    let row = email.into_row();
    let transport = Transport::from_config(&config.mail, Timeouts::from_config(config))?;
    let via = match &config.mail {
        MailTransport::Smtp(url) => format!("SMTP ({})", crate::config::redact_url(url)),
        MailTransport::Files(dir) => format!("an .eml file in {}", dir.display()),
        MailTransport::Log => "the log (nothing is sent)".to_string(),
    };
    match transport.send(&from, &row).await {
        Delivery::Sent => Ok(format!("test e-mail to {to} handed to {via}; Message-ID {}", row.message_id)),
        Delivery::Rejected(e) => Err(format!("test e-mail to {to} refused by {via} (permanent): {e}")),
        Delivery::Failed(e) => Err(format!("test e-mail to {to} not sent through {via} (temporary): {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::recipient;

    #[test]
    fn only_a_bare_address_is_a_recipient() {
        assert_eq!(recipient(" yamada@example.jp ").unwrap(), "yamada@example.jp");
        for bad in [
            "",
            "yamada",
            "山田 <yamada@example.jp>",
            "a@example.jp, b@example.jp",
            "yamada@example.jp\r\nBcc: evil@example.jp",
            "yamada@example.jp\nSubject: hi",
        ] {
            assert!(recipient(bad).is_err(), "{bad:?}");
        }
    }
}
