//! A real SMTP server for the mail tests: plain SMTP on 127.0.0.1, the protocol handled by the
//! `mailin` crate's state machine, the network by tokio. It keeps every message exactly as it
//! was received (envelope and raw text), can refuse chosen recipients with a permanent 550, and
//! can be started late on a port chosen in advance, to play a mail server that was down. It can
//! also play a relay that went silent (connections accepted, never answered) and a slow one
//! (the reply to a message held back).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use mailin::{Action, Handler, Response, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub raw: String,
    pub at: Instant,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    rejected: Mutex<HashSet<String>>,
    arrived: Notify,
    /// New connections are accepted and never answered.
    silent: AtomicBool,
    /// Silent connections the client has not closed yet.
    silent_open: AtomicUsize,
    /// Silent connections accepted so far.
    silent_accepted: AtomicUsize,
    /// How long the reply to each message (after its final `.`) is held back.
    reply_delay: Mutex<Duration>,
}

#[derive(Clone)]
pub struct SmtpServer {
    pub port: u16,
    shared: Arc<Shared>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

/// A port nothing listens on right now (for a server that is "down" until started on it).
pub fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind the test SMTP server");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else { continue };
                let shared = accepting.clone();
                if shared.silent.load(Ordering::SeqCst) {
                    tokio::spawn(hold_silently(stream, shared));
                    continue;
                }
                tokio::spawn(async move {
                    let _ = serve_connection(stream, peer.ip(), shared).await;
                });
            }
        });
        SmtpServer { port, shared, task: Arc::new(task) }
    }

    /// The `RENKEI_SMTP_URL` of this server: plain SMTP to a local host.
    pub fn url(&self) -> String {
        url(self.port)
    }

    /// Refuses this recipient from now on with `550 5.1.1` (a permanent failure).
    pub fn reject(&self, address: &str) {
        self.shared.rejected.lock().unwrap().insert(address.to_lowercase());
    }

    pub fn accept(&self, address: &str) {
        self.shared.rejected.lock().unwrap().remove(&address.to_lowercase());
    }

    /// From now on, new connections are accepted and never answered (no greeting, no reply);
    /// `false` makes new ones work again. Connections already silent stay silent.
    pub fn set_silent(&self, silent: bool) {
        self.shared.silent.store(silent, Ordering::SeqCst);
    }

    /// (silent connections accepted, of them still open because the client has not closed them)
    pub fn silent_connections(&self) -> (usize, usize) {
        (self.shared.silent_accepted.load(Ordering::SeqCst), self.shared.silent_open.load(Ordering::SeqCst))
    }

    /// Holds back the reply to each message (the message is already received) for this long.
    pub fn delay_replies(&self, delay: Duration) {
        *self.shared.reply_delay.lock().unwrap() = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages have arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the SMTP server received {} of {n} messages within {timeout:?}", received.len());
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), arrived).await;
        }
    }
}

pub fn url(port: u16) -> String {
    format!("smtp://127.0.0.1:{port}")
}

/// Keeps a connection open without ever writing to it, until the client closes it.
async fn hold_silently(mut stream: TcpStream, shared: Arc<Shared>) {
    shared.silent_accepted.fetch_add(1, Ordering::SeqCst);
    shared.silent_open.fetch_add(1, Ordering::SeqCst);
    let mut buf = [0u8; 512];
    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    shared.silent_open.fetch_sub(1, Ordering::SeqCst);
}

/// Collects one connection's messages.
struct Collector {
    shared: Arc<Shared>,
    /// Set when a message has just ended, so its reply can be held back.
    ended: Arc<AtomicBool>,
    mail_from: String,
    rcpt_to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Collector {
    fn rcpt(&mut self, to: &str) -> Response {
        if self.shared.rejected.lock().unwrap().contains(&to.to_lowercase()) {
            Response::custom(550, format!("5.1.1 <{to}>: Recipient address rejected: mailbox unavailable"))
        } else {
            mailin::response::OK
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.mail_from = from.to_string();
        self.rcpt_to = to.to_vec();
        self.data.clear();
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let message = Received {
            mail_from: std::mem::take(&mut self.mail_from),
            rcpt_to: std::mem::take(&mut self.rcpt_to),
            raw: String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned(),
            at: Instant::now(),
        };
        self.shared.received.lock().unwrap().push(message);
        self.shared.arrived.notify_waiters();
        self.ended.store(true, Ordering::SeqCst);
        mailin::response::OK
    }
}

async fn serve_connection(stream: TcpStream, peer: IpAddr, shared: Arc<Shared>) -> std::io::Result<()> {
    // Replies are small writes: without this, delayed acknowledgements add ~40 ms to each.
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let ended = Arc::new(AtomicBool::new(false));
    let collector = Collector {
        shared: shared.clone(),
        ended: ended.clone(),
        mail_from: String::new(),
        rcpt_to: Vec::new(),
        data: Vec::new(),
    };
    let mut session = SessionBuilder::new("smtp.test.invalid").build(peer, collector);
    writer.write_all(&session.greeting().buffer()?).await?;
    let mut line = Vec::with_capacity(128);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let response = session.process(&line);
        if ended.swap(false, Ordering::SeqCst) {
            let delay = *shared.reply_delay.lock().unwrap();
            tokio::time::sleep(delay).await;
        }
        match response.action {
            Action::Reply => writer.write_all(&response.buffer()?).await?,
            Action::Close => {
                writer.write_all(&response.buffer()?).await?;
                return Ok(());
            }
            // No TLS here: this server plays a relay on the same host.
            Action::UpgradeTls => return Ok(()),
            Action::NoReply => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a received message.

impl Received {
    /// The header section, unfolded: `(name, value)` in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or_default();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push_str(line);
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.to_string(), value.trim_start().to_string()));
            } else {
                headers.push((line.to_string(), String::new()));
            }
        }
        headers
    }

    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers().into_iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v).collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.header_all(name).into_iter().next()
    }

    pub fn message_id(&self) -> String {
        self.header("Message-ID").expect("Message-ID header")
    }

    /// The subject with RFC 2047 encoded words decoded.
    pub fn subject(&self) -> String {
        decode_words(&self.header("Subject").expect("Subject header"))
    }

    /// The text body, decoded from base64 or quoted-printable, with line ends as `\n`.
    pub fn body(&self) -> String {
        self.raw_body().replace("\r\n", "\n")
    }

    fn raw_body(&self) -> String {
        let body = self.raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        let encoding = self.header("Content-Transfer-Encoding").unwrap_or_default().to_lowercase();
        match encoding.as_str() {
            "base64" => {
                let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                let bytes = base64::engine::general_purpose::STANDARD.decode(compact).expect("base64 body");
                String::from_utf8(bytes).expect("UTF-8 body")
            }
            "quoted-printable" => String::from_utf8(decode_qp(body.as_bytes(), false)).expect("UTF-8 body"),
            _ => body.to_string(),
        }
    }
}

/// Decodes `=?charset?b|q?…?=` words (UTF-8 only); whitespace between two words is dropped.
pub fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        let word = &rest[start + 2..];
        let parts: Vec<&str> = word.splitn(3, '?').collect();
        let (Some(encoding), Some(tail)) = (parts.get(1), parts.get(2)) else { break };
        let Some(end) = tail.find("?=") else { break };
        let text = &tail[..end];
        let bytes = if encoding.eq_ignore_ascii_case("b") {
            base64::engine::general_purpose::STANDARD.decode(text).expect("encoded word")
        } else {
            decode_qp(text.as_bytes(), true)
        };
        out.push_str(&String::from_utf8(bytes).expect("UTF-8 encoded word"));
        rest = &tail[end + 2..];
        last_was_word = true;
    }
    out.push_str(rest);
    out
}

fn decode_qp(input: &[u8], underscore_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'=' if input.get(i + 1) == Some(&b'\r') && input.get(i + 2) == Some(&b'\n') => i += 3,
            b'=' if i + 2 < input.len() => {
                let hex = std::str::from_utf8(&input[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'=');
                        i += 1;
                    }
                }
            }
            b'_' if underscore_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}
