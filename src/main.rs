//! The `renkei` command: `serve` (the default), `migrate`, `admin create`, `audit verify`,
//! `mail test`, `backup`.

use std::io::BufRead;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use renkei::app;
use renkei::auth::password;
use renkei::config::{self, Config};
use renkei::db::{self, Db};
use renkei::mail;
use renkei::maintenance;
use renkei::orgs::{self, NewOrganization};
use renkei::state::AppState;
use renkei::users::{self, NewUser};
use renkei::vocab::{AccountRole, Locale, OrgKind, Profession};

#[derive(Parser)]
#[command(name = "renkei", version, about = "Renkei Note (在宅療養連携ノート) server")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (applies pending migrations first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Administration tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// E-mail settings.
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Attachments (photos and documents).
    Attachments {
        #[command(subcommand)]
        command: AttachmentsCommand,
    },
    /// Copy the SQLite database to FILE while the service runs (SQLite's online backup).
    Backup {
        /// The new file to write (it must not exist).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum AttachmentsCommand {
    /// Remove stored objects that no attachment names (left by a server stopped between
    /// storing a file and recording it), once they are an hour old.
    Sweep,
}

#[derive(Subcommand)]
enum MailCommand {
    /// Send one test e-mail with the configured transport and print the outcome.
    Test {
        /// The recipient's address.
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute every hash chain; name the first broken row and exit non-zero if one is found.
    Verify,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a system administrator (the first one, or another).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Read the password from standard input (one line), so it never appears in a process list.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// The operator organisation the administrator belongs to; created when missing.
        #[arg(long, default_value = "在宅療養連携ノート 運用事務局")]
        organization: String,
    },
}

/// glibc gives each thread that allocates its own arena (up to eight per core) and, after a large
/// block is freed, raises the size from which blocks are mapped on their own. Requests run on many
/// blocking-pool threads and a password check allocates 19 MiB, so left alone the process keeps
/// hundreds of MiB it no longer uses. Two arenas and a fixed 1 MiB mapping threshold keep the
/// resident size close to what is in use, at no measurable cost in throughput.
fn limit_allocator_retention() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; it is called before any other thread
    // exists, with parameters glibc documents.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> ExitCode {
    limit_allocator_retention();
    let _ = dotenvy::dotenv();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,actix_server=warn")),
        )
        .init();
    let cli = Cli::parse();
    let config = match config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("renkei: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::Migrate => migrate(&config).map(|_| ()),
        Command::Admin { command: AdminCommand::Create { email, name, password_stdin: _, organization } } => {
            create_admin(&config, &email, &name, &organization)
        }
        Command::Audit { command: AuditCommand::Verify } => verify_audit(&config),
        Command::Mail { command: MailCommand::Test { to } } => mail_test(&config, &to),
        Command::Backup { file } => backup(&config, &file),
        Command::Attachments { command: AttachmentsCommand::Sweep } => sweep_attachments(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("renkei: {e}");
            ExitCode::FAILURE
        }
    }
}

fn open_db(config: &Config) -> Result<Db, String> {
    if config.database_url.starts_with("sqlite://") && config.database_url.contains(&*config.data_dir.to_string_lossy())
    {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;
    }
    Db::new(&config.database_url, config.db_pool_size, Duration::from_millis(config.db_timeout_ms))
}

fn migrate(config: &Config) -> Result<Db, String> {
    let db = open_db(config)?;
    let mut conn = db
        .get()
        .map_err(|_| format!("cannot connect to the database at {}", config::redact_url(&config.database_url)))?;
    let applied = db::migrate(&mut conn)?;
    for m in &applied {
        tracing::info!(migration = %m, "applied");
    }
    // Patients registered before the caseload entries existed get theirs now (once).
    let filled = renkei::caseload::entries::rebuild_missing(&mut conn).map_err(|e| e.to_string())?;
    if filled > 0 {
        tracing::info!(patients = filled, "caseload entries written");
    }
    // Secrets stored in the clear by an earlier release, or under a previous key, are sealed
    // under the current one.
    let sealer = renkei::sealing::Sealer::new(&config.secrets_key, &config.secrets_key_previous);
    let sealed = renkei::webhooks::seal_stored_secrets(&mut conn, &sealer).map_err(|e| e.to_string())?;
    if sealed > 0 {
        tracing::info!(count = sealed, "webhook secrets sealed");
    }
    tracing::info!(count = applied.len(), "database schema is current");
    drop(conn);
    Ok(db)
}

fn serve(config: Config) -> Result<(), String> {
    let db = migrate(&config)?;
    // A new installation: say what to do next, or nobody can sign in.
    let mut conn = db.get().map_err(|e| e.to_string())?;
    if !maintenance::system_admin_exists(&mut conn).map_err(|e| e.to_string())? {
        tracing::warn!(
            "no system administrator exists yet. Create the first one (the password is read from standard input): {}",
            maintenance::CREATE_ADMIN_COMMAND
        );
    }
    drop(conn);
    let listener = TcpListener::bind(&config.bind).map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    tracing::info!(bind = %config.bind, config = ?config, "Renkei Note is listening");
    let state = AppState::new(config, db)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        // The outbox worker runs beside the server and stops with it; an e-mail it was sending
        // when stopped stays claimed until its lease ends, then any instance sends it again.
        let worker = mail::worker::spawn(&state)?;
        // Unacknowledged flags escalate from every instance; each step is claimed in the database.
        let escalations = renkei::flags::alerts::spawn_escalation_worker(state.clone());
        // The daily task digest, from every instance; each JST day is claimed in the database.
        let digest = renkei::discharge::digest::spawn_worker(state.clone());
        // actix stops accepting on SIGTERM/SIGINT and lets in-flight requests finish.
        let server = app::serve(listener, state).map_err(|e| e.to_string())?;
        let result = server.await.map_err(|e| e.to_string());
        worker.abort();
        escalations.abort();
        digest.abort();
        result
    })
}

fn create_admin(config: &Config, email: &str, name: &str, organization: &str) -> Result<(), String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("cannot read the password: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    password::check_policy("password", &password, email, name).map_err(|e| {
        let reasons: Vec<String> = e.field_errors().iter().map(|f| f.message.en.clone()).collect();
        format!("password refused: {}", reasons.join("; "))
    })?;
    let hash = password::hash(&password).map_err(|e| e.to_string())?;
    let db = migrate(config)?;
    let mut conn = db.get().map_err(|e| e.to_string())?;
    use diesel::Connection;
    let user = conn
        .transaction(|conn| {
            if users::email_taken(conn, email)? {
                return Err(renkei::error::AppError::conflict(
                    "",
                    "an active account with this e-mail address already exists",
                ));
            }
            let org = match orgs::search(
                conn,
                &orgs::Filter {
                    kind: Some(OrgKind::CityWardOffice),
                    q: Some(organization.to_lowercase()),
                    ..Default::default()
                },
                None,
                1,
            )?
            .into_iter()
            .find(|o| o.name == organization)
            {
                Some(org) => org,
                None => orgs::insert(
                    conn,
                    NewOrganization {
                        kind: OrgKind::CityWardOffice,
                        name: organization.to_string(),
                        name_kana: None,
                        ward_code: None,
                        address: None,
                        phone: None,
                        services: vec![],
                    },
                )?,
            };
            users::insert(
                conn,
                NewUser {
                    organization_id: Some(&org.id),
                    email,
                    name,
                    name_kana: None,
                    profession: Profession::Other,
                    role: AccountRole::SystemAdmin,
                    locale: Locale::Ja,
                    password_hash: hash,
                },
            )
        })
        .map_err(|e| e.to_string())?;
    println!(
        "created system administrator {} ({}); sign in and enrol two-factor sign-in (POST /api/v1/me/totp)",
        user.email, user.id
    );
    Ok(())
}

fn verify_audit(config: &Config) -> Result<(), String> {
    let db = open_db(config)?;
    let mut conn = db.get().map_err(|e| e.to_string())?;
    let report = renkei::audit::verify(&mut conn).map_err(|e| e.to_string())?;
    match report.broken {
        None => {
            println!("audit trail intact: {} events in {} chains", report.events, report.chains);
            Ok(())
        }
        Some(broken) => Err(format!("audit trail broken: {broken}")),
    }
}

fn sweep_attachments(config: Config) -> Result<(), String> {
    let db = open_db(&config)?;
    let store = renkei::attachments::store::Store::new(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let removed = runtime.block_on(renkei::attachments::sweep(&db, &store)).map_err(|e| e.to_string())?;
    println!("removed {removed} orphaned objects");
    Ok(())
}

fn mail_test(config: &Config, to: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let outcome = runtime.block_on(maintenance::mail_test::run(config, to))?;
    println!("{outcome}");
    Ok(())
}

fn backup(config: &Config, file: &std::path::Path) -> Result<(), String> {
    let pages = maintenance::backup::run(&config.database_url, file)?;
    println!("backed up {} ({pages} pages) to {}", config::redact_url(&config.database_url), file.display());
    Ok(())
}
