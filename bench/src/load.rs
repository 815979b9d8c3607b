//! `renkei-bench load`: drives a running server over loopback at fixed concurrency levels.
//!
//! For each scenario and concurrency `c`: a closed loop (c connections, each sending its next
//! request as soon as the last one is answered) gives the throughput; then an open loop at 80 % of
//! that throughput, spread over the c connections, gives the latency. Open-loop latency is
//! measured from each request's *intended* send time, so a request that had to wait behind a slow
//! one is charged for the wait (no coordinated omission).
//!
//! Virtual users are spread over many clinicians and patients from the seeder's manifest, so the
//! load is not one patient's audit chain or one user's session. `--target fhir` sends the same
//! shape of load to a FHIR server (Communication resources) for comparison.

pub(crate) mod http;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use http::{Conn, Endpoint, Request, Response};

use super::seed::{Manifest, ManifestClinician};

// ---------------------------------------------------------------------------------------------
// Options.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    #[value(name = "login")]
    Login,
    #[value(name = "note_post")]
    NotePost,
    #[value(name = "timeline")]
    Timeline,
    #[value(name = "note_get")]
    NoteGet,
    #[value(name = "caseload")]
    Caseload,
    #[value(name = "unread")]
    Unread,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Login => "login",
            Scenario::NotePost => "note_post",
            Scenario::Timeline => "timeline",
            Scenario::NoteGet => "note_get",
            Scenario::Caseload => "caseload",
            Scenario::Unread => "unread",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// This server's API.
    Renkei,
    /// A FHIR R4 server: note_post is POST /Communication, note_get is GET /Communication/{id}.
    Fhir,
}

#[derive(clap::Args)]
pub struct Args {
    /// Base URL of the server, e.g. http://127.0.0.1:8080 (a FHIR base may carry a path).
    #[arg(long)]
    url: String,
    /// The manifest `renkei-bench seed` wrote (not needed with --target fhir).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Concurrency levels (connections), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Seconds per measurement; each scenario and level runs a closed and an open loop this long.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// The server's process id: its peak and current memory are read from /proc at the end.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Scenarios, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "login,note_post,timeline,note_get,caseload,unread")]
    scenarios: Vec<Scenario>,
    /// What kind of server is at --url.
    #[arg(long, value_enum, default_value = "renkei")]
    target: Target,
    /// The open loop's rate as a fraction of the closed loop's throughput.
    #[arg(long, default_value_t = 0.8)]
    open_fraction: f64,
    /// Write the results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// A label for this run in the table and the JSON (e.g. "postgres scale 1").
    #[arg(long)]
    label: Option<String>,
}

/// What the library entry point needs; `Args` maps onto it.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub manifest: Option<PathBuf>,
    pub concurrency: Vec<usize>,
    pub duration: Duration,
    pub scenarios: Vec<Scenario>,
    pub target: Target,
    pub server_pid: Option<u32>,
    pub open_fraction: f64,
    pub label: String,
    /// Print progress and the table to stdout.
    pub verbose: bool,
}

// ---------------------------------------------------------------------------------------------
// Results.

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub label: String,
    pub target: Target,
    pub url: String,
    pub started_at: String,
    pub duration_secs: f64,
    pub open_fraction: f64,
    pub manifest: Option<ManifestSummary>,
    pub results: Vec<Row>,
    pub server_memory: Option<Memory>,
    /// Scenarios asked for that the target cannot run.
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestSummary {
    pub scale: f64,
    pub database_backend: String,
    pub counts: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: Scenario,
    pub concurrency: usize,
    pub closed: LoopStats,
    pub open: Option<LoopStats>,
    /// The first few failures: status and the start of the body, or the transport error.
    pub error_samples: Vec<String>,
    /// The server's resident memory right after this row, when --server-pid was given.
    pub server_rss_kb: Option<u64>,
}

impl Row {
    pub fn errors(&self) -> u64 {
        self.closed.errors + self.open.as_ref().map_or(0, |o| o.errors)
    }
    pub fn requests(&self) -> u64 {
        self.closed.requests + self.open.as_ref().map_or(0, |o| o.requests)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LoopStats {
    /// Requests answered (including errors).
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Answered requests per second.
    pub rps: f64,
    /// The rate asked for (open loop only).
    pub target_rps: Option<f64>,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub pid: u32,
    pub vm_hwm_kb: Option<u64>,
    pub vm_rss_kb: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Entry points.

pub fn run(args: Args) -> Result<(), String> {
    let options = Options {
        url: args.url,
        manifest: args.manifest,
        concurrency: args.concurrency,
        duration: Duration::from_secs_f64(args.duration_secs.max(0.1)),
        scenarios: args.scenarios,
        target: args.target,
        server_pid: args.server_pid,
        open_fraction: args.open_fraction,
        label: args.label.unwrap_or_default(),
        verbose: true,
    };
    // One thread: the driver shares a small machine with the server and should take little of it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let report = runtime.block_on(drive(&options))?;
    if let Some(path) = &args.json_out {
        let text = serde_json::to_string_pretty(&report).map_err(|e| format!("cannot encode the results: {e}"))?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("results written to {}", path.display());
    }
    let errors: u64 = report.results.iter().map(Row::errors).sum();
    if errors > 0 {
        eprintln!("renkei-bench load: {errors} request(s) failed (see the error samples above)");
    }
    Ok(())
}

/// Runs every scenario at every concurrency level and returns the results.
pub async fn drive(options: &Options) -> Result<Report, String> {
    let started_at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let endpoint = Endpoint::parse(&options.url).await?;
    let max_c = options.concurrency.iter().copied().max().unwrap_or(1).max(1);
    if options.concurrency.contains(&0) {
        return Err("a concurrency level must be at least 1".into());
    }
    let mut skipped = Vec::new();
    let (plan, manifest_summary) = match options.target {
        Target::Renkei => {
            let path = options.manifest.as_ref().ok_or("--manifest is required for --target renkei")?;
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let manifest: Manifest =
                serde_json::from_str(&text).map_err(|e| format!("{} is not a manifest: {e}", path.display()))?;
            let summary = ManifestSummary {
                scale: manifest.scale,
                database_backend: manifest.database_backend.clone(),
                counts: manifest.counts.clone(),
            };
            (Plan::for_renkei(manifest, &options.scenarios, max_c)?, Some(summary))
        }
        Target::Fhir => {
            for s in &options.scenarios {
                if !matches!(s, Scenario::NotePost | Scenario::NoteGet) {
                    skipped.push(s.name().to_string());
                }
            }
            (Plan::for_fhir(&endpoint, max_c, options.scenarios.contains(&Scenario::NoteGet)).await?, None)
        }
    };
    let plan = Arc::new(plan);
    let tokens = Arc::new(Tokens::new(plan.identities.len()));
    if options.verbose {
        println!(
            "renkei-bench load: {} at {}, {} identities to sign in, levels {:?}, {:.1} s per loop",
            match options.target {
                Target::Renkei => "renkei",
                Target::Fhir => "FHIR server",
            },
            options.url,
            plan.identities.len(),
            options.concurrency,
            options.duration.as_secs_f64()
        );
        if !skipped.is_empty() {
            println!("not applicable to a FHIR server, skipped: {}", skipped.join(", "));
        }
    }
    refresh_stale(&endpoint, &plan, &tokens, options.duration).await?;

    let mut results = Vec::new();
    for &scenario in &options.scenarios {
        if !plan.supports(scenario) {
            continue;
        }
        for &c in &options.concurrency {
            refresh_stale(&endpoint, &plan, &tokens, options.duration).await?;
            let closed = run_loop(&endpoint, &plan, &tokens, scenario, c, options.duration, None).await?;
            let closed_rps = closed.stats.rps;
            let mut samples = closed.samples;
            let open = if closed_rps > 0.0 && options.open_fraction > 0.0 {
                refresh_stale(&endpoint, &plan, &tokens, options.duration).await?;
                let rate = closed_rps * options.open_fraction;
                let open = run_loop(&endpoint, &plan, &tokens, scenario, c, options.duration, Some(rate)).await?;
                samples.extend(open.samples);
                Some(open.stats)
            } else {
                None
            };
            samples.truncate(5);
            let row = Row {
                scenario,
                concurrency: c,
                closed: closed.stats,
                open,
                error_samples: samples,
                server_rss_kb: options.server_pid.and_then(|p| read_memory(p).vm_rss_kb),
            };
            if options.verbose {
                print_progress(&row);
            }
            results.push(row);
        }
    }
    let server_memory = options.server_pid.map(read_memory);
    let report = Report {
        label: options.label.clone(),
        target: options.target,
        url: options.url.clone(),
        started_at,
        duration_secs: options.duration.as_secs_f64(),
        open_fraction: options.open_fraction,
        manifest: manifest_summary,
        results,
        server_memory,
        skipped,
    };
    if options.verbose {
        println!();
        print!("{}", table(&report));
    }
    Ok(report)
}

/// The results as a markdown table (readable as plain text too).
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let label = if report.label.is_empty() { String::new() } else { format!(" ({})", report.label) };
    out.push_str(&format!(
        "| scenario{label} | c | req/s (closed) | open rate | p50 ms | p95 ms | p99 ms | max ms | errors |\n"
    ));
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &report.results {
        let (rate, p50, p95, p99, max) = match &r.open {
            Some(o) => (
                format!("{:.0}", o.rps),
                format!("{:.1}", o.p50_ms),
                format!("{:.1}", o.p95_ms),
                format!("{:.1}", o.p99_ms),
                format!("{:.1}", o.max_ms),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
        };
        out.push_str(&format!(
            "| {} | {} | {:.1} | {rate} | {p50} | {p95} | {p99} | {max} | {} |\n",
            r.scenario.name(),
            r.concurrency,
            r.closed.rps,
            r.errors()
        ));
    }
    if let Some(m) = &report.server_memory {
        out.push_str(&format!(
            "\nserver pid {}: peak RSS (VmHWM) {}, RSS now {}\n",
            m.pid,
            m.vm_hwm_kb.map_or("unknown".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
            m.vm_rss_kb.map_or("unknown".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        ));
    }
    out
}

fn print_progress(row: &Row) {
    let open = row.open.as_ref().map_or("no open loop".to_string(), |o| {
        format!("open {:.1}/{:.1} req/s p50 {:.1} p99 {:.1} ms", o.rps, o.target_rps.unwrap_or(0.0), o.p50_ms, o.p99_ms)
    });
    println!(
        "  {:<10} c={:<3} closed {:.1} req/s (p50 {:.1} ms), {open}, errors {}",
        row.scenario.name(),
        row.concurrency,
        row.closed.rps,
        row.closed.p50_ms,
        row.errors()
    );
    for s in &row.error_samples {
        println!("    error: {s}");
    }
}

pub fn read_memory(pid: u32) -> Memory {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Memory { pid, vm_hwm_kb: field("VmHWM:"), vm_rss_kb: field("VmRSS:") }
}

// ---------------------------------------------------------------------------------------------
// Who does what: identities and their targets, chosen once before measuring.

/// One virtual user's part in a scenario: who it is and what it works on.
struct Slot {
    /// Index into `Plan::identities`; `None` for requests without a user (FHIR).
    identity: Option<usize>,
    /// Patient ids, note ids or Communication ids the user cycles through.
    targets: Vec<String>,
}

struct Plan {
    target: Target,
    password: String,
    identities: Vec<String>,
    /// Clinicians with patients: login, note_post, timeline, unread.
    clinicians: Vec<Slot>,
    /// Readers with notes to open: note_get.
    readers: Vec<Slot>,
    /// Coordinating physicians of `ward`: caseload.
    coordinators: Vec<Slot>,
    ward: String,
    /// FHIR: Patient ids for note_post, Communication ids for note_get.
    fhir_patients: Vec<Slot>,
    fhir_communications: Vec<Slot>,
    /// Identities some scenario will use, signed in before measuring.
    used: Vec<usize>,
}

/// Spreads `max_c` virtual users evenly over `n` slots (all distinct when there are enough).
fn spread(i: usize, n: usize, max_c: usize) -> usize {
    if n == 0 {
        return 0;
    }
    if n >= max_c {
        (i * n / max_c.max(1)) % n
    } else {
        i % n
    }
}

impl Plan {
    fn for_renkei(manifest: Manifest, scenarios: &[Scenario], max_c: usize) -> Result<Plan, String> {
        let mut identities: Vec<String> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut id_of = |email: &str| -> usize {
            if let Some(&i) = index.get(email) {
                return i;
            }
            identities.push(email.to_string());
            index.insert(email.to_string(), identities.len() - 1);
            identities.len() - 1
        };
        // Only clinicians with patients can post and read; pick max_c of them spread over the list
        // (the seeder lists them by organisation and ward), so the load crosses wards.
        let with_patients: Vec<&ManifestClinician> =
            manifest.clinicians.iter().filter(|c| !c.patient_ids.is_empty()).collect();
        let mut clinicians = Vec::new();
        let mut taken = HashSet::new();
        for i in 0..max_c.min(with_patients.len()) {
            let k = spread(i, with_patients.len(), max_c);
            if taken.insert(k) {
                let c = with_patients[k];
                clinicians.push(Slot { identity: Some(id_of(&c.email)), targets: c.patient_ids.clone() });
            }
        }
        // Readers: group the sampled notes by reader and take max_c readers.
        let mut by_reader: Vec<(String, Vec<String>)> = Vec::new();
        let mut reader_index: HashMap<&str, usize> = HashMap::new();
        for n in &manifest.notes_sample {
            let i = *reader_index.entry(n.reader_email.as_str()).or_insert_with(|| {
                by_reader.push((n.reader_email.clone(), Vec::new()));
                by_reader.len() - 1
            });
            by_reader[i].1.push(n.note_id.clone());
        }
        let mut readers = Vec::new();
        let mut taken = HashSet::new();
        for i in 0..max_c.min(by_reader.len()) {
            let k = spread(i, by_reader.len(), max_c);
            if taken.insert(k) {
                let (email, notes) = &by_reader[k];
                readers.push(Slot { identity: Some(id_of(email)), targets: notes.clone() });
            }
        }
        // The caseload of Kawasaki-ku (14131) when it has coordinators, else the first ward that has.
        let ward = manifest
            .wards
            .iter()
            .find(|w| w.code == "14131" && !w.coordinators.is_empty())
            .or_else(|| manifest.wards.iter().find(|w| !w.coordinators.is_empty()));
        let (ward_code, coordinators) = match ward {
            Some(w) => (
                w.code.clone(),
                w.coordinators
                    .iter()
                    .take(max_c)
                    .map(|e| Slot { identity: Some(id_of(e)), targets: Vec::new() })
                    .collect(),
            ),
            None => (String::new(), Vec::new()),
        };

        let mut plan = Plan {
            target: Target::Renkei,
            password: manifest.password,
            identities,
            clinicians,
            readers,
            coordinators,
            ward: ward_code,
            fhir_patients: Vec::new(),
            fhir_communications: Vec::new(),
            used: Vec::new(),
        };
        let mut used = HashSet::new();
        for &s in scenarios {
            if !plan.supports(s) {
                return Err(match s {
                    Scenario::NoteGet => "the manifest has no notes_sample for note_get".into(),
                    Scenario::Caseload => "the manifest has no ward with coordinators for caseload".into(),
                    _ => "the manifest has no clinician with patients".into(),
                });
            }
            // Logins sign in by themselves; the others need a token before measuring.
            if s != Scenario::Login {
                used.extend(plan.slots(s).iter().filter_map(|slot| slot.identity));
            }
        }
        plan.used = used.into_iter().collect();
        plan.used.sort_unstable();
        Ok(plan)
    }

    /// Creates what the FHIR scenarios work on: one Patient per virtual user (up to 64), and
    /// Communications about them to read.
    async fn for_fhir(endpoint: &Endpoint, max_c: usize, reads: bool) -> Result<Plan, String> {
        let mut conn = Conn::open(endpoint).await?;
        let patients_wanted = max_c.clamp(1, 64);
        let mut patients = Vec::new();
        for i in 0..patients_wanted {
            let body = json!({
                "resourceType": "Patient",
                "name": [{"family": "川崎", "given": [format!("花子{i}")]}],
                "gender": if i % 2 == 0 { "female" } else { "male" },
                "birthDate": "1938-04-01",
                "address": [{"city": "川崎市", "district": "川崎区"}]
            });
            let id = fhir_create(&mut conn, "/Patient", &body).await?;
            patients.push(Slot { identity: None, targets: vec![id] });
        }
        let mut communications = Vec::new();
        if reads {
            let mut rng = StdRng::seed_from_u64(7);
            for patient in &patients {
                let mut ids = Vec::new();
                for _ in 0..4 {
                    let patient = patient.targets.first().map(String::as_str).unwrap_or_default();
                    let body = fhir_communication(patient, &mut rng);
                    ids.push(fhir_create(&mut conn, "/Communication", &body).await?);
                }
                communications.push(Slot { identity: None, targets: ids });
            }
        }
        Ok(Plan {
            target: Target::Fhir,
            password: String::new(),
            identities: Vec::new(),
            clinicians: Vec::new(),
            readers: Vec::new(),
            coordinators: Vec::new(),
            ward: String::new(),
            fhir_patients: patients,
            fhir_communications: communications,
            used: Vec::new(),
        })
    }

    fn slots(&self, scenario: Scenario) -> &[Slot] {
        match (self.target, scenario) {
            (Target::Renkei, Scenario::NoteGet) => &self.readers,
            (Target::Renkei, Scenario::Caseload) => &self.coordinators,
            (Target::Renkei, _) => &self.clinicians,
            (Target::Fhir, Scenario::NotePost) => &self.fhir_patients,
            (Target::Fhir, Scenario::NoteGet) => &self.fhir_communications,
            (Target::Fhir, _) => &[],
        }
    }

    fn supports(&self, scenario: Scenario) -> bool {
        !self.slots(scenario).is_empty()
    }
}

async fn fhir_create(conn: &mut Conn, path: &str, body: &serde_json::Value) -> Result<String, String> {
    let bytes = body.to_string().into_bytes();
    let res = conn
        .send(&Request {
            method: "POST",
            path,
            token: None,
            body: Some(&bytes),
            content_type: "application/fhir+json",
            headers: &[],
        })
        .await?;
    if !res.ok() {
        return Err(format!("FHIR POST {path} answered {}: {}", res.status, res.snippet()));
    }
    res.json()
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .ok_or_else(|| format!("FHIR POST {path} answered without an id: {}", res.snippet()))
}

// ---------------------------------------------------------------------------------------------
// Access tokens: signed in once before measuring, again before they run out.

struct Tokens {
    slots: Mutex<Vec<Option<(String, Instant, Duration)>>>,
}

impl Tokens {
    fn new(n: usize) -> Tokens {
        Tokens { slots: Mutex::new(vec![None; n]) }
    }

    fn get(&self, identity: usize) -> Option<String> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.get(identity).and_then(|s| s.as_ref()).map(|(t, _, _)| t.clone())
    }

    /// Whether the token will still be good `margin` from now.
    fn fresh(&self, identity: usize, margin: Duration) -> bool {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        matches!(slots.get(identity), Some(Some((_, at, ttl))) if at.elapsed() + margin < *ttl)
    }

    fn set(&self, identity: usize, token: String, ttl: Duration) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slots.get_mut(identity) {
            *s = Some((token, Instant::now(), ttl));
        }
    }
}

fn login_body(plan: &Plan, identity: usize) -> Vec<u8> {
    let email = plan.identities.get(identity).map(String::as_str).unwrap_or_default();
    json!({ "email": email, "password": plan.password }).to_string().into_bytes()
}

async fn login(conn: &mut Conn, plan: &Plan, tokens: &Tokens, identity: usize) -> Result<(), String> {
    let email = plan.identities.get(identity).map(String::as_str).unwrap_or_default();
    let (token, ttl) = http::sign_in(conn, email, &plan.password).await?;
    tokens.set(identity, token, ttl);
    Ok(())
}

/// Signs in every identity whose token would run out before the next loop ends.
async fn refresh_stale(
    endpoint: &Endpoint,
    plan: &Arc<Plan>,
    tokens: &Arc<Tokens>,
    loop_len: Duration,
) -> Result<(), String> {
    // Margin: this loop plus a minute, so no token expires inside a measurement.
    let margin = loop_len + Duration::from_secs(60);
    let stale: Vec<usize> = plan.used.iter().copied().filter(|&i| !tokens.fresh(i, margin)).collect();
    if stale.is_empty() {
        return Ok(());
    }
    // A few connections: password hashing is deliberately slow, and the server has few cores.
    let workers = stale.len().min(4);
    let mut set = JoinSet::new();
    for w in 0..workers {
        let ids: Vec<usize> = stale.iter().copied().skip(w).step_by(workers).collect();
        let (endpoint, plan, tokens) = (endpoint.clone(), plan.clone(), tokens.clone());
        set.spawn(async move {
            let mut conn = Conn::open(&endpoint).await?;
            for i in ids {
                login(&mut conn, &plan, &tokens, i).await?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| format!("sign-in task failed: {e}"))??;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The loops.

struct LoopOutcome {
    stats: LoopStats,
    samples: Vec<String>,
}

struct VuOutcome {
    requests: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    samples: Vec<String>,
}

/// One loop: `c` connections for `duration`; closed when `rate` is `None`, else open at `rate`
/// requests per second in total.
async fn run_loop(
    endpoint: &Endpoint,
    plan: &Arc<Plan>,
    tokens: &Arc<Tokens>,
    scenario: Scenario,
    c: usize,
    duration: Duration,
    rate: Option<f64>,
) -> Result<LoopOutcome, String> {
    // Connections are opened before the clock starts.
    let mut conns = Vec::with_capacity(c);
    for _ in 0..c {
        conns.push(Conn::open(endpoint).await?);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + duration;
    let mut set = JoinSet::new();
    for (i, conn) in conns.into_iter().enumerate() {
        let (plan, tokens) = (plan.clone(), tokens.clone());
        // The plan holds one slot per virtual user of the highest level (fewer when the
        // manifest has fewer people), so users of a level are distinct where possible.
        let slot = i % plan.slots(scenario).len().max(1);
        // Connections start their open-loop schedules staggered, so requests arrive evenly.
        let schedule = rate.map(|r| {
            let interval = Duration::from_secs_f64(c as f64 / r);
            (start + Duration::from_secs_f64(i as f64 / r), interval)
        });
        set.spawn(async move {
            let mut vu = VirtualUser {
                conn,
                plan,
                tokens,
                scenario,
                slot,
                next: i,
                rng: StdRng::seed_from_u64(0x5eed ^ ((i as u64) << 8) ^ (scenario as u64)),
            };
            vu.run(start, end, schedule).await
        });
    }
    let mut requests = 0;
    let mut errors = 0;
    let mut latencies: Vec<u32> = Vec::new();
    let mut samples = Vec::new();
    while let Some(r) = set.join_next().await {
        let o = r.map_err(|e| format!("a virtual user failed: {e}"))?;
        requests += o.requests;
        errors += o.errors;
        latencies.extend(o.latencies_us);
        if samples.len() < 5 {
            samples.extend(o.samples);
        }
    }
    // Until the last answer, so requests in flight at the deadline are not counted for free.
    let seconds = Instant::now().saturating_duration_since(start).as_secs_f64().max(1e-9);
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1] as f64 / 1000.0
    };
    let stats = LoopStats {
        requests,
        errors,
        seconds,
        rps: requests as f64 / seconds,
        target_rps: rate,
        p50_ms: pct(50.0),
        p95_ms: pct(95.0),
        p99_ms: pct(99.0),
        max_ms: latencies.last().map_or(0.0, |&v| v as f64 / 1000.0),
    };
    Ok(LoopOutcome { stats, samples })
}

struct VirtualUser {
    conn: Conn,
    plan: Arc<Plan>,
    tokens: Arc<Tokens>,
    scenario: Scenario,
    slot: usize,
    /// Which of the slot's targets (or caseload filters) comes next.
    next: usize,
    rng: StdRng,
}

impl VirtualUser {
    async fn run(&mut self, start: Instant, end: Instant, schedule: Option<(Instant, Duration)>) -> VuOutcome {
        let mut out = VuOutcome { requests: 0, errors: 0, latencies_us: Vec::new(), samples: Vec::new() };
        tokio::time::sleep_until(start).await;
        let mut intended = schedule.map(|(first, _)| first);
        loop {
            // Open loop: wait for this request's slot in the schedule, and charge any lateness
            // to the request (it would have been sent then by an independent client).
            let sent_at = match intended {
                Some(t) => {
                    if t >= end {
                        break;
                    }
                    tokio::time::sleep_until(t).await;
                    t
                }
                None => {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    now
                }
            };
            let result = self.one().await;
            let latency = Instant::now().saturating_duration_since(sent_at);
            out.requests += 1;
            out.latencies_us.push(latency.as_micros().min(u32::MAX as u128) as u32);
            match result {
                Ok(res) if res.ok() => {}
                Ok(res) => {
                    out.errors += 1;
                    if out.samples.len() < 3 {
                        out.samples.push(format!("{} {}: {}", self.scenario.name(), res.status, res.snippet()));
                    }
                }
                Err(e) => {
                    out.errors += 1;
                    if out.samples.len() < 3 {
                        out.samples.push(format!("{}: {e}", self.scenario.name()));
                    }
                }
            }
            if let (Some(t), Some((_, interval))) = (intended.as_mut(), schedule) {
                *t += interval;
            }
        }
        out
    }

    /// Sends the next request of the scenario and returns the answer.
    async fn one(&mut self) -> Result<Response, String> {
        let plan = self.plan.clone();
        let slot = plan.slots(self.scenario).get(self.slot).ok_or("no slot")?;
        let target = if slot.targets.is_empty() { "" } else { slot.targets[self.next % slot.targets.len()].as_str() };
        self.next = self.next.wrapping_add(1);
        let token = match slot.identity {
            Some(i) if self.scenario != Scenario::Login => {
                // Only a run longer than a token's life gets here; the sign-in is then part of
                // this request's time.
                if !self.tokens.fresh(i, Duration::from_secs(5)) {
                    login(&mut self.conn, &plan, &self.tokens, i).await?;
                }
                self.tokens.get(i)
            }
            _ => None,
        };
        let token = token.as_deref();
        let (method, path, body, content_type): (&str, String, Option<Vec<u8>>, &str) =
            match (plan.target, self.scenario) {
                (Target::Renkei, Scenario::Login) => (
                    "POST",
                    "/api/v1/auth/login".into(),
                    Some(login_body(&plan, slot.identity.unwrap_or(0))),
                    "application/json",
                ),
                (Target::Renkei, Scenario::NotePost) => (
                    "POST",
                    format!("/api/v1/patients/{target}/notes"),
                    Some(visit_note(&mut self.rng).to_string().into_bytes()),
                    "application/json",
                ),
                (Target::Renkei, Scenario::Timeline) => {
                    ("GET", format!("/api/v1/patients/{target}/timeline"), None, "application/json")
                }
                (Target::Renkei, Scenario::NoteGet) => {
                    ("GET", format!("/api/v1/notes/{target}"), None, "application/json")
                }
                (Target::Renkei, Scenario::Caseload) => {
                    let filter = CASELOAD_QUERIES[self.next % CASELOAD_QUERIES.len()];
                    ("GET", format!("/api/v1/wards/{}/caseload?{filter}", plan.ward), None, "application/json")
                }
                (Target::Renkei, Scenario::Unread) => ("GET", "/api/v1/me/unread".into(), None, "application/json"),
                (Target::Fhir, Scenario::NotePost) => (
                    "POST",
                    "/Communication".into(),
                    Some(fhir_communication(target, &mut self.rng).to_string().into_bytes()),
                    "application/fhir+json",
                ),
                (Target::Fhir, Scenario::NoteGet) => {
                    ("GET", format!("/Communication/{target}"), None, "application/fhir+json")
                }
                (Target::Fhir, s) => return Err(format!("{} is not a FHIR scenario", s.name())),
            };
        self.conn.send(&Request { method, path: &path, token, body: body.as_deref(), content_type, headers: &[] }).await
    }
}

/// The caseload views a coordinating physician flips between.
const CASELOAD_QUERIES: [&str; 8] = [
    "has_active_flag=true&limit=50",
    "no_visit_days=14&limit=50",
    "sort=care_level&order=desc&limit=50",
    "sort=latest_news2&order=desc&limit=50",
    "open_discharge_case=true&limit=50",
    "sort=days_since_last_visit&order=desc&limit=50",
    "status=home&sort=name_kana&limit=50",
    "no_home_physician=true&limit=50",
];

/// Vital signs for a visit: mostly unremarkable, some a NEWS2 of 5–6 (an urgent flag), a few
/// 7 or more (an emergency flag), so the flag and e-mail path is part of the load.
struct VitalsDraw {
    temperature: f64,
    systolic_bp: i64,
    diastolic_bp: i64,
    pulse: i64,
    respiratory_rate: i64,
    spo2: i64,
}

fn draw_vitals(rng: &mut StdRng) -> VitalsDraw {
    let roll: u32 = rng.gen_range(0..100);
    let jitter = |rng: &mut StdRng, n: i64| rng.gen_range(0..=n);
    if roll < 80 {
        VitalsDraw {
            temperature: 36.3 + jitter(rng, 8) as f64 / 10.0,
            systolic_bp: 115 + jitter(rng, 30),
            diastolic_bp: 65 + jitter(rng, 20),
            pulse: 60 + jitter(rng, 25),
            respiratory_rate: 14 + jitter(rng, 4),
            spo2: 96 + jitter(rng, 3),
        }
    } else if roll < 95 {
        // RR 21–24 (2) + SpO2 94–95 (1) + SBP 101–110 (1) + HR 91–110 (1) + T 38.1–39.0 (1) = 6.
        VitalsDraw {
            temperature: 38.2 + jitter(rng, 6) as f64 / 10.0,
            systolic_bp: 102 + jitter(rng, 8),
            diastolic_bp: 60 + jitter(rng, 10),
            pulse: 92 + jitter(rng, 15),
            respiratory_rate: 21 + jitter(rng, 3),
            spo2: 94 + jitter(rng, 1),
        }
    } else {
        // RR ≥ 25 (3) + SpO2 ≤ 91 (3) + SBP 91–100 (2) + HR 111–130 (2) + T ≥ 39.1 (2) = 12.
        VitalsDraw {
            temperature: 39.1 + jitter(rng, 5) as f64 / 10.0,
            systolic_bp: 92 + jitter(rng, 8),
            diastolic_bp: 55 + jitter(rng, 10),
            pulse: 112 + jitter(rng, 15),
            respiratory_rate: 25 + jitter(rng, 4),
            spo2: 88 + jitter(rng, 3),
        }
    }
}

const VISIT_TEXTS: [&str; 4] = [
    "定期訪問。表情穏やか、食事は半量摂取。服薬確認済み。",
    "訪問時傾眠傾向あり。家族より夜間の咳嗽の訴え。",
    "入浴介助後に測定。皮膚トラブルなし、褥瘡の悪化なし。",
    "デイサービス翌日の訪問。疲労感の訴えあり、水分摂取を促した。",
];

fn occurred_at(rng: &mut StdRng) -> String {
    (Utc::now() - chrono::Duration::minutes(rng.gen_range(5..180))).to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn visit_note(rng: &mut StdRng) -> serde_json::Value {
    let v = draw_vitals(rng);
    let text = VISIT_TEXTS[rng.gen_range(0..VISIT_TEXTS.len())];
    json!({
        "kind": "visit",
        "occurred_at": occurred_at(rng),
        "text": text,
        "soap": {
            "subjective": "特に変わりないとのこと",
            "objective": format!("体温{:.1}℃ 血圧{}/{} 脈拍{} 呼吸数{} SpO2 {}%", v.temperature, v.systolic_bp, v.diastolic_bp, v.pulse, v.respiratory_rate, v.spo2),
            "assessment": "経過観察",
            "plan": "次回訪問時に再評価"
        },
        "vitals": {
            "temperature": (v.temperature * 10.0).round() / 10.0,
            "systolic_bp": v.systolic_bp,
            "diastolic_bp": v.diastolic_bp,
            "pulse": v.pulse,
            "respiratory_rate": v.respiratory_rate,
            "spo2": v.spo2,
            "on_oxygen": false,
            "consciousness": "A"
        }
    })
}

/// The FHIR counterpart of a visit note: a Communication about the patient with the same text
/// and vital signs as its payload.
fn fhir_communication(patient_id: &str, rng: &mut StdRng) -> serde_json::Value {
    let v = draw_vitals(rng);
    let text = VISIT_TEXTS[rng.gen_range(0..VISIT_TEXTS.len())];
    json!({
        "resourceType": "Communication",
        "status": "completed",
        "category": [{"text": "visit"}],
        "subject": {"reference": format!("Patient/{patient_id}")},
        "sent": occurred_at(rng),
        "payload": [
            {"contentString": text},
            {"contentString": format!("S: 特に変わりないとのこと O: 体温{:.1}℃ 血圧{}/{} 脈拍{} 呼吸数{} SpO2 {}% 意識清明 A: 経過観察 P: 次回訪問時に再評価", v.temperature, v.systolic_bp, v.diastolic_bp, v.pulse, v.respiratory_rate, v.spo2)}
        ]
    })
}
