//! The console's routes. Each answers a page or a redirect, never problem+json: a refusal is a
//! page too, and a patient the reader may not see answers the same 404 page as one that does not
//! exist. Every answer carries the console's security headers (`session::html`, `redirect`).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::pages::{self, Message, SignIn};
use super::session::{self, PRE_COOKIE, SESSION_COOKIE};
use super::{text, views, CONSOLE_CSS};
use crate::api::{self, Id};
use crate::auth::enrolment;
use crate::auth::sign_in::{self, Credentials};
use crate::auth::tokens;
use crate::caseload::{self, CaseloadQuery};
use crate::discharge::TaskStatus;
use crate::error::{AppError, AppResult, Lang};
use crate::state::AppState;

fn message(lang: Lang, status: StatusCode, title: &'static str, body: impl Into<String>) -> HttpResponse {
    let t = text::texts(lang);
    match pages::render(&Message { t, title, body: body.into() }) {
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

fn refused_page(lang: Lang) -> HttpResponse {
    let t = text::texts(lang);
    message(lang, StatusCode::FORBIDDEN, t.forbidden_title, t.forbidden_body)
}

/// A failure as a page: a lost session leads to sign-in and back here.
fn failure(req: &HttpRequest, lang: Lang, err: AppError) -> HttpResponse {
    let t = text::texts(lang);
    match err.status() {
        StatusCode::UNAUTHORIZED => session::to_sign_in(&session::here(req)),
        StatusCode::NOT_FOUND => not_found(lang),
        StatusCode::FORBIDDEN => refused_page(lang),
        s if s.is_client_error() => {
            // What went wrong, as the API says it, and each field at fault.
            let mut body = err.detail_for(lang).to_string();
            for f in err.field_errors() {
                body.push(' ');
                body.push_str(f.message.get(lang));
            }
            message(lang, s, t.error_title, body)
        }
        _ => {
            tracing::error!(error = ?err, "console page failed");
            message(lang, StatusCode::INTERNAL_SERVER_ERROR, t.error_title, t.error_body)
        }
    }
}

/// A query string read as the API reads one (`api::parse_query`, naming a parameter at
/// fault), except that an empty value — a form's field left blank — counts as not given.
fn query<T: DeserializeOwned>(req: &HttpRequest) -> AppResult<T> {
    let given = form_urlencoded::parse(req.query_string().as_bytes()).filter(|(_, v)| !v.is_empty());
    api::parse_query(&form_urlencoded::Serializer::new(String::new()).extend_pairs(given).finish())
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
    let q: NextQuery = query(&req).unwrap_or_default();
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
    let Some(f) = form::<SignInForm>(&body) else { return refused_page(lang) };
    if !session::csrf_ok(&req, PRE_COOKIE, &f.csrf) {
        return refused_page(lang);
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
    let Some(f) = form::<CsrfForm>(&body) else { return refused_page(lang) };
    if !session::csrf_ok(&req, SESSION_COOKIE, &f.csrf) {
        return refused_page(lang);
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
    let cursor = match query::<CursorQuery>(&req) {
        Ok(q) => q.cursor,
        Err(e) => return failure(&req, lang, e),
    };
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
    let Some(f) = form::<CsrfForm>(&body) else { return refused_page(lang) };
    if !session::csrf_ok(&req, SESSION_COOKIE, &f.csrf) {
        return refused_page(lang);
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

/// `POST /console/flags/{id}/resolve`: closes an open flag with a note (required), as
/// `POST /flags/{id}/resolve`; back to the patient page.
pub async fn resolve_flag(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = form::<CsrfForm>(&body) else { return refused_page(lang) };
    if !session::csrf_ok(&req, SESSION_COOKIE, &f.csrf) {
        return refused_page(lang);
    }
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in("/console") };
    let id = Id::parse(&path.into_inner()).into_string();
    let note = f.note.unwrap_or_default().trim().to_string();
    let mut check = api::Check::new();
    check.text("note", &note, 2000);
    if let Err(e) = check.finish() {
        return failure(&req, lang, e);
    }
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            views::resolve_flag(conn, &me, &id, &note)
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

/// `GET /console/wards/{code}`: the ward's caseload for its coordinating physicians, with the
/// API's filters and sorts, paging, the ward's counts and the CSV download.
pub async fn ward(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(&session::here(&req)) };
    let code = path.into_inner();
    let q: CaseloadQuery = match query(&req) {
        Ok(q) => q,
        Err(e) => return failure(&req, lang, e),
    };
    let csrf = session::csrf(&req);
    let page = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            views::ward_page(conn, &me, lang, csrf, &code, q)
        })
        .await;
    match page.and_then(|p| pages::render(&p)) {
        Ok(html) => session::html(StatusCode::OK, html, vec![]),
        Err(e) => failure(&req, lang, e),
    }
}

/// `GET /console/wards/{code}/caseload.csv`: the filtered ward as the API's CSV download
/// (`GET /wards/{code}/caseload` with `Accept: text/csv`), audited the same way.
pub async fn ward_csv(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(&session::here(&req)) };
    let code = path.into_inner();
    let request = match query::<CaseloadQuery>(&req).and_then(CaseloadQuery::request) {
        Ok(r) => r,
        Err(e) => return failure(&req, lang, e),
    };
    let file = format!("caseload-{}.csv", code.chars().filter(char::is_ascii_alphanumeric).collect::<String>());
    match caseload::handlers::export(&state, bearer, code, request.filter, request.order, lang).await {
        Ok(mut res) => {
            let disposition = format!("attachment; filename=\"{file}\"");
            if let Ok(v) = header::HeaderValue::from_str(&disposition) {
                res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            session::guard(&mut res);
            res
        }
        Err(e) => failure(&req, lang, e),
    }
}

/// `GET /console/discharge-cases/{id}`: the discharge case's page.
pub async fn case(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(&session::here(&req)) };
    let id = Id::parse(&path.into_inner()).into_string();
    let csrf = session::csrf(&req);
    let page = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            views::case_page(conn, &me, lang, csrf, &id)
        })
        .await;
    match page.and_then(|p| pages::render(&p)) {
        Ok(html) => session::html(StatusCode::OK, html, vec![]),
        Err(e) => failure(&req, lang, e),
    }
}

#[derive(Deserialize)]
struct MoveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    discharged_on: String,
    #[serde(default)]
    reason: String,
}

fn invalid(field: &str, ja: &'static str, en: &'static str) -> AppError {
    AppError::field(field, "invalid", ja, en)
}

/// The version a form showed.
fn version_of(f: &MoveForm) -> Result<i32, AppError> {
    f.version.trim().parse::<i32>().map_err(|_| {
        invalid("version", "ページを開き直してからもう一度お試しください。", "Reload the page and try again.")
    })
}

/// `POST /console/tasks/{id}`: moves a task to the status chosen, at the version the page
/// showed (as `PATCH /tasks/{id}` with `If-Match`); back to the case's page.
pub async fn move_task(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = form::<MoveForm>(&body) else { return refused_page(lang) };
    if !session::csrf_ok(&req, SESSION_COOKIE, &f.csrf) {
        return refused_page(lang);
    }
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(session::HOME) };
    let id = Id::parse(&path.into_inner()).into_string();
    let expected = match version_of(&f) {
        Ok(v) => v,
        Err(e) => return failure(&req, lang, e),
    };
    let Some(status) = TaskStatus::parse(f.status.trim()) else {
        let e = invalid("status", "変更先の状態を選んでください。", "Choose the status to move to.");
        return failure(&req, lang, e);
    };
    let mailer = state.mail.clone();
    let task_id = id.clone();
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            views::move_task(conn, &me, &mailer, &task_id, expected, status)
        })
        .await;
    match done {
        Ok(case_id) => session::redirect(&format!("/console/discharge-cases/{case_id}#task-{id}"), vec![]),
        Err(e) => failure(&req, lang, e),
    }
}

/// `POST /console/discharge-cases/{id}/{move}` (`discharge`, `close`, `cancel`): the case's
/// status moves, as the API's, for the case's hospital staff; back to the case's page.
pub async fn move_case(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = form::<MoveForm>(&body) else { return refused_page(lang) };
    if !session::csrf_ok(&req, SESSION_COOKIE, &f.csrf) {
        return refused_page(lang);
    }
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(session::HOME) };
    let (id, step) = path.into_inner();
    let id = Id::parse(&id).into_string();
    let expected = match version_of(&f) {
        Ok(v) => v,
        Err(e) => return failure(&req, lang, e),
    };
    let step = match step.as_str() {
        "discharge" => match chrono::NaiveDate::parse_from_str(f.discharged_on.trim(), "%Y-%m-%d") {
            Ok(on) => views::CaseMove::Discharge(on),
            Err(_) => {
                let e = invalid("discharged_on", "退院日を入力してください。", "Enter the discharge date.");
                return failure(&req, lang, e);
            }
        },
        "close" => views::CaseMove::Close,
        "cancel" => {
            let mut check = api::Check::new();
            check.text("reason", &f.reason, 1000);
            if let Err(e) = check.finish() {
                return failure(&req, lang, e);
            }
            views::CaseMove::Cancel(f.reason.trim().to_string())
        }
        _ => return not_found(lang),
    };
    let mailer = state.mail.clone();
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            views::move_case(conn, &me, &mailer, &id, expected, step)
        })
        .await;
    match done {
        Ok(case_id) => session::redirect(&format!("/console/discharge-cases/{case_id}"), vec![]),
        Err(e) => failure(&req, lang, e),
    }
}

/// `GET /console/tasks/{id}`: the task on its case's page.
pub async fn task(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(&session::here(&req)) };
    let id = Id::parse(&path.into_inner()).into_string();
    let task_id = id.clone();
    let found = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            views::case_of_task(conn, &me, &task_id)
        })
        .await;
    match found {
        Ok(case_id) => session::redirect(&format!("/console/discharge-cases/{case_id}#task-{id}"), vec![]),
        Err(e) => failure(&req, lang, e),
    }
}

/// `GET /discharge-cases/{id}`, the link of a case's e-mail: its console page.
pub async fn case_link(path: web::Path<String>) -> HttpResponse {
    let id = Id::parse(&path.into_inner()).into_string();
    session::redirect(&format!("/console/discharge-cases/{id}"), vec![])
}

/// `GET /tasks/{id}`, the link of a task's e-mail: its console page.
pub async fn task_link(path: web::Path<String>) -> HttpResponse {
    let id = Id::parse(&path.into_inner()).into_string();
    session::redirect(&format!("/console/tasks/{id}"), vec![])
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    done: Option<String>,
}

/// The two-factor page, with what went wrong (and its status) if anything.
async fn totp_answer(state: &AppState, req: &HttpRequest, status: StatusCode, message: Option<String>) -> HttpResponse {
    let lang = session::lang(req);
    let Some(bearer) = session::bearer(req, &state.keys) else { return session::to_sign_in("/console/totp") };
    let done = query::<DoneQuery>(req).unwrap_or_default().done.is_some() && message.is_none();
    let csrf = session::csrf(req);
    let page = state
        .db
        .read(move |conn| {
            let me = bearer.user_allowing_missing_second_factor(conn)?;
            views::totp_page(conn, &me, lang, csrf, done, message)
        })
        .await;
    match page.and_then(|p| pages::render(&p)) {
        Ok(html) => session::html(status, html, vec![]),
        Err(e) => failure(req, lang, e),
    }
}

/// `GET /console/totp`: two-factor sign-in, on or off, or the enrolment waiting for its code.
pub async fn totp(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    totp_answer(&state, &req, StatusCode::OK, None).await
}

#[derive(Deserialize)]
struct TotpForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

/// What went wrong with a two-factor form, shown on its page; anything else is a failure page.
async fn totp_refused(state: &AppState, req: &HttpRequest, e: AppError) -> HttpResponse {
    let lang = session::lang(req);
    if e.status() == StatusCode::UNPROCESSABLE_ENTITY || e.status() == StatusCode::CONFLICT {
        let text = match e.field_errors().first() {
            Some(f) => f.message.get(lang).to_string(),
            None => e.detail_for(lang).to_string(),
        };
        return totp_answer(state, req, e.status(), Some(text)).await;
    }
    failure(req, lang, e)
}

/// `POST /console/totp`: starts enrolment after the caller's password, as `POST /me/totp`
/// (the same check, counted with sign-in's failures); the page then shows the QR code.
pub async fn totp_start(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = form::<TotpForm>(&body) else { return refused_page(lang) };
    if !session::csrf_ok(&req, SESSION_COOKIE, &f.csrf) {
        return refused_page(lang);
    }
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in("/console/totp") };
    match enrolment::enrol(&state, bearer, crate::auth::client_ip(&req), f.password).await {
        Ok(_) => totp_answer(&state, &req, StatusCode::OK, None).await,
        Err(e) => totp_refused(&state, &req, e).await,
    }
}

/// `POST /console/totp/confirm`: the first code switches two-factor sign-in on, as
/// `POST /me/totp/confirm` (wrong codes counted like failed sign-ins).
pub async fn totp_confirm(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = form::<TotpForm>(&body) else { return refused_page(lang) };
    if !session::csrf_ok(&req, SESSION_COOKIE, &f.csrf) {
        return refused_page(lang);
    }
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in("/console/totp") };
    match enrolment::confirm(&state, bearer, f.code.trim().to_string()).await {
        Ok(_) => session::redirect("/console/totp?done=1", vec![]),
        Err(e) => totp_refused(&state, &req, e).await,
    }
}
