//! What every request, worker and command shares: the database, the token keys, the
//! configuration, the metrics and the e-mail builder. Kept apart from the route table, so that
//! whatever needs the state never depends on the routes.

use std::sync::Arc;

use crate::attachments::store::Store;
use crate::auth::tokens::TokenKeys;
use crate::config::Config;
use crate::db::Db;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::sealing::Sealer;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub keys: Arc<TokenKeys>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// Builds e-mails for the outbox.
    pub mail: Mailer,
    /// Where attachment bytes are kept.
    pub store: Store,
    /// The change streams open on this instance (`sync::stream`).
    pub streams: Arc<crate::sync::stream::Streams>,
    /// Sends Web Push messages, signed with the VAPID key (none: push is off).
    pub push: crate::push::send::Sender,
    /// Sends partner systems' webhook events.
    pub webhooks: crate::webhooks::send::Sender,
    /// Seals the secrets kept in the database (`sealing`).
    pub sealer: Arc<Sealer>,
}

impl AppState {
    /// The state for `config`; fails when the attachment store it names cannot be used.
    pub fn new(config: Config, db: Db) -> Result<AppState, String> {
        let keys = TokenKeys::new(&config.jwt_secret, config.access_token_ttl_secs, config.session_ttl_secs);
        let mail = Mailer::new(&config);
        let store = Store::new(&config)?;
        let streams = Arc::new(crate::sync::stream::Streams::new(config.streams_per_user, config.streams_max));
        let vapid = match &config.vapid_private_key {
            Some(key) => Some(crate::push::vapid::Vapid::new(key, &config.vapid_subject)?),
            None => None,
        };
        let push = crate::push::send::Sender::new(
            vapid,
            std::time::Duration::from_secs(config.push_timeout_secs.max(1)),
            config.push_allow_loopback,
        )?;
        let sealer = Arc::new(Sealer::new(&config.secrets_key, &config.secrets_key_previous));
        let webhooks = crate::webhooks::send::Sender::new(
            std::time::Duration::from_secs(config.webhook_timeout_secs),
            config.webhook_allow_loopback,
            sealer.clone(),
        )?;
        Ok(AppState {
            db,
            keys: Arc::new(keys),
            config: Arc::new(config),
            metrics: Arc::default(),
            mail,
            store,
            streams,
            push,
            webhooks,
            sealer,
        })
    }
}
