//! The console's browser session and its safeguards: the session cookie, the token every form
//! carries, the return path after sign-in, and the headers of every answer.
//!
//! The session cookie holds a signed token naming an ordinary session (`tokens::issue_browser`,
//! never accepted as a bearer token); the session is checked in the database on every request,
//! so signing out, a password change or a deactivation end it at once. A form's token is a hash
//! of the cookie it was served with: a page of another site can neither read the cookie nor
//! compute the token. Before sign-in, a random cookie plays the session's part for the sign-in
//! form itself.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use subtle::ConstantTimeEq;

use crate::auth::tokens::{random_token, sha256_hex, TokenKeys};
use crate::auth::Bearer;
use crate::config::{Config, Environment};
use crate::error::Lang;

/// The session cookie.
pub const SESSION_COOKIE: &str = "renkei_session";
/// The sign-in form's own cookie, before there is a session.
pub const PRE_COOKIE: &str = "renkei_signin";
/// Where sign-in leads when no return path was given.
pub const HOME: &str = "/console";

/// The reader's language: Japanese unless the browser prefers English.
pub fn lang(req: &HttpRequest) -> Lang {
    Lang::from_accept_language(req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
}

/// The session the request's cookie names, verified by signature (not yet in the database).
pub fn bearer(req: &HttpRequest, keys: &TokenKeys) -> Option<Bearer> {
    let cookie = req.cookie(SESSION_COOKIE)?;
    let claims = keys.verify_browser(cookie.value()).ok()?;
    Some(Bearer { user_id: claims.sub, session_id: claims.sid, client_ip: crate::auth::client_ip(req) })
}

/// The form token of a cookie value.
pub fn csrf_of(cookie_value: &str) -> String {
    sha256_hex(&format!("console-form:{cookie_value}"))
}

/// The form token of the request's session, for the forms of the page it gets.
pub fn csrf(req: &HttpRequest) -> String {
    req.cookie(SESSION_COOKIE).map(|c| csrf_of(c.value())).unwrap_or_default()
}

/// Whether a submitted form token matches the cookie `name` of the request.
pub fn csrf_ok(req: &HttpRequest, name: &str, submitted: &str) -> bool {
    let Some(cookie) = req.cookie(name) else { return false };
    let expected = csrf_of(cookie.value());
    !submitted.is_empty() && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
}

/// A fresh value for the sign-in form's cookie.
pub fn new_pre_value() -> String {
    random_token(32)
}

fn secure(config: &Config) -> bool {
    config.env != Environment::Development
}

/// A cookie of the console: `HttpOnly`, `SameSite=Strict`, `Secure` outside development.
pub fn cookie(config: &Config, name: &'static str, value: String, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure(config))
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_secs))
        .finish()
}

/// A cookie that removes `name` from the browser.
pub fn removal(config: &Config, name: &'static str) -> Cookie<'static> {
    cookie(config, name, String::new(), 0)
}

/// A return path a sign-in may lead to: a path on this site (`/…`, not `//…` nor `/\…`), with
/// nothing that a browser would read as another host or a scheme.
pub fn safe_return(next: Option<&str>) -> String {
    let Some(next) = next else { return HOME.to_string() };
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 512
        && next.chars().all(|c| c.is_ascii_graphic() && c != '\\');
    if ok {
        next.to_string()
    } else {
        HOME.to_string()
    }
}

/// Percent-encodes a return path for a query string.
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The request's own path and query, as a return path.
pub fn here(req: &HttpRequest) -> String {
    match req.query_string() {
        "" => req.path().to_string(),
        q => format!("{}?{q}", req.path()),
    }
}

/// The security headers of every console answer.
fn guarded(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CONTENT_SECURITY_POLICY, super::CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    b
}

/// The console's security headers on an answer built elsewhere (a download).
pub fn guard(res: &mut HttpResponse) {
    let headers = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, super::CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
}

/// A page.
pub fn html(status: StatusCode, body: String, cookies: Vec<Cookie<'static>>) -> HttpResponse {
    let mut b = guarded(status);
    b.insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"));
    for c in cookies {
        b.cookie(c);
    }
    b.body(body)
}

/// A `303 See Other` to a path of this site.
pub fn redirect(to: &str, cookies: Vec<Cookie<'static>>) -> HttpResponse {
    let mut b = guarded(StatusCode::SEE_OTHER);
    b.insert_header((header::LOCATION, to.to_string()));
    for c in cookies {
        b.cookie(c);
    }
    b.finish()
}

/// The sign-in page, asked to lead back to `next`.
pub fn to_sign_in(next: &str) -> HttpResponse {
    redirect(&format!("/console/sign-in?next={}", encode_query_value(next)), vec![])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_site_paths_are_return_paths() {
        assert_eq!(safe_return(Some("/console/patients/x?cursor=a")), "/console/patients/x?cursor=a");
        for bad in ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)", "/a b", ""] {
            assert_eq!(safe_return(Some(bad)), HOME, "{bad}");
        }
        assert_eq!(safe_return(None), HOME);
    }
}
