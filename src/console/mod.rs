//! The console: server-rendered pages for people, served by the same binary as the API and
//! built on the same operations and policy (the domain functions, `access`, the audit trail) —
//! never on the HTTP API itself. Pages are askama templates compiled into the binary; the one
//! stylesheet is embedded too; no script runs anywhere (charts are SVG drawn on the server).
//!
//! A browser session is an ordinary session (the same sign-in, throttle and TOTP check as
//! `POST /auth/login`) carried in an `HttpOnly`, `SameSite=Strict` cookie; every form carries a
//! token derived from that cookie (see [`session`]).

pub mod chart;
pub mod handlers;
pub mod pages;
pub mod qr;
pub mod session;
pub mod text;
pub mod views;

use std::sync::LazyLock;

use crate::docs::Asset;

/// The paths whose answers are pages for people: the console's own and the links the e-mails
/// carry. Whatever refuses a request on one of them before a handler runs (a NUL in the query,
/// a wrong method, a body too large) answers a page there too, never problem+json.
pub fn is_page_path(path: &str) -> bool {
    path == "/console"
        || path.starts_with("/console/")
        || ["/flags/", "/patients/", "/discharge-cases/", "/tasks/"].iter().any(|p| path.starts_with(p))
        || path == "/me/tasks"
        || path == "/password-reset"
        || path == "/care-team-invitations"
        || path == "/participant-invitations"
}

/// The console's stylesheet, built into the binary.
pub static CONSOLE_CSS: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_bytes!("assets/console.css"), "text/css; charset=utf-8"));

/// The policy of every console answer: nothing but this server's own stylesheet, forms posting
/// back here, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; \
form-action 'self'; base-uri 'none'";
