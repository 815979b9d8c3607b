//! The load driver's HTTP/1.1 client: one kept-alive connection per virtual user, one request at
//! a time, on hyper's low-level connection API (no pool, no redirects, no TLS), so the driver
//! costs little CPU next to the server on a small machine.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
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
    /// Further headers, set after the defaults (so `accept` here replaces the default).
    pub headers: &'a [(&'static str, &'a str)],
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

/// Posts a visit note with `text` for the patient as the holder of `token`; answers its id.
pub async fn post_note(conn: &mut Conn, token: &str, patient_id: &str, text: &str) -> Result<String, String> {
    let body = serde_json::json!({
        "kind": "visit",
        "occurred_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "text": text,
    })
    .to_string();
    let res = conn
        .send(&Request {
            method: "POST",
            path: &format!("/api/v1/patients/{patient_id}/notes"),
            token: Some(token),
            body: Some(body.as_bytes()),
            content_type: "application/json",
            headers: &[],
        })
        .await?;
    if res.status != 201 {
        return Err(format!("note POST answered {}: {}", res.status, res.snippet()));
    }
    let v = res.json().unwrap_or_default();
    v["id"].as_str().map(str::to_string).ok_or_else(|| "note POST: no id".into())
}

/// Signs `email` in with `password`: the access token and how long it lives.
pub async fn sign_in(conn: &mut Conn, email: &str, password: &str) -> Result<(String, std::time::Duration), String> {
    let body = serde_json::json!({ "email": email, "password": password }).to_string();
    let res = conn
        .send(&Request {
            method: "POST",
            path: "/api/v1/auth/login",
            token: None,
            body: Some(body.as_bytes()),
            content_type: "application/json",
            headers: &[],
        })
        .await?;
    if !res.ok() {
        return Err(format!("sign-in of {email} answered {}: {}", res.status, res.snippet()));
    }
    let v = res.json().unwrap_or_default();
    let token = v["access_token"].as_str().ok_or_else(|| format!("sign-in of {email}: no access_token"))?;
    Ok((token.to_string(), std::time::Duration::from_secs(v["expires_in"].as_u64().unwrap_or(900))))
}

pub struct Conn {
    endpoint: Endpoint,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub async fn open(endpoint: &Endpoint) -> Result<Conn, String> {
        let mut conn = Conn { endpoint: endpoint.clone(), sender: None };
        conn.connect().await?;
        Ok(conn)
    }

    async fn connect(&mut self) -> Result<(), String> {
        self.sender = None;
        let stream = TcpStream::connect(self.endpoint.addr)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.endpoint.addr))?;
        // Requests are written whole; Nagle would only add delay to each one.
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("HTTP handshake: {e}"))?;
        // The connection task ends when the server closes it or the sender is dropped.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    pub async fn send(&mut self, req: &Request<'_>) -> Result<Response, String> {
        // A kept-alive connection the server has since closed fails before any answer arrives:
        // open a new one and send again, once.
        let reused = self.sender.is_some();
        match self.exchange(req).await {
            Ok(r) => Ok(r),
            Err(Failure::BeforeAnswer(_)) if reused => {
                self.connect().await?;
                self.exchange(req).await.map_err(Failure::into_message)
            }
            Err(f) => Err(f.into_message()),
        }
    }

    async fn exchange(&mut self, req: &Request<'_>) -> Result<Response, Failure> {
        if self.sender.is_none() {
            self.connect().await.map_err(Failure::BeforeAnswer)?;
        }
        let request = self.build(req).map_err(Failure::After)?;
        let Some(sender) = self.sender.as_mut() else {
            return Err(Failure::BeforeAnswer("not connected".into()));
        };
        let result = async {
            sender.ready().await.map_err(|e| Failure::BeforeAnswer(format!("connection: {e}")))?;
            let response = sender.send_request(request).await.map_err(|e| {
                // Closed or cancelled before the server answered anything: safe to send again.
                if e.is_canceled() || e.is_closed() || e.is_incomplete_message() {
                    Failure::BeforeAnswer(format!("send: {e}"))
                } else {
                    Failure::After(format!("send: {e}"))
                }
            })?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.map_err(|e| Failure::After(format!("body: {e}")))?;
            Ok(Response { status, body: body.to_bytes().to_vec() })
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    fn build(&self, req: &Request<'_>) -> Result<hyper::Request<Full<Bytes>>, String> {
        let header = |v: &str| HeaderValue::from_str(v).map_err(|e| format!("header value {v:?}: {e}"));
        let mut builder = hyper::Request::builder()
            .method(req.method)
            .uri(format!("{}{}", self.endpoint.prefix, req.path))
            .header(HOST, header(&self.endpoint.host)?)
            .header(USER_AGENT, HeaderValue::from_static("renkei-bench"))
            .header(ACCEPT, header(req.content_type)?);
        if let Some(t) = req.token {
            builder = builder.header(AUTHORIZATION, header(&format!("Bearer {t}"))?);
        }
        for (name, value) in req.headers {
            let Some(headers) = builder.headers_mut() else { break };
            headers.insert(*name, header(value)?);
        }
        let body = match req.body {
            Some(b) => {
                builder = builder.header(CONTENT_TYPE, header(req.content_type)?);
                Full::new(Bytes::copy_from_slice(b))
            }
            None => Full::new(Bytes::new()),
        };
        builder.body(body).map_err(|e| format!("request: {e}"))
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
