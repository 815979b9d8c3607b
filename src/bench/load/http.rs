//! A minimal HTTP/1.1 keep-alive client for the load driver: one TCP connection, one request at
//! a time. It understands just what the servers under test send (a Content-Length body, or a
//! chunked one), so the driver costs little CPU next to the server on a small machine.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where the server is: the socket address, the Host header and a path prefix (a FHIR base such
/// as `http://127.0.0.1:8081/fhir` puts `/fhir` before every path).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub host: String,
    pub prefix: String,
}

impl Endpoint {
    pub async fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("only http:// URLs are supported (loopback benchmark), not {url}"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let with_port = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|e| format!("cannot resolve {authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("{authority} resolves to no address"))?;
        Ok(Endpoint { addr, host: authority.to_string(), prefix: path.trim_end_matches('/').to_string() })
    }
}

pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub token: Option<&'a str>,
    pub body: Option<&'a [u8]>,
    pub content_type: &'a str,
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The start of the body, for error reports.
    pub fn snippet(&self) -> String {
        let end = self.body.len().min(400);
        String::from_utf8_lossy(&self.body[..end]).into_owned()
    }
}

pub struct Conn {
    endpoint: Endpoint,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Conn {
    pub async fn open(endpoint: &Endpoint) -> Result<Conn, String> {
        let mut conn =
            Conn { endpoint: endpoint.clone(), stream: None, buf: Vec::with_capacity(16 * 1024), out: Vec::new() };
        conn.connect().await?;
        Ok(conn)
    }

    async fn connect(&mut self) -> Result<(), String> {
        let stream = TcpStream::connect(self.endpoint.addr)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.endpoint.addr))?;
        // Requests are written whole; Nagle would only add delay to each one.
        let _ = stream.set_nodelay(true);
        self.stream = Some(stream);
        self.buf.clear();
        Ok(())
    }

    pub async fn send(&mut self, req: &Request<'_>) -> Result<Response, String> {
        self.out.clear();
        let body = req.body.unwrap_or_default();
        let head = format!(
            "{} {}{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: renkei-bench\r\nAccept: {}\r\n",
            req.method, self.endpoint.prefix, req.path, self.endpoint.host, req.content_type
        );
        self.out.extend_from_slice(head.as_bytes());
        if let Some(t) = req.token {
            self.out.extend_from_slice(format!("Authorization: Bearer {t}\r\n").as_bytes());
        }
        if req.body.is_some() {
            self.out.extend_from_slice(
                format!("Content-Type: {}\r\nContent-Length: {}\r\n", req.content_type, body.len()).as_bytes(),
            );
        }
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(body);

        // A kept-alive connection the server has since closed fails before any answer arrives:
        // open a new one and send again, once.
        let reused = self.stream.is_some();
        match self.exchange().await {
            Ok(r) => Ok(r),
            Err(Failure::BeforeAnswer(_)) if reused => {
                self.connect().await?;
                self.exchange().await.map_err(Failure::into_message)
            }
            Err(f) => Err(f.into_message()),
        }
    }

    async fn exchange(&mut self) -> Result<Response, Failure> {
        if self.stream.is_none() {
            self.connect().await.map_err(Failure::BeforeAnswer)?;
        }
        let result = self.exchange_inner().await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange_inner(&mut self) -> Result<Response, Failure> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(Failure::BeforeAnswer("not connected".into()));
        };
        stream.write_all(&self.out).await.map_err(|e| Failure::BeforeAnswer(format!("write: {e}")))?;
        self.buf.clear();
        let header_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > 64 * 1024 {
                return Err(Failure::After("response headers longer than 64 KiB".into()));
            }
            let n = read_more(stream, &mut self.buf).await?;
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    Failure::BeforeAnswer("connection closed".into())
                } else {
                    Failure::After("connection closed inside the headers".into())
                });
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..header_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| Failure::After(format!("bad status line in {head:?}")))?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut close = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        let body = if chunked {
            read_chunked(stream, &mut self.buf, header_end).await?
        } else {
            let length = length.unwrap_or(0);
            while self.buf.len() < header_end + length {
                if read_more(stream, &mut self.buf).await? == 0 {
                    return Err(Failure::After("connection closed inside the body".into()));
                }
            }
            self.buf[header_end..header_end + length].to_vec()
        };
        if close {
            self.stream = None;
        }
        Ok(Response { status, body })
    }
}

enum Failure {
    /// Nothing of an answer was received: safe to send again on a new connection.
    BeforeAnswer(String),
    After(String),
}

impl Failure {
    fn into_message(self) -> String {
        match self {
            Failure::BeforeAnswer(m) | Failure::After(m) => m,
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, Failure> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await.map_err(|e| {
        if buf.is_empty() {
            Failure::BeforeAnswer(format!("read: {e}"))
        } else {
            Failure::After(format!("read: {e}"))
        }
    })?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>, start: usize) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    let mut pos = start;
    loop {
        let line_end = loop {
            if let Some(i) = find(&buf[pos..], b"\r\n") {
                break pos + i;
            }
            if read_more(stream, buf).await? == 0 {
                return Err(Failure::After("connection closed inside a chunk header".into()));
            }
        };
        let size_text = String::from_utf8_lossy(&buf[pos..line_end]).into_owned();
        let size_hex = size_text.split(';').next().unwrap_or_default().trim().to_string();
        let size = usize::from_str_radix(&size_hex, 16)
            .map_err(|_| Failure::After(format!("bad chunk size {size_text:?}")))?;
        pos = line_end + 2;
        // Chunk data and its CRLF; the last chunk is followed by (no trailers and) a CRLF.
        while buf.len() < pos + size + 2 {
            if read_more(stream, buf).await? == 0 {
                return Err(Failure::After("connection closed inside a chunk".into()));
            }
        }
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
