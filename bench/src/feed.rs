//! `renkei-bench feed`: the change feed and its live stream.
//!
//! (a) **Feed throughput**: a seeded clinician's notes (`--changes` of them, posted first,
//! untimed, over their patients) are read back with `GET /changes?since=…&limit=…` from the
//! cursor before them until the feed says it has caught up: pages/s and changes/s.
//!
//! (b) **Fan-out**: for each count in `--streams`, that many `GET /changes/stream` connections
//! are opened at once, spread over the sampled clinicians on the care team of one patient. Then
//! `--notes` notes are posted on that patient, one after another, each when every stream has
//! received the one before (or `--timeout-secs` passed). The delivery latency of each stream is
//! the time from sending the note's POST (its commit is inside it) to that stream receiving the
//! `note_added` event. The server's resident memory is read before and after the streams open.
//!
//! The peer, in the same run, is an in-process HTTP/1.1 server that holds the same number of
//! event-stream connections and writes the same bytes to each of them when it is sent a POST:
//! bare fan-out over loopback, with no database, no session check, no audit. For the feed the
//! peer serves the very pages the server answered, in order, from memory.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame};
use hyper::server::conn::http1 as server_http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::load::http::{post_note, sign_in, Conn, Endpoint, Request};
use crate::load::read_memory;
use crate::seed::Manifest;

#[derive(clap::Args)]
pub struct Args {
    /// Base URL of the server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// The manifest `renkei-bench seed` wrote.
    #[arg(long)]
    manifest: PathBuf,
    /// The server's process id: its memory is read before and after the streams open.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Notes posted before the feed is read back.
    #[arg(long, default_value_t = 2000)]
    changes: usize,
    /// Items per feed page (`limit`).
    #[arg(long, default_value_t = 200)]
    page_limit: usize,
    /// Streams open at once, one run per count, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000")]
    streams: Vec<usize>,
    /// Notes posted while the streams are open, per count.
    #[arg(long, default_value_t = 10)]
    notes: usize,
    /// How long to wait for every stream to receive one note.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// Write the results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub manifest: PathBuf,
    pub server_pid: Option<u32>,
    pub changes: usize,
    pub page_limit: usize,
    pub streams: Vec<usize>,
    pub notes: usize,
    pub timeout: Duration,
    /// Also measure the in-process peer.
    pub with_peer: bool,
    pub verbose: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// /proc/loadavg before and after the run: the machine is shared.
    pub load_before: String,
    pub load_after: String,
    pub cores: usize,
    pub feed: FeedResult,
    pub fanout: Vec<FanoutResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedResult {
    pub notes_posted: usize,
    pub page_limit: usize,
    pub renkei: FeedThroughput,
    pub peer: Option<FeedThroughput>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedThroughput {
    pub pages: usize,
    pub items: usize,
    pub seconds: f64,
    pub pages_per_s: f64,
    pub changes_per_s: f64,
    pub page_p50_ms: f64,
    pub page_p99_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FanoutResult {
    pub streams: usize,
    /// Distinct people the streams belong to.
    pub users: usize,
    pub notes: usize,
    pub renkei: Delivery,
    pub peer: Option<Delivery>,
    /// Server RSS before the streams opened and with them open, kB.
    pub rss_before_kb: Option<u64>,
    pub rss_open_kb: Option<u64>,
    pub rss_kb_per_stream: Option<f64>,
    pub error_samples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// Streams that opened (answered 200 and sent their first line).
    pub opened: usize,
    pub delivered: usize,
    pub missed: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The note POST's (or the peer's publish POST's) own latency, p50.
    pub post_p50_ms: f64,
    /// Seconds to open every stream.
    pub open_secs: f64,
}

pub fn run(args: Args) -> Result<(), String> {
    let options = Options {
        url: args.url,
        manifest: args.manifest,
        server_pid: args.server_pid,
        changes: args.changes.max(1),
        page_limit: args.page_limit.clamp(1, 200),
        streams: args.streams,
        notes: args.notes.max(1),
        timeout: Duration::from_secs(args.timeout_secs.max(1)),
        with_peer: true,
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
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()
}

pub async fn drive(options: &Options) -> Result<Report, String> {
    let load_before = loadavg();
    let endpoint = Endpoint::parse(&options.url).await?;
    let text = std::fs::read_to_string(&options.manifest)
        .map_err(|e| format!("cannot read {}: {e}", options.manifest.display()))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| format!("the manifest does not parse: {e}"))?;

    // The patient with the most sampled clinicians on its team: its notes reach them all.
    let mut on_team: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in manifest.clinicians.iter().enumerate() {
        for p in &c.patient_ids {
            on_team.entry(p.as_str()).or_default().push(i);
        }
    }
    let (patient, members) = on_team
        .iter()
        .max_by(|a, b| a.1.len().cmp(&b.1.len()).then_with(|| b.0.cmp(a.0)))
        .map(|(p, m)| (p.to_string(), m.clone()))
        .ok_or("the manifest has no clinician with patients")?;
    let poster = &manifest.clinicians[members[0]];
    let mut conn = Conn::open(&endpoint).await?;
    let mut tokens = Vec::new();
    for &m in &members {
        tokens.push(sign_in(&mut conn, &manifest.clinicians[m].email, &manifest.password).await?.0);
    }
    let poster_token = tokens[0].clone();
    if options.verbose {
        println!(
            "feed: {} notes by {} over {} patients, pages of {}; fan-out on patient {patient} to {} people",
            options.changes,
            poster.email,
            poster.patient_ids.len(),
            options.page_limit,
            members.len()
        );
    }

    // (a) The feed.
    let mut cursor = None;
    loop {
        let page = feed_page(&mut conn, &poster_token, cursor.as_deref(), options.page_limit).await?;
        cursor = Some(page.next_cursor.clone());
        if !page.more {
            break;
        }
    }
    let start = cursor.unwrap_or_default();
    post_notes(&endpoint, &poster_token, &poster.patient_ids, options.changes).await?;
    let (renkei_feed, bodies) = read_feed(&mut conn, &poster_token, &start, options.page_limit).await?;
    let peer_feed = if options.with_peer {
        let peer = FeedPeer::start(bodies).await?;
        let mut pconn = Conn::open(&peer).await?;
        Some(read_feed(&mut pconn, "peer", &start, options.page_limit).await?.0)
    } else {
        None
    };
    let feed = FeedResult {
        notes_posted: options.changes,
        page_limit: options.page_limit,
        renkei: renkei_feed,
        peer: peer_feed,
    };
    if options.verbose {
        println!("feed: {} pages, {} items in {:.2} s", feed.renkei.pages, feed.renkei.items, feed.renkei.seconds);
    }

    // (b) The fan-out.
    let peer = if options.with_peer { Some(FanoutPeer::start().await?) } else { None };
    let mut fanout = Vec::new();
    for &k in &options.streams {
        let k = k.max(1);
        let users = members.len().min(k);
        let mut error_samples = Vec::new();
        let peer_delivery = match &peer {
            Some(p) => {
                let tokens = vec![String::from("peer"); 1];
                let (d, _, errors) =
                    fan_out(&p.endpoint, "/stream", &tokens, k, options, None, &Trigger::Publish).await?;
                error_samples.extend(errors.into_iter().map(|e| format!("peer: {e}")));
                Some(d)
            }
            None => None,
        };
        let note = Trigger::Note { token: poster_token.clone(), patient: patient.clone() };
        let (renkei, memory, errors) =
            fan_out(&endpoint, "/api/v1/changes/stream", &tokens[..users], k, options, options.server_pid, &note)
                .await?;
        error_samples.extend(errors);
        let (rss_before_kb, rss_open_kb) = memory.unzip();
        let per_stream = memory.map(|(b, o)| o.saturating_sub(b) as f64 / k as f64);
        if options.verbose {
            println!(
                "fan-out {k}: delivered {} of {}, p50 {:.1} ms, p99 {:.1} ms",
                renkei.delivered,
                k * options.notes,
                renkei.p50_ms,
                renkei.p99_ms
            );
        }
        fanout.push(FanoutResult {
            streams: k,
            users,
            notes: options.notes,
            renkei,
            peer: peer_delivery,
            rss_before_kb,
            rss_open_kb,
            rss_kb_per_stream: per_stream,
            error_samples,
        });
    }
    Ok(Report {
        load_before,
        load_after: loadavg(),
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        feed,
        fanout,
    })
}

pub fn table(report: &Report) -> String {
    let mut out = format!(
        "\nmachine: {} cores; load average before {} / after {}\n",
        report.cores, report.load_before, report.load_after
    );
    let f = &report.feed;
    out.push_str(&format!(
        "\nfeed: {} notes posted, read back in pages of {}\n\n| server | pages | changes | seconds | pages/s | changes/s | page p50 ms | page p99 ms |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
        f.notes_posted, f.page_limit
    ));
    let mut feed_row = |name: &str, t: &FeedThroughput| {
        out.push_str(&format!(
            "| {name} | {} | {} | {:.2} | {:.0} | {:.0} | {:.1} | {:.1} |\n",
            t.pages, t.items, t.seconds, t.pages_per_s, t.changes_per_s, t.page_p50_ms, t.page_p99_ms
        ));
    };
    feed_row("renkei", &f.renkei);
    if let Some(p) = &f.peer {
        feed_row("peer (same pages from memory)", p);
    }
    out.push_str(
        "\nfan-out: latency from sending the note POST to each stream receiving its event\n\n| streams | people | server | opened | delivered | missed | p50 ms | p99 ms | max ms | POST p50 ms | open s | RSS before MiB | RSS open MiB | KiB/stream |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mib = |kb: Option<u64>| kb.map_or("-".to_string(), |kb| format!("{:.1}", kb as f64 / 1024.0));
    for r in &report.fanout {
        let mut row = |name: &str, d: &Delivery, memory: bool| {
            let (before, open, per) = if memory {
                (
                    mib(r.rss_before_kb),
                    mib(r.rss_open_kb),
                    r.rss_kb_per_stream.map_or("-".into(), |k| format!("{k:.1}")),
                )
            } else {
                ("-".into(), "-".into(), "-".into())
            };
            out.push_str(&format!(
                "| {} | {} | {name} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {before} | {open} | {per} |\n",
                r.streams, r.users, d.opened, d.delivered, d.missed, d.p50_ms, d.p99_ms, d.max_ms, d.post_p50_ms, d.open_secs
            ));
        };
        row("renkei", &r.renkei, true);
        if let Some(p) = &r.peer {
            row("peer", p, false);
        }
        for e in &r.error_samples {
            out.push_str(&format!("  error: {e}\n"));
        }
    }
    out
}

struct Page {
    next_cursor: String,
    more: bool,
    items: usize,
}

async fn feed_page(conn: &mut Conn, token: &str, since: Option<&str>, limit: usize) -> Result<Page, String> {
    Ok(feed_page_raw(conn, token, since, limit).await?.0)
}

async fn feed_page_raw(
    conn: &mut Conn,
    token: &str,
    since: Option<&str>,
    limit: usize,
) -> Result<(Page, Vec<u8>), String> {
    let path = match since {
        Some(c) => format!("/api/v1/changes?since={c}&limit={limit}"),
        None => format!("/api/v1/changes?limit={limit}"),
    };
    let res = conn
        .send(&Request {
            method: "GET",
            path: &path,
            token: Some(token),
            body: None,
            content_type: "application/json",
            headers: &[],
        })
        .await?;
    if res.status != 200 {
        return Err(format!("GET /changes answered {}: {}", res.status, res.snippet()));
    }
    let v = res.json().unwrap_or_default();
    let page = Page {
        next_cursor: v["next_cursor"].as_str().unwrap_or_default().to_string(),
        more: v["more"].as_bool().unwrap_or(false),
        items: v["items"].as_array().map_or(0, Vec::len),
    };
    Ok((page, res.body))
}

/// Pages from `start` until the feed has caught up; the bodies, for the peer to serve.
async fn read_feed(
    conn: &mut Conn,
    token: &str,
    start: &str,
    limit: usize,
) -> Result<(FeedThroughput, Vec<Bytes>), String> {
    let mut cursor = start.to_string();
    let mut latencies = Vec::new();
    let mut bodies = Vec::new();
    let mut items = 0;
    let began = Instant::now();
    loop {
        let t = Instant::now();
        let (page, body) = feed_page_raw(conn, token, Some(&cursor), limit).await?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        bodies.push(Bytes::from(body));
        items += page.items;
        cursor = page.next_cursor;
        if !page.more {
            break;
        }
    }
    let seconds = began.elapsed().as_secs_f64().max(1e-9);
    latencies.sort_by(f64::total_cmp);
    let pages = latencies.len();
    Ok((
        FeedThroughput {
            pages,
            items,
            seconds,
            pages_per_s: pages as f64 / seconds,
            changes_per_s: items as f64 / seconds,
            page_p50_ms: percentile(&latencies, 0.50),
            page_p99_ms: percentile(&latencies, 0.99),
        },
        bodies,
    ))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// `count` notes over `patients`, four connections at a time (untimed).
async fn post_notes(endpoint: &Endpoint, token: &str, patients: &[String], count: usize) -> Result<(), String> {
    let mut set = JoinSet::new();
    for lane in 0..4 {
        let (endpoint, token, patients) = (endpoint.clone(), token.to_string(), patients.to_vec());
        set.spawn(async move {
            let mut conn = Conn::open(&endpoint).await?;
            for k in (lane..count).step_by(4) {
                post_note(&mut conn, &token, &patients[k % patients.len()], VISIT_TEXT).await?;
            }
            Ok::<_, String>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| format!("note task failed: {e}"))??;
    }
    Ok(())
}

/// The text of every note the benchmark posts.
const VISIT_TEXT: &str = "訪問しました。状態は安定しています。";

/// What makes an event: a note posted on the server, or a publish to the peer.
enum Trigger {
    Note { token: String, patient: String },
    Publish,
}

impl Trigger {
    async fn fire(&self, conn: &mut Conn) -> Result<(), String> {
        match self {
            Trigger::Note { token, patient } => post_note(conn, token, patient, VISIT_TEXT).await.map(|_| ()),
            Trigger::Publish => FanoutPeer::publish(conn).await,
        }
    }
}

/// What a stream tells the driver: it opened (or failed to), or it received its n-th note.
enum Heard {
    Opened,
    Failed(String),
    Note(usize, Instant),
}

/// Opens `k` streams at `path` (tokens in turn), then fires `trigger` `options.notes` times,
/// each after the last was delivered everywhere: the deliveries, and the memory of `pid`
/// before the streams opened and with them open.
async fn fan_out(
    endpoint: &Endpoint,
    path: &str,
    tokens: &[String],
    k: usize,
    options: &Options,
    pid: Option<u32>,
    trigger: &Trigger,
) -> Result<(Delivery, Option<(u64, u64)>, Vec<String>), String> {
    let before_kb = pid.and_then(|p| read_memory(p).vm_rss_kb);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut clients = JoinSet::new();
    let began = Instant::now();
    let mut opened = 0;
    let mut errors = Vec::new();
    let mut pending = 0;
    // Opened in batches, as clients coming back after a restart would be, not all in one burst
    // into the listen queue.
    for i in 0..k {
        let (endpoint, path, token, tx) =
            (endpoint.clone(), path.to_string(), tokens[i % tokens.len()].clone(), tx.clone());
        clients.spawn(listen(endpoint, path, token, tx));
        pending += 1;
        if pending == 50 || i + 1 == k {
            while pending > 0 {
                match tokio::time::timeout(options.timeout, rx.recv()).await {
                    Ok(Some(Heard::Opened)) => opened += 1,
                    Ok(Some(Heard::Failed(e))) => {
                        if errors.len() < 3 {
                            errors.push(e);
                        }
                    }
                    Ok(Some(Heard::Note(..))) => continue,
                    Ok(None) | Err(_) => break,
                }
                pending -= 1;
            }
            pending = 0;
        }
    }
    let open_secs = began.elapsed().as_secs_f64();
    // Let allocations settle before reading the memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open_kb = pid.and_then(|p| read_memory(p).vm_rss_kb);

    let mut conn = Conn::open(endpoint).await?;
    let mut sent = Vec::with_capacity(options.notes);
    let mut posts = Vec::new();
    let mut latencies = Vec::new();
    let mut got = vec![0usize; options.notes];
    for n in 0..options.notes {
        let t0 = Instant::now();
        sent.push(t0);
        if let Err(e) = trigger.fire(&mut conn).await {
            if errors.len() < 3 {
                errors.push(e);
            }
        }
        posts.push(t0.elapsed().as_secs_f64() * 1000.0);
        let deadline = t0 + options.timeout;
        while got[n] < opened {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Heard::Note(i, at))) if i < options.notes => {
                    got[i] += 1;
                    latencies.push((at - sent[i]).as_secs_f64() * 1000.0);
                }
                Ok(Some(Heard::Failed(e))) => {
                    if errors.len() < 3 {
                        errors.push(e);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    clients.abort_all();
    while clients.join_next().await.is_some() {}
    latencies.sort_by(f64::total_cmp);
    posts.sort_by(f64::total_cmp);
    let delivered = latencies.len();
    let delivery = Delivery {
        opened,
        delivered,
        missed: (k * options.notes).saturating_sub(delivered),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        post_p50_ms: percentile(&posts, 0.50),
        open_secs,
    };
    // The server lets go of a stream's place when it next writes to the closed connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok((delivery, before_kb.zip(open_kb), errors))
}

/// One event-stream client: reports when it opened and each `note_added` event it receives.
async fn listen(endpoint: Endpoint, path: String, token: String, tx: mpsc::UnboundedSender<Heard>) {
    let result = async {
        let stream = TcpStream::connect(endpoint.addr).await.map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = hyper::Request::builder()
            .uri(format!("{}{path}", endpoint.prefix))
            .header(hyper::header::HOST, endpoint.host.as_str())
            .header(hyper::header::ACCEPT, "text/event-stream")
            .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Empty::new())
            .map_err(|e| format!("request: {e}"))?;
        let response = sender.send_request(request).await.map_err(|e| format!("send: {e}"))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        if status != 200 {
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let end = bytes.len().min(300);
            return Err(format!("stream answered {status}: {}", String::from_utf8_lossy(&bytes[..end])));
        }
        let mut buffer: Vec<u8> = Vec::new();
        let mut opened = false;
        let mut notes = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("stream: {e}"))?;
            let Ok(data) = frame.into_data() else { continue };
            let at = Instant::now();
            buffer.extend_from_slice(&data);
            while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = buffer.drain(..end + 2).collect();
                if !opened {
                    opened = true;
                    let _ = tx.send(Heard::Opened);
                }
                let text = String::from_utf8_lossy(&event);
                if text.contains("event: change") && text.contains("\"kind\":\"note_added\"") {
                    let _ = tx.send(Heard::Note(notes, at));
                    notes += 1;
                }
            }
        }
        Err::<(), String>("the stream ended".to_string())
    }
    .await;
    if let Err(e) = result {
        let _ = tx.send(Heard::Failed(e));
    }
}

// ---------------------------------------------------------------------------------------------
// The peers.

/// Serves the recorded feed pages in order, whatever is asked.
struct FeedPeer;

impl FeedPeer {
    async fn start(pages: Vec<Bytes>) -> Result<Endpoint, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("peer: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("peer: {e}"))?;
        let pages = Arc::new(pages);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let pages = pages.clone();
                let next = Arc::new(Mutex::new(0usize));
                tokio::spawn(async move {
                    let service = service_fn(move |_req: hyper::Request<hyper::body::Incoming>| {
                        let (pages, next) = (pages.clone(), next.clone());
                        async move {
                            let body = {
                                let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                                let body = pages.get(*n % pages.len().max(1)).cloned().unwrap_or_default();
                                *n += 1;
                                body
                            };
                            let mut res = hyper::Response::new(Full::new(body));
                            res.headers_mut().insert(
                                hyper::header::CONTENT_TYPE,
                                hyper::header::HeaderValue::from_static("application/json"),
                            );
                            Ok::<_, Infallible>(res)
                        }
                    });
                    let _ = server_http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Endpoint::parse(&format!("http://{addr}")).await
    }
}

/// Holds event-stream connections; a POST writes one event, the same bytes, to each of them.
struct FanoutPeer {
    endpoint: Endpoint,
}

type Subscribers = Arc<Mutex<Vec<mpsc::Sender<Bytes>>>>;

/// A response body fed by a channel, one data frame per message.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }
}

type PeerBody = http_body_util::Either<ChannelBody, Full<Bytes>>;

impl FanoutPeer {
    async fn start() -> Result<FanoutPeer, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("peer: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("peer: {e}"))?;
        let subscribers: Subscribers = Arc::new(Mutex::new(Vec::new()));
        let seq = Arc::new(Mutex::new(0u64));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let (subscribers, seq) = (subscribers.clone(), seq.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (subscribers, seq) = (subscribers.clone(), seq.clone());
                        async move {
                            let mut subs = subscribers.lock().unwrap_or_else(|e| e.into_inner());
                            let res: hyper::Response<PeerBody> = if req.method() == hyper::Method::POST {
                                subs.retain(|s| !s.is_closed());
                                let n = {
                                    let mut s = seq.lock().unwrap_or_else(|e| e.into_inner());
                                    *s += 1;
                                    *s
                                };
                                let item = json!({
                                    "cursor": format!("Yy4wLj{n:08}"),
                                    "kind": "note_added",
                                    "patient_id": "00000000-0000-4000-8000-000000000000",
                                    "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                                });
                                let event = Bytes::from(format!(
                                    "id: {}\nevent: change\ndata: {item}\n\n",
                                    item["cursor"].as_str().unwrap_or_default()
                                ));
                                for s in subs.iter() {
                                    let _ = s.try_send(event.clone());
                                }
                                let mut res =
                                    hyper::Response::new(PeerBody::Right(Full::new(Bytes::from_static(b"{}"))));
                                *res.status_mut() = hyper::StatusCode::CREATED;
                                res
                            } else {
                                let (tx, rx) = mpsc::channel(64);
                                let _ = tx.try_send(Bytes::from_static(b"retry: 3000\n: connected\n\n"));
                                subs.push(tx);
                                let mut res = hyper::Response::new(PeerBody::Left(ChannelBody(rx)));
                                res.headers_mut().insert(
                                    hyper::header::CONTENT_TYPE,
                                    hyper::header::HeaderValue::from_static("text/event-stream"),
                                );
                                res
                            };
                            Ok::<_, Infallible>(res)
                        }
                    });
                    let _ = server_http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(FanoutPeer { endpoint: Endpoint::parse(&format!("http://{addr}")).await? })
    }

    async fn publish(conn: &mut Conn) -> Result<(), String> {
        let res = conn
            .send(&Request {
                method: "POST",
                path: "/publish",
                token: None,
                body: Some(b"{}"),
                content_type: "application/json",
                headers: &[],
            })
            .await?;
        if res.status != 201 {
            return Err(format!("peer publish answered {}", res.status));
        }
        Ok(())
    }
}
