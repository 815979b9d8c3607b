//! `renkei-bench upload`: attachment upload throughput, and whether the server's memory stays
//! flat while large files arrive at once.
//!
//! Each round sends `--files` uploads of `--size-mib` at the same time, each on its own
//! connection, each to a note of its own that a seeded clinician (the manifest's `clinicians`)
//! posted just before, untimed. The file is a PDF (streamed through: spooled, hashed, stored) or a JPEG
//! photo (also copied without its metadata and decoded for a thumbnail). While a round runs,
//! the server's resident memory is read from /proc every 10 ms.
//!
//! The peer, in the same run, is the same client sending the same bodies to a sink inside this
//! process that reads and drops them: what loopback HTTP alone costs, the ceiling an upload
//! path could reach on this machine.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1 as server_http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::load::http::{post_note, sign_in, Conn, Endpoint, Request};
use crate::load::read_memory;
use crate::seed::Manifest;

const BOUNDARY: &str = "renkei-bench-upload-boundary-7f3a";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A PDF document: received, hashed and stored as it came.
    Pdf,
    /// A JPEG photo: its metadata removed in a stream, and a thumbnail decoded from it.
    Jpeg,
}

#[derive(clap::Args)]
pub struct Args {
    /// Base URL of the server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// The manifest `renkei-bench seed` wrote.
    #[arg(long)]
    manifest: PathBuf,
    /// The server's process id: its memory is sampled while uploads run.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Uploads sent at the same time in each round.
    #[arg(long, default_value_t = 10)]
    files: usize,
    /// Size of each file, in MiB (may be fractional).
    #[arg(long, default_value_t = 20.0)]
    size_mib: f64,
    /// Rounds per kind.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// What is uploaded, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "pdf,jpeg")]
    kinds: Vec<Kind>,
    /// Write the results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

/// What the library entry point needs; `Args` maps onto it.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub manifest: PathBuf,
    pub server_pid: Option<u32>,
    pub files: usize,
    pub size_bytes: usize,
    pub rounds: usize,
    pub kinds: Vec<Kind>,
    /// Also measure the in-process sink (the peer).
    pub with_sink: bool,
    pub verbose: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub files_at_once: usize,
    pub rounds: usize,
    pub results: Vec<KindResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindResult {
    pub kind: Kind,
    /// The exact size of each uploaded file.
    pub file_bytes: usize,
    pub renkei: Throughput,
    /// The sink peer, when measured.
    pub sink: Option<Throughput>,
    /// The server's memory, when --server-pid was given.
    pub server_memory: Option<MemoryCurve>,
    /// Attachments the server answered 201 for.
    pub stored: usize,
    /// The first few failures: status and the start of the body.
    pub error_samples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub uploads: usize,
    pub failures: usize,
    /// File bytes per second over all rounds (wall clock of the rounds only), MiB/s.
    pub mib_per_s: f64,
    pub p50_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryCurve {
    /// RSS just before the first round of this kind.
    pub before_kb: u64,
    /// The highest RSS read while the rounds ran.
    pub peak_kb: u64,
    /// RSS after the last round.
    pub after_kb: u64,
    /// How many samples were read.
    pub samples: usize,
    /// Bytes in flight at once: files × size.
    pub in_flight_kb: u64,
}

pub fn run(args: Args) -> Result<(), String> {
    let options = Options {
        url: args.url,
        manifest: args.manifest,
        server_pid: args.server_pid,
        files: args.files.max(1),
        size_bytes: (args.size_mib * 1024.0 * 1024.0) as usize,
        rounds: args.rounds.max(1),
        kinds: args.kinds,
        with_sink: true,
        verbose: true,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let report = runtime.block_on(drive(&options))?;
    println!("{}", table(&report));
    if let Some(path) = &args.json_out {
        let text = serde_json::to_string_pretty(&report).map_err(|e| format!("cannot encode the results: {e}"))?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("results written to {}", path.display());
    }
    let failures: usize = report.results.iter().map(|r| r.renkei.failures).sum();
    if failures > 0 {
        return Err(format!("{failures} upload(s) failed (see the error samples above)"));
    }
    Ok(())
}

/// Runs every kind: the sink first (when asked), then the server, and returns the results.
pub async fn drive(options: &Options) -> Result<Report, String> {
    let endpoint = Endpoint::parse(&options.url).await?;
    let text = std::fs::read_to_string(&options.manifest)
        .map_err(|e| format!("cannot read {}: {e}", options.manifest.display()))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| format!("the manifest does not parse: {e}"))?;
    let needed = options.files * options.rounds * options.kinds.len();
    // Only a note's author attaches files to it: each upload goes to a note of its own, posted
    // here (untimed) by a seeded clinician on one of their patients, so no note reaches its limit.
    let clinicians: Vec<_> = manifest.clinicians.iter().filter(|c| !c.patient_ids.is_empty()).collect();
    if clinicians.is_empty() {
        return Err("the manifest has no clinician with patients".into());
    }
    let mut tokens = std::collections::HashMap::new();
    let mut notes = Vec::with_capacity(needed);
    let mut conn = Conn::open(&endpoint).await?;
    for k in 0..needed {
        let c = clinicians[k % clinicians.len()];
        if !tokens.contains_key(&c.email) {
            let (token, _) = sign_in(&mut conn, &c.email, &manifest.password).await?;
            tokens.insert(c.email.clone(), token);
        }
        let token = tokens.get(&c.email).cloned().unwrap_or_default();
        let patient = &c.patient_ids[(k / clinicians.len()) % c.patient_ids.len()];
        notes.push((post_note(&mut conn, &token, patient, "創部の写真を添付します。").await?, token));
    }
    drop(conn);

    let sink = if options.with_sink { Some(Sink::start().await?) } else { None };
    let mut results = Vec::new();
    let mut next_note = 0;
    for &kind in &options.kinds {
        let file = make_file(kind, options.size_bytes)?;
        let body = Bytes::from(multipart(&file, kind));
        if options.verbose {
            println!("{kind:?}: {} files of {} bytes at once, {} round(s)", options.files, file.len(), options.rounds);
        }
        let sink_result = match &sink {
            Some(s) => {
                let targets = vec![(String::new(), String::from("sink")); options.files * options.rounds];
                Some(rounds(&s.endpoint, &targets, options.files, &body, None).await?.throughput)
            }
            None => None,
        };
        let targets = &notes[next_note..next_note + options.files * options.rounds];
        next_note += options.files * options.rounds;
        let measured = rounds(&endpoint, targets, options.files, &body, options.server_pid).await?;
        let server_memory = measured.memory.map(|mut m| {
            m.in_flight_kb = (options.files * file.len() / 1024) as u64;
            m
        });
        results.push(KindResult {
            kind,
            file_bytes: file.len(),
            stored: measured.throughput.uploads - measured.throughput.failures,
            renkei: measured.throughput,
            sink: sink_result,
            server_memory,
            error_samples: measured.error_samples,
        });
    }
    Ok(Report { files_at_once: options.files, rounds: options.rounds, results })
}

pub fn table(report: &Report) -> String {
    let mib = |kb: u64| kb as f64 / 1024.0;
    let mut out = format!(
        "\n{} uploads at once, {} round(s) per kind\n\n| kind | file MiB | Renkei MiB/s | sink MiB/s | p50 ms | max ms | failures | RSS before | RSS peak | peak − before | in flight |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
        report.files_at_once, report.rounds
    );
    for r in &report.results {
        let (before, peak, grew, flight) = match &r.server_memory {
            Some(m) => (
                format!("{:.1} MiB", mib(m.before_kb)),
                format!("{:.1} MiB", mib(m.peak_kb)),
                format!("{:.1} MiB", mib(m.peak_kb.saturating_sub(m.before_kb))),
                format!("{:.0} MiB", mib(m.in_flight_kb)),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        out.push_str(&format!(
            "| {:?} | {:.1} | {:.1} | {} | {:.0} | {:.0} | {} | {before} | {peak} | {grew} | {flight} |\n",
            r.kind,
            r.file_bytes as f64 / 1048576.0,
            r.renkei.mib_per_s,
            r.sink.as_ref().map_or("-".into(), |s| format!("{:.1}", s.mib_per_s)),
            r.renkei.p50_ms,
            r.renkei.max_ms,
            r.renkei.failures,
        ));
        for e in &r.error_samples {
            out.push_str(&format!("  error: {e}\n"));
        }
    }
    out
}

struct Measured {
    throughput: Throughput,
    memory: Option<MemoryCurve>,
    error_samples: Vec<String>,
}

/// Sends `targets` (note id, token) in rounds of `at_once`, all of a round at the same time.
async fn rounds(
    endpoint: &Endpoint,
    targets: &[(String, String)],
    at_once: usize,
    body: &Bytes,
    pid: Option<u32>,
) -> Result<Measured, String> {
    let before_kb = pid.and_then(|p| read_memory(p).vm_rss_kb);
    let running = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(before_kb.unwrap_or(0)));
    let samples = Arc::new(AtomicU64::new(0));
    let sampler = pid.map(|p| {
        let (running, peak, samples) = (running.clone(), peak.clone(), samples.clone());
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                if let Some(kb) = read_memory(p).vm_rss_kb {
                    peak.fetch_max(kb, Ordering::Relaxed);
                    samples.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    });
    let mut latencies = Vec::new();
    let mut failures = 0;
    let mut error_samples = Vec::new();
    let mut wall = Duration::ZERO;
    for round in targets.chunks(at_once) {
        let started = Instant::now();
        let mut set = JoinSet::new();
        for (note_id, token) in round {
            let (endpoint, body, note_id, token) = (endpoint.clone(), body.clone(), note_id.clone(), token.clone());
            set.spawn(async move {
                let mut conn = Conn::open(&endpoint).await?;
                let path = if note_id.is_empty() {
                    "/sink".to_string()
                } else {
                    format!("/api/v1/notes/{note_id}/attachments")
                };
                let key = uuid::Uuid::new_v4().to_string();
                let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
                let t = Instant::now();
                let res = conn
                    .send(&Request {
                        method: "POST",
                        path: &path,
                        token: Some(&token),
                        body: Some(&body[..]),
                        content_type: &content_type,
                        headers: &[("accept", "application/json"), ("idempotency-key", &key)],
                    })
                    .await?;
                Ok::<_, String>((t.elapsed(), res.status, res.snippet()))
            });
        }
        while let Some(r) = set.join_next().await {
            let (took, status, snippet) = r.map_err(|e| format!("upload task failed: {e}"))??;
            latencies.push(took.as_secs_f64() * 1000.0);
            if status != 201 {
                failures += 1;
                if error_samples.len() < 3 {
                    error_samples.push(format!("{status}: {snippet}"));
                }
            }
        }
        wall += started.elapsed();
    }
    running.store(false, Ordering::Relaxed);
    if let Some(s) = sampler {
        let _ = s.await;
    }
    latencies.sort_by(f64::total_cmp);
    let uploads = targets.len();
    let bytes = (uploads * body.len()) as f64;
    let throughput = Throughput {
        uploads,
        failures,
        mib_per_s: bytes / 1048576.0 / wall.as_secs_f64().max(1e-9),
        p50_ms: latencies.get(latencies.len() / 2).copied().unwrap_or(0.0),
        max_ms: latencies.last().copied().unwrap_or(0.0),
    };
    let memory = match (pid, before_kb) {
        (Some(p), Some(before_kb)) => Some(MemoryCurve {
            before_kb,
            peak_kb: peak.load(Ordering::Relaxed),
            after_kb: read_memory(p).vm_rss_kb.unwrap_or(0),
            samples: samples.load(Ordering::Relaxed) as usize,
            in_flight_kb: 0,
        }),
        _ => None,
    };
    Ok(Measured { throughput, memory, error_samples })
}

/// The peer: an HTTP/1.1 server in this process that reads each body to its end, drops it and
/// answers 201.
struct Sink {
    endpoint: Endpoint,
}

impl Sink {
    async fn start() -> Result<Sink, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("sink: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("sink: {e}"))?;
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                        let mut body = req.into_body();
                        while let Some(frame) = body.frame().await {
                            if frame.is_err() {
                                break;
                            }
                        }
                        let mut res = hyper::Response::new(Full::new(Bytes::from_static(b"{}")));
                        *res.status_mut() = hyper::StatusCode::CREATED;
                        Ok::<_, Infallible>(res)
                    });
                    let _ = server_http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(Sink { endpoint: Endpoint::parse(&format!("http://{addr}")).await? })
    }
}

/// A file of about `size` bytes of `kind`. The PDF is a header and random bytes (random, so that
/// nothing on the way compresses it); the JPEG is random pixels encoded at a quality that phones
/// use, sized so that it lands near `size`.
fn make_file(kind: Kind, size: usize) -> Result<Vec<u8>, String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261203);
    match kind {
        Kind::Pdf => {
            let mut file = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
            let header = file.len();
            file.resize(size.max(header + 1), 0);
            rng.fill(&mut file[header..]);
            Ok(file)
        }
        Kind::Jpeg => {
            // Random RGB pixels at quality 90 take about 2.1 bytes per pixel; one trial encode
            // corrects the estimate.
            let mut pixels = (size as f64 / 2.1).max(64.0 * 64.0);
            let mut best: Option<Vec<u8>> = None;
            for _ in 0..4 {
                let width = (pixels * 4.0 / 3.0).sqrt().round().max(8.0) as u32;
                let height = (pixels / width as f64).round().max(8.0) as u32;
                let mut raw = vec![0u8; (width * height * 3) as usize];
                rng.fill(&mut raw[..]);
                let mut out = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                    .encode(&raw, width, height, image::ExtendedColorType::Rgb8)
                    .map_err(|e| format!("cannot encode the test photo: {e}"))?;
                pixels *= size as f64 * 0.97 / out.len() as f64;
                if out.len() <= size {
                    let close = out.len() as f64 > size as f64 * 0.9;
                    best = Some(out);
                    if close {
                        break;
                    }
                }
            }
            best.ok_or_else(|| format!("no test photo of at most {size} bytes could be made"))
        }
    }
}

fn multipart(file: &[u8], kind: Kind) -> Vec<u8> {
    let (name, content_type) = match kind {
        Kind::Pdf => ("紹介状.pdf", "application/pdf"),
        Kind::Jpeg => ("褥瘡_2026-12-03.jpg", "image/jpeg"),
    };
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}
