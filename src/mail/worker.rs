//! The outbox worker: one per server instance, a task beside the HTTP server.
//!
//! It sleeps until woken (an e-mail was committed on this instance) or until the poll interval
//! passes (e-mails from other instances, retries that have come due), claims a batch of due
//! e-mails under a lease, sends them a few at a time, and records each outcome: sent; failed for
//! now, to be retried after an exponential backoff with jitter; or dead, after a permanent
//! rejection or the last allowed attempt. One e-mail's failure never holds up the others.
//!
//! The lease is short (`RENKEI_MAIL_LEASE_SECS`) and a heartbeat renews it every third of it for
//! the e-mails the worker still holds, so a slow send is never taken over by another instance,
//! while the e-mails of an instance that died are picked up as soon as its last renewal runs out.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDateTime;
use lettre::message::Mailbox;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use super::mask_address;
use super::outbox::{self, Channel, OutboxEmail, Outcome};
use super::transport::{self, Delivery, Transport};
use crate::config::Config;
use crate::db::{self, Db};
use crate::error::AppResult;
use crate::push::send::PushDelivery;
use crate::state::AppState;

/// Longest wait between two attempts, however many have failed.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct Settings {
    pub max_attempts: i32,
    pub backoff: Duration,
    pub poll: Duration,
    /// How long a claim (or its renewal) holds an e-mail against other workers.
    pub lease: Duration,
    pub batch: i64,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            max_attempts: config.mail_max_attempts.max(1),
            backoff: Duration::from_secs(config.mail_backoff_secs.max(1)),
            poll: Duration::from_secs(config.mail_poll_secs.max(1)),
            lease: Duration::from_secs(config.mail_lease_secs.max(2)),
            batch: 20,
        }
    }

    /// How often held e-mails are renewed: three chances before the lease ends.
    pub fn heartbeat(&self) -> Duration {
        self.lease / 3
    }

    /// The end of a lease taken or renewed at `now`.
    pub fn lease_end(&self, now: NaiveDateTime) -> NaiveDateTime {
        db::truncate(now + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(30)))
    }
}

/// The ids of the e-mails a worker has claimed and not yet recorded an outcome for.
type Held = Arc<Mutex<HashSet<String>>>;

fn held_ids(held: &Held) -> Vec<String> {
    held.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
}

/// The wait before the next attempt after `attempts` failed ones: about `base · 2^(attempts-1)`,
/// capped at [`MAX_BACKOFF`]. `jitter` (0 ≤ jitter < 1) picks a point between half and all of it,
/// so that many e-mails failed by one outage do not all come back at the same instant.
pub fn backoff(attempts: i32, base: Duration, jitter: f64) -> Duration {
    let exponent = attempts.clamp(1, 31) as u32 - 1;
    let full = base.saturating_mul(2u32.saturating_pow(exponent)).min(MAX_BACKOFF.max(base));
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// What to store after an attempt, given how many attempts came before it.
pub fn outcome(
    delivery: &Delivery,
    attempts_before: i32,
    settings: &Settings,
    now: NaiveDateTime,
    jitter: f64,
) -> Outcome {
    let attempts = attempts_before + 1;
    match delivery {
        Delivery::Sent => Outcome::Sent { at: now },
        Delivery::Rejected(error) => Outcome::Dead { attempts, error: format!("rejected: {error}") },
        Delivery::Failed(error) if attempts >= settings.max_attempts => {
            Outcome::Dead { attempts, error: format!("gave up after {attempts} attempts: {error}") }
        }
        Delivery::Failed(error) => {
            let wait = backoff(attempts, settings.backoff, jitter);
            let at = db::truncate(now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1)));
            Outcome::Retry { attempts, at, error: error.clone() }
        }
    }
}

#[derive(Clone)]
pub struct Worker {
    db: Db,
    transport: Arc<Transport>,
    from: Mailbox,
    settings: Settings,
    wake: Arc<Notify>,
    /// Names this worker's leases and the e-mails it sent: the instance id.
    name: Arc<str>,
    /// Delivers the outbox's push messages.
    push: crate::push::send::Sender,
    /// Delivers the outbox's webhook events.
    webhooks: crate::webhooks::send::Sender,
    /// Builds the e-mail that tells administrators an endpoint was disabled.
    mailer: super::Mailer,
    webhook_max_failures: i32,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Worker {
    pub fn new(state: &AppState) -> Result<Worker, String> {
        let config = &state.config;
        let transport = Transport::from_config(&config.mail, transport::Timeouts::from_config(config))?;
        let from = config.mail_from.parse::<Mailbox>().map_err(|e| format!("RENKEI_MAIL_FROM: {e}"))?;
        Ok(Worker {
            db: state.db.clone(),
            transport: Arc::new(transport),
            from,
            settings: Settings::from_config(config),
            wake: state.db.outbox_signal(),
            name: state.mail.instance_id().into(),
            push: state.push.clone(),
            webhooks: state.webhooks.clone(),
            mailer: state.mail.clone(),
            webhook_max_failures: config.webhook_max_failures,
            metrics: state.metrics.clone(),
        })
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        tracing::info!(worker = %self.name, transport = self.transport.describe(), "outbox worker started");
        loop {
            let claimed = match self.run_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox: cannot claim e-mails; will try again");
                    0
                }
            };
            // A full batch means more may be waiting: go on at once.
            if claimed as i64 >= self.settings.batch {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }

    /// Claims the e-mails that are due and delivers them; returns how many it claimed.
    pub async fn run_once(&self) -> AppResult<usize> {
        let now = db::now();
        let until = self.settings.lease_end(now);
        let (name, batch) = (self.name.to_string(), self.settings.batch);
        let emails = self.db.run(move |conn| outbox::claim(conn, &name, now, until, batch)).await?;
        let claimed = emails.len();
        if claimed == 0 {
            return Ok(0);
        }
        let held: Held = Arc::new(Mutex::new(emails.iter().map(|e| e.id.clone()).collect()));
        let sending = async {
            let mut sending = JoinSet::new();
            for email in emails {
                while sending.len() >= transport::CONNECTIONS as usize {
                    sending.join_next().await;
                }
                let (worker, held) = (self.clone(), held.clone());
                sending.spawn(async move {
                    let id = email.id.clone();
                    worker.deliver(email).await;
                    held.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                });
            }
            while sending.join_next().await.is_some() {}
        };
        // The heartbeat ends with the batch.
        tokio::select! {
            _ = sending => {}
            _ = self.renew_while_held(&held) => {}
        }
        Ok(claimed)
    }

    /// Renews the lease of the held e-mails every heartbeat, those waiting for a connection as
    /// well as those being sent; never returns.
    async fn renew_while_held(&self, held: &Held) {
        loop {
            tokio::time::sleep(self.settings.heartbeat()).await;
            let ids = held_ids(held);
            if ids.is_empty() {
                continue;
            }
            let (name, until, count) = (self.name.to_string(), self.settings.lease_end(db::now()), ids.len());
            match self.db.run(move |conn| outbox::renew(conn, &name, &ids, until)).await {
                Ok(n) if n < count => {
                    tracing::warn!(held = count, renewed = n, "outbox: some leases ran out and were taken over")
                }
                Ok(_) => {}
                // The next heartbeat tries again; the lease lasts three of them.
                Err(e) => tracing::warn!(error = %e, "outbox: cannot renew leases"),
            }
        }
    }

    /// Delivers a push message to its subscription. A subscription the push service no longer
    /// knows (404, 410) is deleted: the message is given up, and no later one is tried.
    async fn push(&self, message: &OutboxEmail) -> (Delivery, bool) {
        let Some(id) = message.push_subscription_id.clone() else {
            return (Delivery::Rejected("a push message without a subscription".into()), false);
        };
        let subscription = match self.db.run(move |conn| crate::push::find(conn, &id)).await {
            Ok(Some(s)) => s,
            Ok(None) => return (Delivery::Rejected("the push subscription was removed".into()), false),
            Err(e) => return (Delivery::Failed(format!("cannot read the push subscription: {e}")), false),
        };
        let urgent = serde_json::from_str::<serde_json::Value>(&message.body_text)
            .is_ok_and(|m| m["emergency"] == serde_json::Value::Bool(true));
        match self.push.send(&subscription, message.body_text.as_bytes(), urgent).await {
            PushDelivery::Sent => (Delivery::Sent, false),
            PushDelivery::Gone(error) => {
                let id = subscription.id.clone();
                if let Err(e) = self.db.run(move |conn| crate::push::remove(conn, &id)).await {
                    tracing::warn!(error = %e, "push: cannot delete a subscription that is gone");
                }
                (Delivery::Rejected(error), true)
            }
            PushDelivery::Rejected(error) => (Delivery::Rejected(error), false),
            PushDelivery::Failed(error) => (Delivery::Failed(error), false),
        }
    }

    /// Delivers a webhook event to its endpoint; with it, the endpoint whose count of failures
    /// the outcome moves (none when the endpoint was disabled or removed: the event is dropped).
    async fn webhook(&self, event: &OutboxEmail) -> (Delivery, Option<String>) {
        use crate::webhooks::EndpointStatus;
        let Some(id) = event.webhook_endpoint_id.clone() else {
            return (Delivery::Rejected("a webhook event without an endpoint".into()), None);
        };
        let endpoint = match self.db.run(move |conn| crate::webhooks::find(conn, &id)).await {
            Ok(Some(e)) if e.status == EndpointStatus::Active => e,
            Ok(_) => return (Delivery::Rejected("the webhook endpoint is disabled".into()), None),
            Err(e) => return (Delivery::Failed(format!("cannot read the webhook endpoint: {e}")), None),
        };
        let delivery = self.webhooks.send(&endpoint, &event.message_id, &event.subject, &event.body_text).await;
        (delivery, Some(endpoint.id))
    }

    async fn deliver(&self, email: OutboxEmail) {
        let mut endpoint = None;
        let (delivery, gone) = match email.channel {
            Channel::Email => (self.transport.send(&self.from, &email).await, false),
            Channel::Push => self.push(&email).await,
            Channel::Webhook => {
                let (delivery, attempted) = self.webhook(&email).await;
                endpoint = attempted;
                (delivery, false)
            }
        };
        let now = db::now();
        let outcome = outcome(&delivery, email.attempts, &self.settings, now, rand::random::<f64>());
        let counted = match (&outcome, gone) {
            (_, true) => "gone",
            (Outcome::Sent { .. }, _) => "sent",
            (Outcome::Retry { .. }, _) => "retry",
            (Outcome::Dead { .. }, _) => "dead",
        };
        self.metrics.delivery(email.channel.as_str(), counted);
        let to = mask_address(&email.to_address);
        match &outcome {
            Outcome::Sent { .. } => tracing::info!(
                id = %email.id,
                kind = %email.kind,
                to = %to,
                attempts = email.attempts + 1,
                queued_ms = (now - email.created_at).num_milliseconds(),
                "e-mail sent"
            ),
            Outcome::Retry { attempts, at, error } => tracing::warn!(
                id = %email.id,
                kind = %email.kind,
                to = %to,
                attempts,
                next_attempt_at = %at,
                error = %error,
                "e-mail not sent; will retry"
            ),
            Outcome::Dead { attempts, error } => tracing::error!(
                id = %email.id,
                kind = %email.kind,
                to = %to,
                attempts,
                error = %error,
                "e-mail given up (dead); an operator can retry it"
            ),
        }
        let (id, name) = (email.id.clone(), self.name.to_string());
        let (mailer, max_failures) = (self.mailer.clone(), self.webhook_max_failures);
        let stored = self.db.run(move |conn| {
            let held = outbox::record(conn, &id, &name, &outcome)?;
            // The endpoint's failures in a row move with the outcome, in its transaction.
            if let (true, Some(endpoint)) = (held, endpoint) {
                match outcome {
                    Outcome::Sent { .. } => crate::webhooks::health::delivered(conn, &endpoint)?,
                    Outcome::Retry { .. } | Outcome::Dead { .. } => {
                        if crate::webhooks::health::failed(conn, &endpoint, max_failures, &mailer)? {
                            tracing::warn!(endpoint = %endpoint, "webhook endpoint disabled after failures in a row");
                        }
                    }
                }
            }
            Ok(held)
        });
        match stored.await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(id = %email.id, "outbox: the lease ran out before the outcome was stored"),
            // The lease will end and the e-mail be tried again, with the same Message-ID.
            Err(e) => tracing::warn!(id = %email.id, error = %e, "outbox: cannot store the outcome"),
        }
    }
}

/// Starts this instance's worker on the current runtime.
pub fn spawn(state: &AppState) -> Result<JoinHandle<()>, String> {
    let worker = Worker::new(state)?;
    Ok(tokio::spawn(worker.run()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            max_attempts: 3,
            backoff: Duration::from_secs(30),
            poll: Duration::from_secs(5),
            lease: Duration::from_secs(30),
            batch: 20,
        }
    }

    #[test]
    fn the_lease_is_renewed_three_times_per_lease() {
        let s = settings();
        assert_eq!(s.heartbeat(), Duration::from_secs(10));
        assert_eq!(s.lease_end(at(0)), at(30));
    }

    fn at(secs: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap().naive_utc()
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(1, base, 0.0), Duration::from_secs(15));
        assert_eq!(backoff(1, base, 1.0), Duration::from_secs(30));
        assert_eq!(backoff(2, base, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(4, base, 1.0), Duration::from_secs(240));
        assert_eq!(backoff(30, base, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(i32::MAX, base, 0.0), MAX_BACKOFF / 2);
        let some = backoff(3, base, 0.37);
        assert!(some >= Duration::from_secs(60) && some <= Duration::from_secs(120));
    }

    #[test]
    fn a_failure_is_retried_later_until_the_last_attempt() {
        let s = settings();
        let failed = Delivery::Failed("connection refused".into());
        match outcome(&failed, 0, &s, at(0), 1.0) {
            Outcome::Retry { attempts: 1, at: next, .. } => assert_eq!(next, at(30)),
            other => panic!("{other:?}"),
        }
        match outcome(&failed, 1, &s, at(0), 1.0) {
            Outcome::Retry { attempts: 2, at: next, .. } => assert_eq!(next, at(60)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(outcome(&failed, 2, &s, at(0), 1.0), Outcome::Dead { attempts: 3, .. }));
    }

    #[test]
    fn a_permanent_rejection_is_dead_at_once() {
        let rejected = Delivery::Rejected("550 mailbox unavailable".into());
        match outcome(&rejected, 0, &settings(), at(0), 0.5) {
            Outcome::Dead { attempts: 1, error } => assert!(error.contains("550")),
            other => panic!("{other:?}"),
        }
        assert_eq!(outcome(&Delivery::Sent, 4, &settings(), at(9), 0.5), Outcome::Sent { at: at(9) });
    }
}
