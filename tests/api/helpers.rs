//! The test harness: the real server on a free port against a fresh real database per test —
//! a SQLite file in a temporary folder, or a new database in a throwaway PostgreSQL cluster the
//! suite starts itself from the machine's `initdb`/`pg_ctl`. Every response is checked against
//! `api-spec/openapi.yaml`.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use renkei::app;
use renkei::config::{self, Config};
use renkei::db::{self, Db};
use renkei::state::AppState;
use serde_json::{json, Value};

pub const PASSWORD: &str = "tall-cedar-river-morning";
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a scenario `async fn name(app: TestApp)` once per backend: `name::sqlite`, `name::postgres`.
/// With `by_backend:` the scenario is `async fn name(backend: Backend)` and starts its own
/// server(s), e.g. with settings of its own or two instances on one database.
#[macro_export]
macro_rules! both_backends {
    (by_backend: $($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::postgres().is_some() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        }
    )+};
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::helpers::TestApp::spawn_postgres().await {
                    super::$name(app).await
                }
            }
        }
    )+};
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: one throwaway cluster per test run; a database per test, copied from a migrated
// template.

pub struct PgCluster {
    /// URL of the cluster without a database name, e.g. `postgres://postgres@127.0.0.1:5433`.
    pub base_url: String,
    create_lock: Mutex<()>,
}

impl PgCluster {
    pub fn url(&self, database: &str) -> String {
        format!("{}/{database}", self.base_url)
    }

    /// A new database with the schema applied.
    pub fn fresh_database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        self.create_database(&name, Some("renkei_template"));
        self.url(&name)
    }

    /// A new, empty database (for migration tests).
    pub fn empty_database(&self) -> String {
        let name = format!("e_{}", uuid::Uuid::new_v4().simple());
        self.create_database(&name, None);
        self.url(&name)
    }

    fn create_database(&self, name: &str, template: Option<&str>) {
        // CREATE DATABASE … TEMPLATE refuses to run while another copy of the template is made.
        let _guard = self.create_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut admin = diesel::PgConnection::establish(&self.url("postgres")).expect("connect to postgres");
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        admin.batch_execute(&sql).expect("create test database");
    }
}

pub fn say(message: &str) {
    // Written to the process's stderr directly, past the test runner's output capture.
    let _ = writeln!(std::io::stderr(), "{message}");
}

pub fn postgres() -> Option<&'static PgCluster> {
    static CLUSTER: OnceLock<Option<PgCluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let cluster = match std::env::var("RENKEI_TEST_POSTGRES_URL") {
                Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_string()),
                _ => start_cluster(),
            };
            let cluster = cluster.map(|base_url| PgCluster { base_url, create_lock: Mutex::new(()) });
            if let Some(c) = &cluster {
                let template = c.url("renkei_template");
                let mut admin = diesel::PgConnection::establish(&c.url("postgres")).expect("connect to postgres");
                admin.batch_execute("DROP DATABASE IF EXISTS renkei_template").expect("drop template database");
                admin.batch_execute("CREATE DATABASE renkei_template").expect("create template database");
                let mut conn =
                    db::DbManager::new(&template).expect("template url").connect_now().expect("connect to template");
                db::migrate(&mut conn).expect("migrate template");
            }
            cluster
        })
        .as_ref()
}

fn find_pg_bin(name: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Runs a PostgreSQL program, as the `postgres` user when we are root (initdb refuses root).
fn pg_command(program: &Path, args: &[&str], as_postgres: bool) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.arg("-u").arg("postgres").arg("--").arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(55432)
}

fn start_cluster() -> Option<String> {
    let (Some(initdb), Some(pg_ctl)) = (find_pg_bin("initdb"), find_pg_bin("pg_ctl")) else {
        if std::env::var("RENKEI_REQUIRE_POSTGRES").as_deref() == Ok("1") {
            panic!("RENKEI_REQUIRE_POSTGRES=1 but no PostgreSQL server binaries (initdb, pg_ctl) were found");
        }
        say(
            "\n*** PostgreSQL server binaries (initdb, pg_ctl) not found: ran the SQLite half of the suite only. ***\n",
        );
        return None;
    };
    let as_postgres = is_root();
    let dir = std::env::temp_dir().join(format!("renkei-pg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create cluster folder");
    if as_postgres {
        let status = Command::new("chown").arg("postgres:postgres").arg(&dir).status().expect("chown");
        assert!(status.success(), "chown of the cluster folder failed");
    }
    let data = dir.join("data");
    let data_s = data.to_string_lossy().to_string();
    let out = pg_command(
        &initdb,
        &["-D", &data_s, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
        as_postgres,
    )
    .output()
    .expect("run initdb");
    assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
    let port = free_port();
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=500",
        dir.display()
    );
    let log = dir.join("postgres.log").to_string_lossy().to_string();
    let out = pg_command(&pg_ctl, &["-D", &data_s, "-o", &options, "-l", &log, "-w", "-t", "60", "start"], as_postgres)
        .stdin(Stdio::null())
        .output()
        .expect("run pg_ctl");
    assert!(out.status.success(), "pg_ctl start failed: {}", String::from_utf8_lossy(&out.stderr));
    // A watchdog stops the cluster and removes its folder when this test process ends.
    let watchdog = format!(
        "while [ -e /proc/{pid} ]; do sleep 1; done; {pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        pg_ctl = pg_ctl.display(),
        data = data_s,
        dir = dir.display()
    );
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", &watchdog]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &watchdog]);
        c
    };
    // Deliberately not waited for: it outlives this process to clean up after it.
    #[allow(clippy::zombie_processes)]
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start watchdog");
    say(&format!("PostgreSQL test cluster started on 127.0.0.1:{port} ({})", pg_ctl.display()));
    Some(format!("postgres://postgres@127.0.0.1:{port}"))
}

// ---------------------------------------------------------------------------------------------
// The application under test.

#[allow(dead_code)]
pub struct TestApp {
    pub address: String,
    pub backend: Backend,
    pub database_url: String,
    pub db: Db,
    pub client: reqwest::Client,
    pub config: Config,
    pub data_dir: tempfile::TempDir,
    /// Builds e-mails and wakes this instance's outbox worker.
    pub mail: renkei::mail::Mailer,
}

pub struct TestResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub body: Value,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    pub fn problem_type(&self) -> String {
        self.body["type"].as_str().unwrap_or_default().to_string()
    }

    /// Asserts the status and returns self, printing the body on mismatch.
    #[track_caller]
    pub fn expect(self, status: u16) -> TestResponse {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        self
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        match backend {
            Backend::Sqlite => Self::spawn_sqlite().await,
            Backend::Postgres => Self::spawn_postgres().await.expect("PostgreSQL is not available"),
        }
    }

    pub async fn spawn_sqlite() -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("renkei.db").display());
        Self::start(Backend::Sqlite, url, dir, true, HashMap::new()).await
    }

    pub async fn spawn_postgres() -> Option<TestApp> {
        let cluster = postgres()?;
        let url = cluster.fresh_database();
        let dir = tempfile::tempdir().expect("temp dir");
        Some(Self::start(Backend::Postgres, url, dir, false, HashMap::new()).await)
    }

    /// A server with extra settings (e.g. `RENKEI_SMTP_URL` of a test SMTP server) on a fresh
    /// database of the backend.
    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
        let extra: HashMap<String, String> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("renkei.db").display());
                Self::start(Backend::Sqlite, url, dir, true, extra).await
            }
            Backend::Postgres => {
                let url = postgres().expect("PostgreSQL is not available").fresh_database();
                Self::start(Backend::Postgres, url, dir, false, extra).await
            }
        }
    }

    /// Another server instance, with its own outbox worker, on this one's database.
    pub async fn another_instance(&self, extra: &[(&str, &str)]) -> TestApp {
        let extra: HashMap<String, String> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start(self.backend, self.database_url.clone(), dir, false, extra).await
    }

    /// Starts the server with extra settings (e.g. a database URL through a proxy).
    pub async fn start(
        backend: Backend,
        database_url: String,
        dir: tempfile::TempDir,
        migrate: bool,
        extra: HashMap<String, String>,
    ) -> TestApp {
        let mut vars: HashMap<String, String> = HashMap::from([
            ("DATABASE_URL".into(), database_url.clone()),
            ("RENKEI_DATA_DIR".into(), dir.path().display().to_string()),
            ("RENKEI_JWT_SECRET".into(), JWT_SECRET.into()),
            ("RENKEI_BIND".into(), "127.0.0.1:0".into()),
            ("RENKEI_DB_POOL_SIZE".into(), "4".into()),
            ("RENKEI_DB_TIMEOUT_MS".into(), "5000".into()),
            // Without RENKEI_SMTP_URL the outbox writes .eml files into the temporary folder.
            ("RENKEI_MAIL_POLL_SECS".into(), "1".into()),
            ("RENKEI_MAIL_BACKOFF_SECS".into(), "1".into()),
        ]);
        vars.extend(extra);
        let config = config::from_lookup(|k| vars.get(k).cloned()).expect("test configuration");
        let db =
            Db::new(&database_url, config.db_pool_size, Duration::from_millis(config.db_timeout_ms)).expect("pool");
        if migrate {
            let mut conn = db.get().expect("connection");
            db::migrate(&mut conn).expect("migrate");
        }
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("addr"));
        let state = AppState::new(config.clone(), db.clone()).expect("state");
        let mail = state.mail.clone();
        renkei::mail::worker::spawn(&state).expect("outbox worker");
        let server = app::serve(listener, state).expect("server");
        tokio::spawn(server);
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        TestApp { address, backend, database_url, db, client, config, data_dir: dir, mail }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sends a request and checks the answer against the API contract.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method.clone(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        let response = TestResponse { status, headers, text, body };
        crate::contract::check_response(method.as_str(), path, &response);
        response
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        self.call("GET", path, Some(token), None, &[]).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.call("POST", path, Some(token), Some(&body), &[]).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value, if_match: Option<&str>) -> TestResponse {
        let headers: Vec<(&str, &str)> = if_match.map(|v| vec![("if-match", v)]).unwrap_or_default();
        self.call("PATCH", path, Some(token), Some(&body), &headers).await
    }

    pub async fn login(&self, email: &str, password: &str, totp_code: Option<&str>) -> TestResponse {
        let mut body = json!({ "email": email, "password": password });
        if let Some(code) = totp_code {
            body["totp_code"] = json!(code);
        }
        self.call("POST", "/api/v1/auth/login", None, Some(&body), &[]).await
    }

    /// A system administrator with two-factor sign-in set up, signed in.
    pub async fn system_admin(&self) -> Person {
        let email = format!("admin-{}@example.jp", short_id());
        let hash = renkei::auth::password::hash(PASSWORD).expect("hash");
        let (user_id, secret) = self
            .db
            .run({
                let email = email.clone();
                move |conn| {
                    let org = renkei::orgs::insert(
                        conn,
                        renkei::orgs::NewOrganization {
                            kind: renkei::vocab::OrgKind::CityWardOffice,
                            name: "運用事務局".into(),
                            name_kana: None,
                            ward_code: None,
                            address: None,
                            phone: None,
                            services: vec![],
                        },
                    )?;
                    let user = renkei::users::insert(
                        conn,
                        renkei::users::NewUser {
                            organization_id: Some(&org.id),
                            email: &email,
                            name: "管理者",
                            name_kana: None,
                            profession: renkei::vocab::Profession::Other,
                            role: renkei::vocab::AccountRole::SystemAdmin,
                            locale: renkei::vocab::Locale::Ja,
                            password_hash: hash,
                        },
                    )?;
                    let (secret, _) = renkei::auth::totp::new_secret(&email).expect("secret");
                    renkei::users::set_totp(conn, &user.id, Some(&secret), true, None)?;
                    Ok((user.id, secret))
                }
            })
            .await
            .expect("create system admin");
        let code = totp_code(&secret, 0);
        let tokens = self.login(&email, PASSWORD, Some(&code)).await.expect(200);
        Person {
            id: user_id,
            email,
            organization_id: None,
            token: tokens.body["access_token"].as_str().expect("token").to_string(),
            refresh_token: tokens.body["refresh_token"].as_str().expect("refresh").to_string(),
            totp_secret: Some(secret),
        }
    }

    /// Creates an organisation through the API.
    pub async fn organization(&self, admin: &Person, kind: &str, name: &str, ward: Option<&str>) -> String {
        let res = self
            .post("/api/v1/organizations", &admin.token, json!({ "kind": kind, "name": name, "ward_code": ward }))
            .await
            .expect(201);
        res.body["id"].as_str().expect("id").to_string()
    }

    /// Creates a user through the API and signs them in.
    pub async fn person(&self, creator: &Person, organization_id: &str, profession: &str, role: &str) -> Person {
        let email = format!("{profession}-{}@example.jp", short_id());
        let res = self
            .post(
                &format!("/api/v1/organizations/{organization_id}/users"),
                &creator.token,
                json!({ "email": email, "name": "山田 花子", "name_kana": "ヤマダ ハナコ", "profession": profession, "role": role, "password": PASSWORD }),
            )
            .await
            .expect(201);
        let id = res.body["id"].as_str().expect("id").to_string();
        let tokens = self.login(&email, PASSWORD, None).await.expect(200);
        Person {
            id,
            email,
            organization_id: Some(organization_id.to_string()),
            token: tokens.body["access_token"].as_str().expect("token").to_string(),
            refresh_token: tokens.body["refresh_token"].as_str().expect("refresh").to_string(),
            totp_secret: None,
        }
    }
}

/// A signed-in person.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct Person {
    pub id: String,
    pub email: String,
    pub organization_id: Option<String>,
    pub token: String,
    pub refresh_token: String,
    pub totp_secret: Option<String>,
}

pub fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

/// The TOTP code `steps_ahead` 30-second steps from now (each step is accepted once, so a test
/// that needs a second code takes the next step, within the allowed drift).
pub fn totp_code(secret: &str, steps_ahead: u64) -> String {
    let now = chrono::Utc::now().timestamp() as u64;
    renkei::auth::totp::code_at(secret, now + steps_ahead * 30).expect("code")
}

/// The token of the link to `path` (`/password-reset`, `/care-team-invitations`) in an e-mail.
#[allow(dead_code)]
pub fn link_token(body: &str, path: &str) -> String {
    let marker = format!("{path}?token=");
    let start = body.find(&marker).expect("a link with a token") + marker.len();
    body[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).collect()
}

/// The e-mails queued for an account, of one kind: (subject, body), oldest first (push messages
/// of the same alerts are rows of their own, on the `push` channel, and not counted).
#[allow(dead_code)]
pub async fn emails_to(app: &TestApp, user_id: &str, kind: &str) -> Vec<(String, String)> {
    use diesel::prelude::*;
    use renkei::db::schema::email_outbox::dsl as o;
    let (user_id, kind) = (user_id.to_string(), kind.to_string());
    app.db
        .run(move |conn| {
            Ok(o::email_outbox
                .filter(o::recipient_user_id.eq(user_id))
                .filter(o::kind.eq(kind))
                .filter(o::channel.eq("email"))
                .order((o::created_at.asc(), o::id.asc()))
                .select((o::subject, o::body_text))
                .load::<(String, String)>(conn)?)
        })
        .await
        .expect("read the outbox")
}

/// The e-mails queued to an address, of one kind: (subject, body), oldest first.
#[allow(dead_code)]
pub async fn emails_to_address(app: &TestApp, address: &str, kind: &str) -> Vec<(String, String)> {
    use diesel::prelude::*;
    use renkei::db::schema::email_outbox::dsl as o;
    let (address, kind) = (address.to_string(), kind.to_string());
    app.db
        .run(move |conn| {
            Ok(o::email_outbox
                .filter(o::to_address.eq(address))
                .filter(o::kind.eq(kind))
                .filter(o::channel.eq("email"))
                .order((o::created_at.asc(), o::id.asc()))
                .select((o::subject, o::body_text))
                .load::<(String, String)>(conn)?)
        })
        .await
        .expect("read the outbox")
}

/// How many refused attempts of this account the audit trail holds.
#[allow(dead_code)]
pub async fn denied_events(app: &TestApp, actor_id: &str, resource_type: &str) -> usize {
    use diesel::prelude::*;
    use renkei::db::schema::audit_events::dsl as a;
    let (actor_id, resource_type) = (actor_id.to_string(), resource_type.to_string());
    app.db
        .run(move |conn| {
            Ok(a::audit_events
                .filter(a::actor_id.eq(actor_id))
                .filter(a::resource_type.eq(resource_type))
                .filter(a::outcome.eq("denied"))
                .count()
                .get_result::<i64>(conn)? as usize)
        })
        .await
        .expect("read the audit trail")
}
