//! Settings from environment variables (a `.env` file may set them), validated once at start.
//! Every error names the variable at fault, so an operator knows what to fix.

use crate::vocab::PatientLabel;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransport {
    /// `smtps://` (implicit TLS), `smtp://…?tls=required` (STARTTLS) or plain `smtp://` to a local
    /// relay; kept as the URL lettre parses.
    Smtp(String),
    /// Development default: one `.eml` file per message in this folder.
    Files(PathBuf),
    /// Development alternative: messages written to the log.
    Log,
}

#[derive(Clone)]
pub struct Config {
    pub env: Environment,
    pub database_url: String,
    pub bind: String,
    pub jwt_secret: Vec<u8>,
    pub mail: MailTransport,
    pub mail_from: String,
    pub public_url: String,
    pub data_dir: PathBuf,
    /// Lifetime of an access token in seconds (at most 15 minutes).
    pub access_token_ttl_secs: i64,
    /// Lifetime of a sign-in session (refresh token family) in seconds.
    pub session_ttl_secs: i64,
    /// Database pool size and checkout timeout.
    pub db_pool_size: u32,
    pub db_timeout_ms: u64,
    /// How long break-glass access to a patient lasts.
    pub emergency_access_minutes: i64,
    /// How long an unacknowledged emergency / urgent flag waits before each escalation step.
    pub escalation_emergency_minutes: i64,
    pub escalation_urgent_minutes: i64,
    /// How e-mails name a patient: `initials` (the default) or `none`.
    pub mail_patient_label: PatientLabel,
    /// The hour of the day (JST, 0–23) from which the daily digest of overdue and due-today
    /// discharge tasks is sent (`RENKEI_TASK_DIGEST_HOUR`, default 8).
    pub task_digest_hour: u32,
    /// Delivery attempts before an e-mail is given up as dead.
    pub mail_max_attempts: i32,
    /// The first retry waits about this long; each further one twice as long (with jitter).
    pub mail_backoff_secs: u64,
    /// How often the outbox worker looks for e-mails it was not woken for (other instances'
    /// e-mails, retries that have come due).
    pub mail_poll_secs: u64,
    /// How long a claim holds an e-mail against other instances. The worker renews it while it
    /// still holds the e-mail, so this is how long a dead instance's e-mails wait.
    pub mail_lease_secs: u64,
    /// Longest wait for the TCP (and TLS) connection to the mail server.
    pub smtp_connect_timeout_secs: u64,
    /// Longest one whole SMTP exchange may take (connect, greeting, every command, the message);
    /// past it the attempt counts as failed and its connection is closed.
    pub smtp_send_timeout_secs: u64,
    /// Failed sign-ins one client address may make across all e-mail addresses in 15 minutes
    /// before it is locked out for 15 minutes (against password spraying).
    pub login_client_failures: i32,
    /// Failed sign-ins all clients that are not an account's own may make together in 15
    /// minutes before unknown clients are locked out for 15 minutes.
    pub login_global_failures: i32,
    /// Bearer token that reads `/metrics` and the detail of `/readyz` (see `access::operations_view`).
    pub metrics_token: Option<String>,
    /// Where attachments are kept (`attachments::store`).
    pub storage: Storage,
    /// Largest attachment accepted, in bytes (`RENKEI_ATTACHMENT_MAX_BYTES`, default 20 MiB).
    pub attachment_max_bytes: u64,
    /// Most attachments one note may carry across its versions (`RENKEI_ATTACHMENT_MAX_PER_NOTE`).
    pub attachment_max_per_note: i64,
    /// Change streams (`GET /changes/stream`): a comment line after this many idle seconds,
    /// so proxies keep the connection and the client knows it is alive.
    pub stream_heartbeat_secs: u64,
    /// How often a stream looks for changes committed by other instances (its own instance's
    /// commits wake it at once).
    pub stream_poll_ms: u64,
    /// Streams one person may hold open at once, and all of this instance's streams.
    pub streams_per_user: usize,
    pub streams_max: usize,
    /// The clamd every upload is scanned by (`RENKEI_CLAMD_URL`; required in production, off by
    /// default in development).
    pub clamd: Option<Clamd>,
    /// Longest one scan may take, connection included (`RENKEI_CLAMD_TIMEOUT_SECS`).
    pub clamd_timeout_secs: u64,
    /// The key secrets are sealed with at rest (`RENKEI_SECRETS_KEY`, 32 bytes base64url;
    /// required in production, made once under the data folder in development), and the keys
    /// sealed with before it (`RENKEI_SECRETS_KEY_PREVIOUS`, comma-separated), which still open
    /// what they sealed until the next start seals it again (`sealing`).
    pub secrets_key: [u8; 32],
    pub secrets_key_previous: Vec<[u8; 32]>,
    /// The VAPID private key (a P-256 scalar, 32 bytes) that signs Web Push requests
    /// (`RENKEI_VAPID_PRIVATE_KEY`; made once under the data folder in development; `off` turns
    /// Web Push off). Without one, in production, Web Push is off.
    pub vapid_private_key: Option<[u8; 32]>,
    /// Who the push services may contact about this sender: `mailto:` or `https:` (VAPID `sub`).
    pub vapid_subject: String,
    /// Development and tests only: push subscriptions may name a `http://127.0.0.1` or
    /// `http://localhost` endpoint (`RENKEI_PUSH_ALLOW_LOOPBACK=true`).
    pub push_allow_loopback: bool,
    /// Longest one push request may take, connection included.
    pub push_timeout_secs: u64,
    /// Development and tests only: webhook endpoints may name a loopback address
    /// (`RENKEI_WEBHOOK_ALLOW_LOOPBACK=true`); otherwise private and local targets are refused.
    pub webhook_allow_loopback: bool,
    /// Longest one webhook delivery may take, connection included (`RENKEI_WEBHOOK_TIMEOUT_SECS`).
    pub webhook_timeout_secs: u64,
    /// Failed deliveries in a row after which an endpoint is disabled and its organisation's
    /// administrators are told (`RENKEI_WEBHOOK_MAX_FAILURES`).
    pub webhook_max_failures: i32,
}

/// Where clamd listens: `tcp://host:port` or `unix:///path/to/clamd.ctl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clamd {
    Tcp(String),
    Unix(PathBuf),
}

/// The object store behind attachments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// The development default: files under `RENKEI_DATA_DIR/objects`.
    Local(PathBuf),
    /// `RENKEI_STORAGE_URL=s3://bucket[/prefix]`: S3-compatible object storage; endpoint,
    /// region and credentials from the standard `AWS_*` variables, kept here (never logged).
    S3 { url: String, options: Vec<(String, String)> },
}

/// The `AWS_*` settings an S3-compatible store reads.
pub const S3_SETTINGS: &[&str] = &[
    "AWS_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ALLOW_HTTP",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
];

impl Config {
    pub fn escalation_limits(&self) -> crate::flags::EscalationLimits {
        crate::flags::EscalationLimits {
            emergency: chrono::Duration::minutes(self.escalation_emergency_minutes),
            urgent: chrono::Duration::minutes(self.escalation_urgent_minutes),
        }
    }
}

impl std::fmt::Debug for Config {
    // The JWT secret and mail credentials never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("env", &self.env)
            .field("database", &redact_url(&self.database_url))
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

fn err(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { variable, message: message.into() }
}

/// Reads the process environment.
pub fn from_env() -> Result<Config, ConfigError> {
    from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

/// Builds the configuration from any lookup function (tests pass a map).
pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let env = match get("RENKEI_ENV").as_deref() {
        None | Some("development") => Environment::Development,
        Some("production") => Environment::Production,
        Some(other) => return Err(err("RENKEI_ENV", format!("must be `development` or `production`, not `{other}`"))),
    };
    let production = env == Environment::Production;
    let data_dir = PathBuf::from(get("RENKEI_DATA_DIR").unwrap_or_else(|| "./data".into()));

    let database_url =
        get("DATABASE_URL").unwrap_or_else(|| format!("sqlite://{}", data_dir.join("renkei.db").display()));
    crate::db::Backend::from_url(&database_url).map_err(|m| err("DATABASE_URL", m))?;
    if production
        && crate::db::Backend::from_url(&database_url).ok() == Some(crate::db::Backend::Sqlite)
        && get("RENKEI_ALLOW_SQLITE_IN_PRODUCTION").as_deref() != Some("true")
    {
        return Err(err(
            "DATABASE_URL",
            "production runs on PostgreSQL; set RENKEI_ALLOW_SQLITE_IN_PRODUCTION=true to run a single small organisation on SQLite",
        ));
    }

    let bind = get("RENKEI_BIND").unwrap_or_else(|| "127.0.0.1:8080".into());
    if bind.parse::<std::net::SocketAddr>().is_err() {
        return Err(err("RENKEI_BIND", format!("`{bind}` is not an address and port such as 127.0.0.1:8080")));
    }

    let jwt_secret = match get("RENKEI_JWT_SECRET") {
        Some(s) if s.len() >= 32 => s.into_bytes(),
        Some(_) => return Err(err("RENKEI_JWT_SECRET", "must be at least 32 characters")),
        None if production => return Err(err("RENKEI_JWT_SECRET", "is required in production")),
        None => development_secret(&data_dir).map_err(|m| err("RENKEI_JWT_SECRET", m))?,
    };

    let mail = match get("RENKEI_SMTP_URL") {
        Some(url) => {
            let scheme = url.split("://").next().unwrap_or_default();
            if !matches!(scheme, "smtp" | "smtps") || !url.contains("://") {
                return Err(err("RENKEI_SMTP_URL", "must start with smtp:// or smtps://"));
            }
            let encrypted = scheme == "smtps" || url.contains("tls=required");
            let host = url.split("://").nth(1).unwrap_or_default();
            let host = host.rsplit('@').next().unwrap_or_default();
            let local = host.starts_with("localhost") || host.starts_with("127.") || host.starts_with("[::1]");
            if production && !encrypted && !local {
                return Err(err(
                    "RENKEI_SMTP_URL",
                    "production sends mail over TLS: use smtps://host:465 or smtp://host:587?tls=required (plain smtp:// only to a relay on this host)",
                ));
            }
            MailTransport::Smtp(url)
        }
        None if production => {
            return Err(err(
                "RENKEI_SMTP_URL",
                "is required in production (file and log transports are for development)",
            ))
        }
        None => match get("RENKEI_MAIL_TRANSPORT").as_deref() {
            Some("log") => MailTransport::Log,
            None | Some("files") => MailTransport::Files(data_dir.join("mail")),
            Some(other) => {
                return Err(err("RENKEI_MAIL_TRANSPORT", format!("must be `files` or `log`, not `{other}`")))
            }
        },
    };

    let mail_from = get("RENKEI_MAIL_FROM").unwrap_or_else(|| "Renkei Note <no-reply@localhost>".into());
    if mail_from.contains(['\r', '\n']) || mail_from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(err("RENKEI_MAIL_FROM", "must be an address such as 在宅連携ノート <no-reply@example.jp>"));
    }
    let public_url = get("RENKEI_PUBLIC_URL").unwrap_or_else(|| format!("http://{bind}"));
    if !(public_url.starts_with("https://") || (!production && public_url.starts_with("http://"))) {
        return Err(err("RENKEI_PUBLIC_URL", "must be an https:// URL (http:// is allowed in development)"));
    }

    let access_token_ttl_secs = parse_num(&get, "RENKEI_ACCESS_TOKEN_TTL_SECS", 900)?;
    if !(10..=900).contains(&access_token_ttl_secs) {
        return Err(err("RENKEI_ACCESS_TOKEN_TTL_SECS", "must be between 10 and 900 seconds"));
    }
    let session_ttl_secs = parse_num(&get, "RENKEI_SESSION_TTL_SECS", 12 * 3600)?;
    let db_pool_size = parse_num(&get, "RENKEI_DB_POOL_SIZE", 16)? as u32;
    let db_timeout_ms = parse_num(&get, "RENKEI_DB_TIMEOUT_MS", 2000)? as u64;
    let emergency_access_minutes = parse_num(&get, "RENKEI_EMERGENCY_ACCESS_MINUTES", 60)?;
    let escalation_emergency_minutes = parse_num(&get, "RENKEI_ESCALATION_EMERGENCY_MINUTES", 15)?;
    let escalation_urgent_minutes = parse_num(&get, "RENKEI_ESCALATION_URGENT_MINUTES", 60)?;
    let mail_patient_label = match get("RENKEI_MAIL_PATIENT_LABEL") {
        None => PatientLabel::Initials,
        Some(v) => PatientLabel::parse(&v)
            .ok_or_else(|| err("RENKEI_MAIL_PATIENT_LABEL", format!("must be one of {}", PatientLabel::list())))?,
    };
    if emergency_access_minutes > 24 * 60 {
        return Err(err("RENKEI_EMERGENCY_ACCESS_MINUTES", "must be at most 1440 (one day)"));
    }
    let task_digest_hour = parse_num(&get, "RENKEI_TASK_DIGEST_HOUR", 8)?;
    if !(0..24).contains(&task_digest_hour) {
        return Err(err("RENKEI_TASK_DIGEST_HOUR", "must be an hour from 0 to 23 (Japan time)"));
    }
    let mail_max_attempts = parse_num(&get, "RENKEI_MAIL_MAX_ATTEMPTS", 8)?;
    if mail_max_attempts > 100 {
        return Err(err("RENKEI_MAIL_MAX_ATTEMPTS", "must be at most 100"));
    }
    let mail_backoff_secs = parse_num(&get, "RENKEI_MAIL_BACKOFF_SECS", 30)? as u64;
    let mail_poll_secs = parse_num(&get, "RENKEI_MAIL_POLL_SECS", 5)? as u64;
    let stream_heartbeat_secs = parse_num(&get, "RENKEI_STREAM_HEARTBEAT_SECS", 15)? as u64;
    let stream_poll_ms = parse_num(&get, "RENKEI_STREAM_POLL_MS", 1000)?.max(50) as u64;
    let streams_per_user = parse_num(&get, "RENKEI_STREAMS_PER_USER", 4)? as usize;
    let streams_max = parse_num(&get, "RENKEI_STREAMS_MAX", 1000)? as usize;
    let mail_lease_secs = parse_num(&get, "RENKEI_MAIL_LEASE_SECS", 30)? as u64;
    if !(2..=600).contains(&mail_lease_secs) {
        return Err(err("RENKEI_MAIL_LEASE_SECS", "must be between 2 and 600 seconds"));
    }
    let smtp_connect_timeout_secs = parse_num(&get, "RENKEI_SMTP_CONNECT_TIMEOUT_SECS", 10)? as u64;
    if smtp_connect_timeout_secs > 300 {
        return Err(err("RENKEI_SMTP_CONNECT_TIMEOUT_SECS", "must be at most 300 seconds"));
    }
    let smtp_send_timeout_secs = parse_num(&get, "RENKEI_SMTP_SEND_TIMEOUT_SECS", 30)? as u64;
    if smtp_send_timeout_secs > 600 {
        return Err(err("RENKEI_SMTP_SEND_TIMEOUT_SECS", "must be at most 600 seconds"));
    }
    let login_client_failures = parse_num(&get, "RENKEI_LOGIN_CLIENT_FAILURES", 30)?.min(i32::MAX.into()) as i32;
    let login_global_failures = parse_num(&get, "RENKEI_LOGIN_GLOBAL_FAILURES", 1000)?.min(i32::MAX.into()) as i32;
    let metrics_token = get("RENKEI_METRICS_TOKEN").map(|t| t.trim().to_string());
    if metrics_token.as_ref().is_some_and(|t| t.len() < 32 || !t.chars().all(|c| c.is_ascii_graphic())) {
        return Err(err("RENKEI_METRICS_TOKEN", "must be at least 32 printable ASCII characters without spaces"));
    }
    let storage = match get("RENKEI_STORAGE_URL") {
        None => Storage::Local(data_dir.join("objects")),
        Some(url) => {
            let url = url.trim().trim_end_matches('/').to_string();
            let bucket = url.strip_prefix("s3://").map(|rest| rest.split('/').next().unwrap_or_default());
            if bucket.is_none_or(str::is_empty) {
                return Err(err("RENKEI_STORAGE_URL", "must be s3://BUCKET (or s3://BUCKET/PREFIX)"));
            }
            let options =
                S3_SETTINGS.iter().filter_map(|k| get(k).map(|v| (k.to_string(), v.trim().to_string()))).collect();
            Storage::S3 { url, options }
        }
    };
    let attachment_max_bytes = parse_num(&get, "RENKEI_ATTACHMENT_MAX_BYTES", 20 * 1024 * 1024)? as u64;
    let attachment_max_per_note = parse_num(&get, "RENKEI_ATTACHMENT_MAX_PER_NOTE", 10)?;
    let clamd = match get("RENKEI_CLAMD_URL").map(|u| u.trim().to_string()).filter(|u| !u.is_empty()) {
        None if production => {
            return Err(err("RENKEI_CLAMD_URL", "is required in production: every upload is scanned for malware"))
        }
        None => None,
        Some(url) => Some(if let Some(addr) = url.strip_prefix("tcp://") {
            if addr.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
                return Err(err("RENKEI_CLAMD_URL", "must be tcp://HOST:PORT or unix:///PATH"));
            }
            Clamd::Tcp(addr.to_string())
        } else if let Some(path) = url.strip_prefix("unix://").filter(|p| p.starts_with('/')) {
            Clamd::Unix(PathBuf::from(path))
        } else {
            return Err(err("RENKEI_CLAMD_URL", "must be tcp://HOST:PORT or unix:///PATH"));
        }),
    };
    let clamd_timeout_secs = parse_num(&get, "RENKEI_CLAMD_TIMEOUT_SECS", 60)? as u64;
    let secrets_key = match get("RENKEI_SECRETS_KEY") {
        Some(k) => parse_secrets_key(&k).map_err(|m| err("RENKEI_SECRETS_KEY", m))?,
        None if production => {
            return Err(err(
                "RENKEI_SECRETS_KEY",
                "is required in production (make one with: openssl rand 32 | basenc --base64url)",
            ))
        }
        None => development_secrets_key(&data_dir).map_err(|m| err("RENKEI_SECRETS_KEY", m))?,
    };
    let secrets_key_previous = match get("RENKEI_SECRETS_KEY_PREVIOUS") {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(parse_secrets_key)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| err("RENKEI_SECRETS_KEY_PREVIOUS", m))?,
        None => Vec::new(),
    };
    let vapid_private_key = match get("RENKEI_VAPID_PRIVATE_KEY").map(|k| k.trim().to_string()) {
        // Web Push off on purpose, also in development.
        Some(k) if k == "off" => None,
        Some(k) => Some(parse_vapid_key(&k).map_err(|m| err("RENKEI_VAPID_PRIVATE_KEY", m))?),
        None if production => None,
        None => Some(development_vapid_key(&data_dir).map_err(|m| err("RENKEI_VAPID_PRIVATE_KEY", m))?),
    };
    let vapid_subject = match get("RENKEI_VAPID_SUBJECT").map(|s| s.trim().to_string()) {
        Some(s) if (s.starts_with("mailto:") || s.starts_with("https://")) && !s.contains(char::is_whitespace) => s,
        Some(_) => return Err(err("RENKEI_VAPID_SUBJECT", "must be a mailto: or https: URL")),
        None => {
            let address = mail_from.parse::<lettre::message::Mailbox>().map(|m| m.email.to_string());
            format!("mailto:{}", address.unwrap_or_else(|_| "no-reply@localhost".into()))
        }
    };
    let push_allow_loopback = match get("RENKEI_PUSH_ALLOW_LOOPBACK").as_deref() {
        None | Some("false") => false,
        Some("true") if !production => true,
        Some("true") => return Err(err("RENKEI_PUSH_ALLOW_LOOPBACK", "is for development and tests only")),
        Some(_) => return Err(err("RENKEI_PUSH_ALLOW_LOOPBACK", "must be `true` or `false`")),
    };
    let push_timeout_secs = parse_num(&get, "RENKEI_PUSH_TIMEOUT_SECS", 15)?.min(300) as u64;
    let webhook_allow_loopback = match get("RENKEI_WEBHOOK_ALLOW_LOOPBACK").as_deref() {
        None | Some("false") => false,
        Some("true") if !production => true,
        Some("true") => return Err(err("RENKEI_WEBHOOK_ALLOW_LOOPBACK", "is for development and tests only")),
        Some(_) => return Err(err("RENKEI_WEBHOOK_ALLOW_LOOPBACK", "must be `true` or `false`")),
    };
    let webhook_timeout_secs = parse_num(&get, "RENKEI_WEBHOOK_TIMEOUT_SECS", 10)?.clamp(1, 120) as u64;
    let webhook_max_failures = parse_num(&get, "RENKEI_WEBHOOK_MAX_FAILURES", 10)?.clamp(1, 1000) as i32;

    Ok(Config {
        env,
        database_url,
        bind,
        jwt_secret,
        mail,
        mail_from,
        public_url: public_url.trim_end_matches('/').to_string(),
        data_dir,
        access_token_ttl_secs,
        session_ttl_secs,
        db_pool_size: db_pool_size.max(1),
        db_timeout_ms: db_timeout_ms.max(100),
        emergency_access_minutes,
        escalation_emergency_minutes,
        escalation_urgent_minutes,
        mail_patient_label,
        task_digest_hour: task_digest_hour as u32,
        mail_max_attempts: mail_max_attempts as i32,
        mail_backoff_secs,
        mail_poll_secs,
        mail_lease_secs,
        smtp_connect_timeout_secs,
        smtp_send_timeout_secs,
        login_client_failures,
        login_global_failures,
        metrics_token,
        storage,
        attachment_max_bytes,
        attachment_max_per_note,
        clamd,
        clamd_timeout_secs,
        stream_heartbeat_secs,
        stream_poll_ms,
        streams_per_user,
        streams_max,
        secrets_key,
        secrets_key_previous,
        vapid_private_key,
        vapid_subject,
        push_allow_loopback,
        webhook_allow_loopback,
        webhook_timeout_secs,
        webhook_max_failures,
        push_timeout_secs,
    })
}

/// A VAPID private key as `RENKEI_VAPID_PRIVATE_KEY` gives it: the 32-byte P-256 scalar in
/// base64url (the form web-push tools print), checked to be a valid key.
pub fn parse_vapid_key(text: &str) -> Result<[u8; 32], String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| "must be a base64url P-256 private key (32 bytes)".to_string())?;
    let key: [u8; 32] = bytes.try_into().map_err(|_| "must be a base64url P-256 private key (32 bytes)".to_string())?;
    p256::SecretKey::from_bytes(&key.into()).map_err(|_| "is not a valid P-256 private key".to_string())?;
    Ok(key)
}

/// A sealing key as `RENKEI_SECRETS_KEY` gives it: 32 bytes in base64url (or standard base64).
pub fn parse_secrets_key(text: &str) -> Result<[u8; 32], String> {
    use base64::Engine;
    let text = text.trim().trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .map_err(|_| "must be 32 random bytes in base64url".to_string())?;
    bytes.try_into().map_err(|_| "must be 32 random bytes in base64url".to_string())
}

/// In development a sealing key is made once and kept under the data folder (`secrets-key`), so
/// what it sealed opens after a restart.
fn development_secrets_key(data_dir: &Path) -> Result<[u8; 32], String> {
    use base64::Engine;
    let path = data_dir.join("secrets-key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return parse_secrets_key(&existing).map_err(|m| format!("{}: {m}", path.display()));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let key: [u8; 32] = rand::random();
    std::fs::write(&path, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(key)
}

/// In development a VAPID key pair is made once and kept under the data folder (`vapid-key`), so
/// the browsers' subscriptions, which are bound to its public key, survive a restart.
fn development_vapid_key(data_dir: &Path) -> Result<[u8; 32], String> {
    use base64::Engine;
    let path = data_dir.join("vapid-key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return parse_vapid_key(existing.trim()).map_err(|m| format!("{}: {m}", path.display()));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.to_bytes());
    std::fs::write(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    parse_vapid_key(&text)
}

fn parse_num(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: i64) -> Result<i64, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| err(name, format!("must be a positive whole number, not `{v}`"))),
    }
}

/// In development a random secret is made once and kept under the data folder, so sign-ins
/// survive a restart without anyone having to configure one.
fn development_secret(data_dir: &Path) -> Result<Vec<u8>, String> {
    let path = data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        if existing.trim().len() >= 32 {
            return Ok(existing.trim().as_bytes().to_vec());
        }
    }
    std::fs::create_dir_all(data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let secret = crate::auth::tokens::random_token(48);
    std::fs::write(&path, &secret).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(secret.into_bytes())
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("renkei-config-{}", uuid::Uuid::new_v4()));
        let mut map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        map.entry("RENKEI_DATA_DIR".into()).or_insert(dir.display().to_string());
        from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn development_defaults_need_nothing() {
        let c = with(&[]).unwrap();
        assert_eq!(c.env, Environment::Development);
        assert!(c.database_url.starts_with("sqlite://"));
        assert_eq!(c.bind, "127.0.0.1:8080");
        assert!(matches!(c.mail, MailTransport::Files(_)));
        // The development sealing key is made once and kept.
        let again = from_lookup(|k| (k == "RENKEI_DATA_DIR").then(|| c.data_dir.display().to_string())).unwrap();
        assert_eq!(again.secrets_key, c.secrets_key);
    }

    #[test]
    fn production_refuses_unsafe_settings() {
        let pg = ("DATABASE_URL", "postgres://u:p@localhost/renkei");
        let secret = ("RENKEI_JWT_SECRET", "0123456789abcdef0123456789abcdef");
        let smtp = ("RENKEI_SMTP_URL", "smtps://mail.example.jp:465");
        let https = ("RENKEI_PUBLIC_URL", "https://renkei.example.jp");
        let prod = ("RENKEI_ENV", "production");
        let clamd = ("RENKEI_CLAMD_URL", "tcp://clamd.internal:3310");
        assert_eq!(with(&[prod, pg, smtp, https, clamd]).unwrap_err().variable, "RENKEI_JWT_SECRET");
        assert_eq!(with(&[prod, pg, secret, https, clamd]).unwrap_err().variable, "RENKEI_SMTP_URL");
        assert_eq!(with(&[prod, secret, smtp, https, clamd]).unwrap_err().variable, "DATABASE_URL");
        assert_eq!(with(&[prod, pg, secret, smtp, clamd]).unwrap_err().variable, "RENKEI_PUBLIC_URL");
        assert_eq!(with(&[prod, pg, secret, smtp, https]).unwrap_err().variable, "RENKEI_CLAMD_URL");
        let key = ("RENKEI_SECRETS_KEY", "c2VhbGluZy1rZXktb2YtMzItYnl0ZXMtZm9yLXRlc3Q");
        assert_eq!(with(&[prod, pg, secret, smtp, https, clamd]).unwrap_err().variable, "RENKEI_SECRETS_KEY");
        assert!(with(&[prod, pg, secret, smtp, https, clamd, key]).is_ok());
        let plain = ("RENKEI_SMTP_URL", "smtp://mail.example.jp:587");
        assert_eq!(with(&[prod, pg, secret, plain, https, clamd, key]).unwrap_err().variable, "RENKEI_SMTP_URL");
        let starttls = ("RENKEI_SMTP_URL", "smtp://mail.example.jp:587?tls=required");
        assert!(with(&[prod, pg, secret, starttls, https, clamd, key]).is_ok());
        let allow = ("RENKEI_ALLOW_SQLITE_IN_PRODUCTION", "true");
        assert!(with(&[prod, secret, smtp, https, allow, clamd, key]).is_ok());
        let previous = ("RENKEI_SECRETS_KEY_PREVIOUS", "dG9vLXNob3J0");
        assert_eq!(with(&[previous]).unwrap_err().variable, "RENKEI_SECRETS_KEY_PREVIOUS");
        let two = (
            "RENKEI_SECRETS_KEY_PREVIOUS",
            "c2VhbGluZy1rZXktb2YtMzItYnl0ZXMtZm9yLXRlc3Q, Y2hhbmdlLW1lLXRvLTMyLXJhbmRvbS1ieXRlcy1wbHo",
        );
        assert_eq!(with(&[two]).unwrap().secrets_key_previous.len(), 2);
        let short = ("RENKEI_SECRETS_KEY", "dG9vLXNob3J0");
        assert_eq!(with(&[prod, pg, secret, smtp, https, clamd, short]).unwrap_err().variable, "RENKEI_SECRETS_KEY");
        // Development scans only when told where clamd is.
        assert_eq!(with(&[]).unwrap().clamd, None);
        let unix = with(&[("RENKEI_CLAMD_URL", "unix:///run/clamav/clamd.ctl")]).unwrap();
        assert_eq!(unix.clamd, Some(Clamd::Unix("/run/clamav/clamd.ctl".into())));
        assert_eq!(with(&[("RENKEI_CLAMD_URL", "clamd:3310")]).unwrap_err().variable, "RENKEI_CLAMD_URL");
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(with(&[("DATABASE_URL", "postgress://x")]).unwrap_err().variable, "DATABASE_URL");
        assert_eq!(with(&[("RENKEI_BIND", "localhost")]).unwrap_err().variable, "RENKEI_BIND");
        assert_eq!(with(&[("RENKEI_SMTP_URL", "http://x")]).unwrap_err().variable, "RENKEI_SMTP_URL");
        assert_eq!(with(&[("RENKEI_DB_POOL_SIZE", "many")]).unwrap_err().variable, "RENKEI_DB_POOL_SIZE");
    }

    #[test]
    fn mail_settings_have_defaults_and_bounds() {
        let c = with(&[]).unwrap();
        assert_eq!((c.mail_max_attempts, c.mail_backoff_secs, c.mail_poll_secs), (8, 30, 5));
        assert_eq!((c.mail_lease_secs, c.smtp_connect_timeout_secs, c.smtp_send_timeout_secs), (30, 10, 30));
        let c = with(&[
            ("RENKEI_MAIL_LEASE_SECS", "2"),
            ("RENKEI_SMTP_CONNECT_TIMEOUT_SECS", "1"),
            ("RENKEI_SMTP_SEND_TIMEOUT_SECS", "2"),
        ])
        .unwrap();
        assert_eq!((c.mail_lease_secs, c.smtp_connect_timeout_secs, c.smtp_send_timeout_secs), (2, 1, 2));
        assert_eq!(with(&[("RENKEI_MAIL_LEASE_SECS", "1")]).unwrap_err().variable, "RENKEI_MAIL_LEASE_SECS");
        assert_eq!(with(&[("RENKEI_MAIL_LEASE_SECS", "3600")]).unwrap_err().variable, "RENKEI_MAIL_LEASE_SECS");
        assert_eq!(
            with(&[("RENKEI_SMTP_SEND_TIMEOUT_SECS", "0")]).unwrap_err().variable,
            "RENKEI_SMTP_SEND_TIMEOUT_SECS"
        );
        assert_eq!(
            with(&[("RENKEI_SMTP_CONNECT_TIMEOUT_SECS", "forever")]).unwrap_err().variable,
            "RENKEI_SMTP_CONNECT_TIMEOUT_SECS"
        );
        let c = with(&[
            ("RENKEI_MAIL_MAX_ATTEMPTS", "3"),
            ("RENKEI_MAIL_BACKOFF_SECS", "1"),
            ("RENKEI_MAIL_POLL_SECS", "2"),
        ])
        .unwrap();
        assert_eq!((c.mail_max_attempts, c.mail_backoff_secs, c.mail_poll_secs), (3, 1, 2));
        assert_eq!(with(&[("RENKEI_MAIL_MAX_ATTEMPTS", "0")]).unwrap_err().variable, "RENKEI_MAIL_MAX_ATTEMPTS");
        assert_eq!(with(&[("RENKEI_MAIL_MAX_ATTEMPTS", "1000")]).unwrap_err().variable, "RENKEI_MAIL_MAX_ATTEMPTS");
        assert_eq!(with(&[("RENKEI_MAIL_POLL_SECS", "soon")]).unwrap_err().variable, "RENKEI_MAIL_POLL_SECS");
        assert!(with(&[("RENKEI_MAIL_FROM", "在宅連携ノート <no-reply@example.jp>")]).is_ok());
        assert_eq!(with(&[("RENKEI_MAIL_FROM", "no-reply at example.jp")]).unwrap_err().variable, "RENKEI_MAIL_FROM");
        assert_eq!(
            with(&[("RENKEI_MAIL_FROM", "x <a@example.jp>\r\nBcc: b@example.jp")]).unwrap_err().variable,
            "RENKEI_MAIL_FROM"
        );
    }

    #[test]
    fn metrics_token_is_long_enough() {
        assert_eq!(with(&[]).unwrap().metrics_token, None);
        let token = "m".repeat(32);
        assert_eq!(with(&[("RENKEI_METRICS_TOKEN", &token)]).unwrap().metrics_token, Some(token));
        assert_eq!(with(&[("RENKEI_METRICS_TOKEN", "short")]).unwrap_err().variable, "RENKEI_METRICS_TOKEN");
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(redact_url("postgres://renkei:hunter2@db/renkei"), "postgres://renkei:***@db/renkei");
    }
}
