//! The console's routes. Each answers a page or a redirect, never problem+json: a refusal is a
//! page too, and a patient the reader may not see answers the same 404 page as one that does not
//! exist. Every answer carries the console's security headers (`session::html`, `redirect`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::pages::{self, Message, SignIn};
use super::session::{self, PRE_COOKIE, SESSION_COOKIE};
use super::{text, views, CONSOLE_CSS};
use crate::api::Id;
use crate::auth::sign_in::{self, Credentials};
use crate::auth::tokens;
use crate::error::{AppError, Lang};
use crate::state::AppState;

fn message(lang: Lang, status: StatusCode, title: &'static str, body: &'static str) -> HttpResponse {
    let t = text::texts(lang);
    match pages::render(&Message { t, title, body }) {
        Ok(html) => session::html(status, html, vec![]),
        Err(_) => session::html(status, title.to_string(), vec![]),
    }
}

/// The one 404 page: the same bytes for a patient outside the reader's scope and one that
/// does not exist.
fn not_found(lang: Lang) -> HttpResponse {
    let t = text::texts(lang);
    message(lang, StatusCode::NOT_FOUND, t.not_found_title, t.not_found_body)
}

fn forbidden(lang: Lang) -> HttpResponse {
    let t = text::texts(lang);
    message(lang, StatusCode::FORBIDDEN, t.forbidden_title, t.forbidden_body)
}

/// A failure as a page: a lost session leads to sign-in and back here.
fn failure(req: &HttpRequest, lang: Lang, err: AppError) -> HttpResponse {
    let t = text::texts(lang);
    match err.status() {
        StatusCode::UNAUTHORIZED => session::to_sign_in(&session::here(req)),
        StatusCode::NOT_FOUND => not_found(lang),
        StatusCode::FORBIDDEN => forbidden(lang),
        s if s.is_client_error() => message(lang, s, t.error_title, t.error_body),
        _ => {
            tracing::error!(error = ?err, "console page failed");
            message(lang, StatusCode::INTERNAL_SERVER_ERROR, t.error_title, t.error_body)
        }
    }
}

fn query<T: for<'de> Deserialize<'de> + Default>(req: &HttpRequest) -> T {
    serde_urlencoded::from_str(req.query_string()).unwrap_or_default()
}

fn form<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Option<T> {
    serde_urlencoded::from_bytes(body).ok()
}

#[derive(Deserialize, Default)]
struct NextQuery {
    next: Option<String>,
}

fn sign_in_page(
    state: &AppState,
    lang: Lang,
    status: StatusCode,
    next: &str,
    email: String,
    message: Option<&'static str>,
) -> HttpResponse {
    let pre = session::new_pre_value();
    let page = SignIn { t: text::texts(lang), csrf: session::csrf_of(&pre), next: next.to_string(), email, message };
    match pages::render(&page) {
        Ok(html) => session::html(status, html, vec![session::cookie(&state.config, PRE_COOKIE, pre, 3600)]),
        Err(_) => message_fallback(lang),
    }
}

fn message_fallback(lang: Lang) -> HttpResponse {
    let t = text::texts(lang);
    message(lang, StatusCode::INTERNAL_SERVER_ERROR, t.error_title, t.error_body)
}

/// `GET /console/sign-in`: the sign-in form, leading back to `next` (a path of this site).
pub async fn sign_in_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let q: NextQuery = query(&req);
    let next = session::safe_return(q.next.as_deref());
    sign_in_page(&state, session::lang(&req), StatusCode::OK, &next, String::new(), None)
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    totp_code: String,
}

/// `POST /console/sign-in`: the same sign-in, throttle and second factor as `POST /auth/login`;
/// a session cookie on success.
pub async fn sign_in(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = form::<SignInForm>(&body) else { return forbidden(lang) };
    if !session::csrf_ok(&req, PRE_COOKIE, &f.csrf) {
        return forbidden(lang);
    }
    let next = session::safe_return(f.next.as_deref());
    let t = text::texts(lang);
    let code = f.totp_code.trim().to_string();
    let credentials =
        Credentials { email: f.email.clone(), password: f.password, totp_code: (!code.is_empty()).then_some(code) };
    match sign_in::sign_in(&state, crate::auth::client_ip(&req), credentials).await {
        Ok(signed_in) => match state.keys.issue_browser(&signed_in.user_id, &signed_in.session_id) {
            Ok(value) => session::redirect(
                &next,
                vec![
                    session::cookie(&state.config, SESSION_COOKIE, value, state.keys.session_ttl_secs),
                    session::removal(&state.config, PRE_COOKIE),
                ],
            ),
            Err(e) => failure(&req, lang, e),
        },
        Err(e) if e.status() == StatusCode::TOO_MANY_REQUESTS => {
            sign_in_page(&state, lang, StatusCode::TOO_MANY_REQUESTS, &next, f.email, Some(t.locked))
        }
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
            sign_in_page(&state, lang, StatusCode::UNAUTHORIZED, &next, f.email, Some(t.sign_in_failed))
        }
        Err(e) => failure(&req, lang, e),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /console/sign-out`: ends the session, as `POST /auth/logout`.
pub async fn sign_out(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = form::<CsrfForm>(&body) else { return forbidden(lang) };
    if !session::csrf_ok(&req, SESSION_COOKIE, &f.csrf) {
        return forbidden(lang);
    }
    if let Some(bearer) = session::bearer(&req, &state.keys) {
        let ended = state
            .db
            .run(move |conn| {
                let me = bearer.user_allowing_missing_second_factor(conn)?;
                tokens::revoke_session(conn, &me.session_id, "logout")
            })
            .await;
        if let Err(e) = ended {
            if e.status() != StatusCode::UNAUTHORIZED {
                return failure(&req, lang, e);
            }
        }
    }
    session::redirect("/console/sign-in", vec![session::removal(&state.config, SESSION_COOKIE)])
}

/// `GET /console`: マイページ.
pub async fn my_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(&session::here(&req)) };
    let csrf = session::csrf(&req);
    let page = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            views::my_page(conn, &me, lang, csrf)
        })
        .await;
    match page.and_then(|p| pages::render(&p)) {
        Ok(html) => session::html(StatusCode::OK, html, vec![]),
        Err(e) => failure(&req, lang, e),
    }
}

#[derive(Deserialize, Default)]
struct CursorQuery {
    cursor: Option<String>,
}

/// `GET /console/patients/{id}`: the patient page.
pub async fn patient(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(&session::here(&req)) };
    let id = Id::parse(&path.into_inner()).into_string();
    let cursor = query::<CursorQuery>(&req).cursor;
    let csrf = session::csrf(&req);
    let page = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            views::patient_page(conn, &me, lang, csrf, &id, cursor.as_deref())
        })
        .await;
    match page.and_then(|p| pages::render(&p)) {
        Ok(html) => session::html(StatusCode::OK, html, vec![]),
        Err(e) => failure(&req, lang, e),
    }
}

/// `POST /console/flags/{id}/acknowledge`: acknowledges the flag with an optional note, then
/// back to the patient page.
pub async fn acknowledge_flag(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = form::<CsrfForm>(&body) else { return forbidden(lang) };
    if !session::csrf_ok(&req, SESSION_COOKIE, &f.csrf) {
        return forbidden(lang);
    }
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in("/console") };
    let id = Id::parse(&path.into_inner()).into_string();
    let note = f.note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    if note.as_ref().is_some_and(|n| n.chars().count() > 2000 || n.contains('\0')) {
        let t = text::texts(lang);
        return message(lang, StatusCode::UNPROCESSABLE_ENTITY, t.error_title, t.error_body);
    }
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            views::acknowledge_flag(conn, &me, &id, note.as_deref())
        })
        .await;
    match done {
        Ok(patient_id) => session::redirect(&format!("/console/patients/{patient_id}"), vec![]),
        Err(e) => failure(&req, lang, e),
    }
}

/// `GET /console/flags/{id}`: the flag on its patient's page.
pub async fn flag(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(&session::here(&req)) };
    let id = Id::parse(&path.into_inner()).into_string();
    let flag_id = id.clone();
    let found = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            views::patient_of_flag(conn, &me, &flag_id)
        })
        .await;
    match found {
        Ok(patient_id) => session::redirect(&format!("/console/patients/{patient_id}#flag-{id}"), vec![]),
        Err(e) => failure(&req, lang, e),
    }
}

/// `GET /flags/{id}`, the link of a flag's e-mail: its console page.
pub async fn flag_link(path: web::Path<String>) -> HttpResponse {
    let id = Id::parse(&path.into_inner()).into_string();
    session::redirect(&format!("/console/flags/{id}"), vec![])
}

/// `GET /patients/{id}` (and the e-mails' `/patients/{id}/…` links): the patient's console page.
pub async fn patient_link(path: web::Path<String>) -> HttpResponse {
    let id = Id::parse(&path.into_inner()).into_string();
    session::redirect(&format!("/console/patients/{id}"), vec![])
}

/// `GET /console/assets/console.css`.
pub async fn stylesheet(req: HttpRequest) -> HttpResponse {
    crate::docs::handlers::asset(&req, &CONSOLE_CSS)
}

/// `GET /me/tasks`, the link of the overdue digest: マイページ, which lists them.
pub async fn my_page_link() -> HttpResponse {
    session::redirect(session::HOME, vec![])
}
