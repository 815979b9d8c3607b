//! The console's routes. Each answers a page or a redirect, never problem+json: a refusal is a
//! page too, and a patient the reader may not see answers the same 404 page as one that does not
//! exist. Every answer carries the console's security headers (`session::html`, `redirect`).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use super::pages::{self, Message, PasswordReset, SignIn};
use super::session::{self, PRE_COOKIE, SESSION_COOKIE};
use super::{text, views, CONSOLE_CSS};
use crate::api::{self, Id};
use crate::auth::enrolment;
use crate::auth::reset::{self, Requested};
use crate::auth::sign_in::{self, Credentials};
use crate::auth::tokens;
use crate::caseload::{self, CaseloadQuery};
use crate::discharge::TaskStatus;
use crate::error::{AppError, AppResult, Lang};
use crate::notes::vitals::{Consciousness, Vitals};
use crate::notes::writing::Draft;
use crate::patients;
use crate::state::AppState;
use crate::vocab::NoteKind;

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

/// An answer refused before any console handler ran (see `super::is_page_path`), as its page.
pub fn refusal_page(req: &HttpRequest, err: &AppError) -> HttpResponse {
    page_of(req, session::lang(req), err)
}

fn failure(req: &HttpRequest, lang: Lang, err: AppError) -> HttpResponse {
    page_of(req, lang, &err)
}

/// A page as rendered, or the page of what went wrong.
fn shown(req: &HttpRequest, lang: Lang, page: AppResult<impl askama::Template>) -> HttpResponse {
    match page.and_then(|p| pages::render(&p)) {
        Ok(html) => session::html(StatusCode::OK, html, vec![]),
        Err(e) => failure(req, lang, e),
    }
}

/// After a form or a link: on to the page `to` names for what was found or done, or the page
/// of what went wrong.
fn onward(req: &HttpRequest, lang: Lang, done: AppResult<String>, to: impl FnOnce(String) -> String) -> HttpResponse {
    match done {
        Ok(found) => session::redirect(&to(found), vec![]),
        Err(e) => failure(req, lang, e),
    }
}

/// A failure as a page: a lost session leads to sign-in and back here.
fn page_of(req: &HttpRequest, lang: Lang, err: &AppError) -> HttpResponse {
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

/// A form's fields, when it carries the valid token of the cookie `cookie` (the session's, or
/// the sign-in form's before there is one); `None` is answered with the refusal page.
fn posted<T: for<'de> Deserialize<'de>>(req: &HttpRequest, body: &[u8], cookie: &str) -> Option<T> {
    #[derive(Deserialize)]
    struct Token {
        #[serde(default)]
        csrf: String,
    }
    let token: Token = serde_urlencoded::from_bytes(body).ok()?;
    if !session::csrf_ok(req, cookie, &token.csrf) {
        return None;
    }
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
    let Some(f) = posted::<SignInForm>(&req, &body, PRE_COOKIE) else { return refused_page(lang) };
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

#[derive(Deserialize, Default)]
struct TokenQuery {
    token: Option<String>,
}

/// A link's token as the e-mails write it (URL-safe, short); anything else is no token.
fn link_token(token: Option<String>) -> Option<String> {
    token.filter(|t| tokens::is_link_token(t))
}

/// `GET /password-reset`, the link of a reset or welcome e-mail: its console page.
pub async fn password_reset_link(req: HttpRequest) -> HttpResponse {
    let q: TokenQuery = query(&req).unwrap_or_default();
    match link_token(q.token) {
        Some(token) => session::redirect(&format!("/console/password-reset?token={token}"), vec![]),
        None => session::redirect("/console/password-reset", vec![]),
    }
}

/// What the password-reset page shows: the form asking for a link, the word that it was sent,
/// or (with a token) the form setting the password.
struct ResetShown {
    token: Option<String>,
    sent: bool,
    email: String,
    message: Option<String>,
}

fn password_reset_page(state: &AppState, lang: Lang, status: StatusCode, shown: ResetShown) -> HttpResponse {
    let pre = session::new_pre_value();
    let ResetShown { token, sent, email, message } = shown;
    let page = PasswordReset { t: text::texts(lang), csrf: session::csrf_of(&pre), token, sent, email, message };
    match pages::render(&page) {
        Ok(html) => session::html(status, html, vec![session::cookie(&state.config, PRE_COOKIE, pre, 3600)]),
        Err(_) => message_fallback(lang),
    }
}

/// The form asking for a link, with what went wrong.
fn ask_again(state: &AppState, lang: Lang, status: StatusCode, email: String, why: String) -> HttpResponse {
    password_reset_page(state, lang, status, ResetShown { token: None, sent: false, email, message: Some(why) })
}

/// `GET /console/password-reset`: the form asking for a link by e-mail or, with the `token` of
/// one (a reset or a welcome e-mail), the form setting the password. A link no longer valid is
/// said at once, before anyone types a password.
pub async fn password_reset(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = session::lang(&req);
    let q: TokenQuery = query(&req).unwrap_or_default();
    let Some(token) = link_token(q.token) else {
        let shown = ResetShown { token: None, sent: false, email: String::new(), message: None };
        return password_reset_page(&state, lang, StatusCode::OK, shown);
    };
    let presented = token.clone();
    match state.db.run(move |conn| reset::holder(conn, &presented)).await {
        Ok(_) => {
            let shown = ResetShown { token: Some(token), sent: false, email: String::new(), message: None };
            password_reset_page(&state, lang, StatusCode::OK, shown)
        }
        Err(e) if shown_on_form(&e) => ask_again(&state, lang, e.status(), String::new(), reason(&e, lang)),
        Err(e) => failure(&req, lang, e),
    }
}

#[derive(Deserialize)]
struct ResetAskForm {
    #[serde(default)]
    email: String,
}

/// `POST /console/password-reset`: asks for a link as `POST /api/v1/password-reset` does (the
/// same answer whether an account has the address or not, the same throttle).
pub async fn ask_password_reset(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = posted::<ResetAskForm>(&req, &body, PRE_COOKIE) else { return refused_page(lang) };
    let t = text::texts(lang);
    match reset::ask(&state, f.email.clone(), crate::auth::client_ip(&req)).await {
        Ok(Requested::Accepted) => {
            let shown = ResetShown { token: None, sent: true, email: String::new(), message: None };
            password_reset_page(&state, lang, StatusCode::OK, shown)
        }
        Ok(Requested::Locked(_)) => ask_again(&state, lang, StatusCode::TOO_MANY_REQUESTS, f.email, t.locked.into()),
        Err(e) if shown_on_form(&e) => ask_again(&state, lang, e.status(), f.email, reason(&e, lang)),
        Err(e) => failure(&req, lang, e),
    }
}

#[derive(Deserialize)]
struct ResetSetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_again: String,
}

/// `POST /console/password-reset/confirm`: sets the password with the link's token as
/// `POST /api/v1/password-reset/confirm` does; then the sign-in page.
pub async fn confirm_password_reset(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = posted::<ResetSetForm>(&req, &body, PRE_COOKIE) else { return refused_page(lang) };
    let t = text::texts(lang);
    let token = link_token(Some(f.token)).unwrap_or_default();
    let set_again = |status: StatusCode, why: String| {
        let shown = ResetShown { token: Some(token.clone()), sent: false, email: String::new(), message: Some(why) };
        password_reset_page(&state, lang, status, shown)
    };
    if f.new_password != f.new_password_again {
        return set_again(StatusCode::UNPROCESSABLE_ENTITY, t.password_mismatch.into());
    }
    match reset::set_password(&state, token.clone(), f.new_password, crate::auth::client_ip(&req)).await {
        Ok(()) => sign_in_page(&state, lang, StatusCode::OK, "/console", String::new(), Some(t.reset_done)),
        // The link no longer works: ask for a new one.
        Err(e) if e.field_errors().first().is_some_and(|f| f.field == "token") => {
            ask_again(&state, lang, e.status(), String::new(), reason(&e, lang))
        }
        Err(e) if shown_on_form(&e) => set_again(e.status(), reason(&e, lang)),
        Err(e) => failure(&req, lang, e),
    }
}

/// `GET /care-team-invitations`, the link of an invitation's e-mail: its console page.
pub async fn invitation_link(req: HttpRequest) -> HttpResponse {
    let q: TokenQuery = query(&req).unwrap_or_default();
    match link_token(q.token) {
        Some(token) => session::redirect(&format!("/console/care-team-invitations?token={token}"), vec![]),
        None => session::redirect("/console/care-team-invitations", vec![]),
    }
}

/// `GET /console/care-team-invitations?token=…`: the invitation for the signed-in invitee, with
/// its two answers (an invitation for another account: 403 page, audited).
pub async fn invitation(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = session::lang(&req);
    let q: TokenQuery = query(&req).unwrap_or_default();
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(&session::here(&req)) };
    let token = link_token(q.token).unwrap_or_default();
    let csrf = session::csrf(&req);
    let page = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            views::invitation_page(conn, &me, lang, csrf, token)
        })
        .await;
    shown(&req, lang, page)
}

#[derive(Deserialize)]
struct InvitationForm {
    #[serde(default)]
    token: String,
}

/// `POST /console/care-team-invitations/accept`: joins the team as
/// `POST /api/v1/care-team-invitations/accept` does; then the patient's page.
pub async fn accept_invitation(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = posted::<InvitationForm>(&req, &body, SESSION_COOKIE) else { return refused_page(lang) };
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in("/console") };
    let mailer = state.mail.clone();
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            Ok(match patients::joining::accept(conn, &me, &mailer, &f.token)? {
                patients::joining::Joined::Member(member) => format!("/console/patients/{}", member.patient_id),
                // Waiting for the patient's approval: the invitation's page says so.
                patients::joining::Joined::AwaitingApproval(_) => {
                    format!("/console/care-team-invitations?token={}", f.token)
                }
            })
        })
        .await;
    onward(&req, lang, done, |to| to)
}

/// `POST /console/care-team-invitations/decline`, as `POST /api/v1/care-team-invitations/decline`.
pub async fn decline_invitation(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = posted::<InvitationForm>(&req, &body, SESSION_COOKIE) else { return refused_page(lang) };
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in("/console") };
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            patients::joining::decline(conn, &me, &f.token)
        })
        .await;
    match done {
        Ok(_) => {
            let t = text::texts(lang);
            message(lang, StatusCode::OK, t.invitation_title, t.invitation_declined)
        }
        Err(e) => failure(&req, lang, e),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    note: Option<String>,
}

/// `POST /console/sign-out`: ends the session, as `POST /auth/logout`.
pub async fn sign_out(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    if posted::<CsrfForm>(&req, &body, SESSION_COOKIE).is_none() {
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
    shown(&req, lang, page)
}

#[derive(Deserialize, Default)]
struct CursorQuery {
    cursor: Option<String>,
}

/// `GET /console/patients/{id}`: the patient page.
pub async fn patient(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let lang = session::lang(&req);
    // A parameter that does not fit is refused before the session is asked for: the page names
    // it whether or not the reader is signed in.
    let after = match query::<CursorQuery>(&req).and_then(|q| views::timeline_position(q.cursor.as_deref())) {
        Ok(after) => after,
        Err(e) => return failure(&req, lang, e),
    };
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(&session::here(&req)) };
    let id = Id::parse(&path.into_inner()).into_string();
    let csrf = session::csrf(&req);
    let page = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            views::patient_page(conn, &me, lang, csrf, &id, after)
        })
        .await;
    shown(&req, lang, page)
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
    let Some(f) = posted::<CsrfForm>(&req, &body, SESSION_COOKIE) else { return refused_page(lang) };
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
    onward(&req, lang, done, |patient_id| format!("/console/patients/{patient_id}"))
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
    let Some(f) = posted::<CsrfForm>(&req, &body, SESSION_COOKIE) else { return refused_page(lang) };
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
    onward(&req, lang, done, |patient_id| format!("/console/patients/{patient_id}"))
}

/// `GET /console/flags/{id}`: the flag on its patient's page.
pub async fn flag(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    on_its_page(&state, &req, &path, views::patient_of_flag, |patient_id, id| {
        format!("/console/patients/{patient_id}#flag-{id}")
    })
    .await
}

/// A record shown on the page of what holds it (a flag on its patient's, a task on its case's):
/// `find` names the holder through `views` (the same 404 as a missing record), then on to it at
/// the record's anchor.
async fn on_its_page(
    state: &AppState,
    req: &HttpRequest,
    path: &str,
    find: fn(&mut crate::db::DbConn, &crate::auth::CurrentUser, &str) -> AppResult<String>,
    to: fn(String, &str) -> String,
) -> HttpResponse {
    let lang = session::lang(req);
    let Some(bearer) = session::bearer(req, &state.keys) else { return session::to_sign_in(&session::here(req)) };
    let id = Id::parse(path).into_string();
    let record_id = id.clone();
    let found = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            find(conn, &me, &record_id)
        })
        .await;
    onward(req, lang, found, |holder| to(holder, &id))
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

/// `GET /patients/{id}/family`, the link of an e-mail asking for an approval: the family page.
pub async fn family_link(path: web::Path<String>) -> HttpResponse {
    let id = Id::parse(&path.into_inner()).into_string();
    session::redirect(&format!("/console/patients/{id}/family"), vec![])
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
    // Checked here as the page will read it, so that a filter that does not fit is named
    // whether or not the reader is signed in.
    let q: CaseloadQuery = match query(&req).and_then(|q: CaseloadQuery| q.clone().request().map(|_| q)) {
        Ok(q) => q,
        Err(e) => return failure(&req, lang, e),
    };
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(&session::here(&req)) };
    let code = path.into_inner();
    let csrf = session::csrf(&req);
    let page = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            views::ward_page(conn, &me, lang, csrf, &code, q)
        })
        .await;
    shown(&req, lang, page)
}

/// `GET /console/wards/{code}/caseload.csv`: the filtered ward as the API's CSV download
/// (`GET /wards/{code}/caseload` with `Accept: text/csv`), audited the same way.
pub async fn ward_csv(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let lang = session::lang(&req);
    let request = match query::<CaseloadQuery>(&req).and_then(CaseloadQuery::request) {
        Ok(r) => r,
        Err(e) => return failure(&req, lang, e),
    };
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(&session::here(&req)) };
    let code = path.into_inner();
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
    shown(&req, lang, page)
}

/// The patient page's note form, as sent. Blank fields are measurements not taken.
#[derive(Deserialize, serde::Serialize)]
struct NoteFormBody {
    #[serde(default, skip_serializing)]
    key: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    occurred_at: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    temperature: String,
    #[serde(default)]
    systolic_bp: String,
    #[serde(default)]
    diastolic_bp: String,
    #[serde(default)]
    pulse: String,
    #[serde(default)]
    respiratory_rate: String,
    #[serde(default)]
    spo2: String,
    #[serde(default)]
    on_oxygen: Option<String>,
    #[serde(default)]
    consciousness: String,
}

impl NoteFormBody {
    /// The note the form describes, as the API's body would say it; a field that does not
    /// parse is named as the API names it (`occurred_at`, `vitals.pulse`).
    fn draft(&self) -> AppResult<(NoteKind, Draft)> {
        let mut check = api::Check::new();
        let kind = NoteKind::parse(self.kind.trim());
        if kind.is_none() {
            check.push("kind", "invalid", "記録の種類を選んでください。", "Choose the kind of note.");
        }
        // `datetime-local` sends the time as the person sees it, in Japan.
        let occurred_at = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(&plain(&self.occurred_at), f).ok())
            .map(|local| (local - chrono::Duration::hours(9)).and_utc());
        if occurred_at.is_none() {
            check.push(
                "occurred_at",
                "invalid",
                "実施日時を入力してください(例: 2026-12-07T14:30)。",
                "Enter when it happened (for example 2026-12-07T14:30).",
            );
        }
        let mut number = |field: &str, given: &str, whole: bool| -> Option<f64> {
            let given = plain(given);
            if given.is_empty() {
                return None;
            }
            match given.parse::<f64>() {
                Ok(v) if v.is_finite() && (!whole || v.fract() == 0.0) => Some(v),
                _ => {
                    check.push(&format!("vitals.{field}"), "invalid", "数字で入力してください。", "Enter a number.");
                    None
                }
            }
        };
        let whole = |v: Option<f64>| v.map(|v| v.clamp(i32::MIN as f64, i32::MAX as f64) as i32);
        let vitals = Vitals {
            temperature: number("temperature", &self.temperature, false),
            systolic_bp: whole(number("systolic_bp", &self.systolic_bp, true)),
            diastolic_bp: whole(number("diastolic_bp", &self.diastolic_bp, true)),
            pulse: whole(number("pulse", &self.pulse, true)),
            respiratory_rate: whole(number("respiratory_rate", &self.respiratory_rate, true)),
            spo2: whole(number("spo2", &self.spo2, true)),
            spo2_scale: None,
            spo2_scale_reason: None,
            // A measurement on a form whose box is left unticked was taken on room air.
            on_oxygen: Some(self.on_oxygen.is_some()),
            consciousness: match self.consciousness.trim() {
                "" => None,
                c => {
                    let parsed = Consciousness::parse(c);
                    if parsed.is_none() {
                        check.push(
                            "vitals.consciousness",
                            "invalid",
                            "A, C, V, P, U から選んでください。",
                            "Choose A, C, V, P or U.",
                        );
                    }
                    parsed
                }
            },
        };
        check.finish()?;
        let measured = vitals.temperature.is_some()
            || vitals.systolic_bp.is_some()
            || vitals.diastolic_bp.is_some()
            || vitals.pulse.is_some()
            || vitals.respiratory_rate.is_some()
            || vitals.spo2.is_some()
            || vitals.consciousness.is_some();
        let text = self.text.trim();
        let (Some(kind), Some(occurred_at)) = (kind, occurred_at) else {
            return Err(AppError::internal("a note form passed its checks without a kind or a time"));
        };
        Ok((
            kind,
            Draft {
                occurred_at,
                text: (!text.is_empty()).then(|| text.to_string()),
                soap: None,
                vitals: (measured || self.on_oxygen.is_some()).then_some(vitals),
                next_visit_on: None,
                treatment_policy_changed: None,
                treatment_policy_summary: None,
                cautions_for_team: None,
            },
        ))
    }
}

/// A typed number or time as ASCII: full-width digits (３６.５) are what a Japanese keyboard
/// often gives.
fn plain(given: &str) -> String {
    given.nfkc().collect::<String>().trim().to_string()
}

/// `POST /console/patients/{id}/notes`: a note from the patient page, as
/// `POST /patients/{id}/notes`; back to the patient page, at its timeline.
pub async fn post_note(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = posted::<NoteFormBody>(&req, &body, SESSION_COOKIE) else { return refused_page(lang) };
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(session::HOME) };
    let id = Id::parse(&path.into_inner()).into_string();
    let key = f.key.trim().to_string();
    if !crate::idempotency::is_valid_key(&key) {
        let e = invalid("key", "ページを開き直してからもう一度お試しください。", "Reload the page and try again.");
        return failure(&req, lang, e);
    }
    let fingerprint = crate::idempotency::fingerprint("POST", req.path(), &f);
    let note = match f.draft() {
        Ok((kind, draft)) => views::NoteSubmission { key, fingerprint, kind, draft },
        Err(e) => return failure(&req, lang, e),
    };
    let (mailer, limits) = (state.mail.clone(), state.config.escalation_limits());
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            views::post_note(conn, &me, &mailer, &limits, &id, note)
        })
        .await;
    onward(&req, lang, done, |patient_id| format!("/console/patients/{patient_id}#h-timeline"))
}

#[derive(Deserialize)]
struct MoveForm {
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
    let Some(f) = posted::<MoveForm>(&req, &body, SESSION_COOKIE) else { return refused_page(lang) };
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
    onward(&req, lang, done, |case_id| format!("/console/discharge-cases/{case_id}#task-{id}"))
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
    let Some(f) = posted::<MoveForm>(&req, &body, SESSION_COOKIE) else { return refused_page(lang) };
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
    onward(&req, lang, done, |case_id| format!("/console/discharge-cases/{case_id}"))
}

/// `GET /console/tasks/{id}`: the task on its case's page.
pub async fn task(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    on_its_page(&state, &req, &path, views::case_of_task, |case_id, id| {
        format!("/console/discharge-cases/{case_id}#task-{id}")
    })
    .await
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
    off: Option<String>,
}

/// The two-factor page, with what went wrong (and its status) if anything.
async fn totp_answer(state: &AppState, req: &HttpRequest, status: StatusCode, message: Option<String>) -> HttpResponse {
    totp_page_with(state, req, status, message, Vec::new()).await
}

async fn totp_page_with(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    message: Option<String>,
    recovery_codes: Vec<String>,
) -> HttpResponse {
    let lang = session::lang(req);
    let Some(bearer) = session::bearer(req, &state.keys) else { return session::to_sign_in("/console/totp") };
    let q = query::<DoneQuery>(req).unwrap_or_default();
    let outcome = views::TotpOutcome {
        done: q.done.is_some() && message.is_none(),
        turned_off: q.off.is_some() && message.is_none(),
        message,
        recovery_codes,
    };
    let csrf = session::csrf(req);
    let page = state
        .db
        .read(move |conn| {
            let me = bearer.user_allowing_missing_second_factor(conn)?;
            views::totp_page(conn, &me, lang, csrf, outcome)
        })
        .await;
    match page.and_then(|p| pages::render(&p)) {
        Ok(html) => session::html(status, html, vec![]),
        Err(e) => failure(req, lang, e),
    }
}

/// A refusal the form's own page shows (a wrong password or code, a state that does not allow
/// it), rather than a page of its own.
fn shown_on_form(e: &AppError) -> bool {
    e.status() == StatusCode::UNPROCESSABLE_ENTITY || e.status() == StatusCode::CONFLICT
}

/// What went wrong, in a sentence: the first field's message, or the refusal's.
fn reason(e: &AppError, lang: Lang) -> String {
    match e.field_errors().first() {
        Some(f) => f.message.get(lang).to_string(),
        None => e.detail_for(lang).to_string(),
    }
}

/// The password page, with what the last form did. The page shows nothing of the account but
/// who is signed in: it needs no read of patient data.
async fn password_answer(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    message: Option<String>,
) -> HttpResponse {
    let lang = session::lang(req);
    let Some(bearer) = session::bearer(req, &state.keys) else { return session::to_sign_in("/console/password") };
    let done = query::<DoneQuery>(req).unwrap_or_default().done.is_some() && message.is_none();
    let csrf = session::csrf(req);
    let me = state.db.read(move |conn| bearer.user_allowing_missing_second_factor(conn)).await;
    let page = me.map(|me| pages::PasswordPage { frame: views::frame(lang, &me, csrf), done, message });
    match page.and_then(|p| pages::render(&p)) {
        Ok(html) => session::html(status, html, vec![]),
        Err(e) => failure(req, lang, e),
    }
}

/// `GET /console/password`: the form that changes one's own password.
pub async fn password(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    password_answer(&state, &req, StatusCode::OK, None).await
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_again: String,
}

/// `POST /console/password`: changes the password as `POST /me/password` does (the current one
/// checked and counted with sign-in's failures, the password rules, every session ended); the
/// browser goes on in the new session.
pub async fn change_password(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = posted::<PasswordForm>(&req, &body, SESSION_COOKIE) else { return refused_page(lang) };
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in("/console/password") };
    let t = text::texts(lang);
    if f.new_password != f.new_password_again {
        return password_answer(&state, &req, StatusCode::UNPROCESSABLE_ENTITY, Some(t.password_mismatch.to_string()))
            .await;
    }
    let ip = crate::auth::client_ip(&req);
    match enrolment::change_password(&state, bearer, ip, f.current_password, f.new_password).await {
        Ok(signed_in) => match state.keys.issue_browser(&signed_in.user_id, &signed_in.session_id) {
            Ok(value) => session::redirect(
                "/console/password?done=1",
                vec![session::cookie(&state.config, SESSION_COOKIE, value, state.keys.session_ttl_secs)],
            ),
            Err(e) => failure(&req, lang, e),
        },
        Err(e) if shown_on_form(&e) => password_answer(&state, &req, e.status(), Some(reason(&e, lang))).await,
        Err(e) => failure(&req, lang, e),
    }
}

/// `GET /console/totp`: two-factor sign-in, on or off, or the enrolment waiting for its code.
pub async fn totp(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    totp_answer(&state, &req, StatusCode::OK, None).await
}

#[derive(Deserialize)]
struct TotpForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

/// What went wrong with a two-factor form, shown on its page; anything else is a failure page.
async fn totp_refused(state: &AppState, req: &HttpRequest, e: AppError) -> HttpResponse {
    let lang = session::lang(req);
    if shown_on_form(&e) {
        return totp_answer(state, req, e.status(), Some(reason(&e, lang))).await;
    }
    failure(req, lang, e)
}

/// `POST /console/totp`: starts enrolment after the caller's password, as `POST /me/totp`
/// (the same check, counted with sign-in's failures); the page then shows the QR code.
pub async fn totp_start(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = posted::<TotpForm>(&req, &body, SESSION_COOKIE) else { return refused_page(lang) };
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in("/console/totp") };
    match enrolment::enrol(&state, bearer, crate::auth::client_ip(&req), f.password).await {
        Ok(_) => totp_answer(&state, &req, StatusCode::OK, None).await,
        Err(e) => totp_refused(&state, &req, e).await,
    }
}

/// `POST /console/totp/recovery-codes`: new recovery codes after the caller's password, as
/// `POST /me/totp/recovery-codes`; the page shows them this once.
pub async fn new_recovery_codes(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = posted::<TotpForm>(&req, &body, SESSION_COOKIE) else { return refused_page(lang) };
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in("/console/totp") };
    match enrolment::new_recovery_codes(&state, bearer, crate::auth::client_ip(&req), f.password).await {
        Ok(made) => totp_page_with(&state, &req, StatusCode::OK, None, made.codes).await,
        Err(e) => totp_refused(&state, &req, e).await,
    }
}

/// `POST /console/totp/off`: turns two-factor sign-in off with a fresh code, as
/// `DELETE /me/totp` (wrong codes counted like failed sign-ins; not for a system administrator).
pub async fn totp_off(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = posted::<TotpForm>(&req, &body, SESSION_COOKIE) else { return refused_page(lang) };
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in("/console/totp") };
    match enrolment::turn_off(&state, bearer, f.code.trim().to_string()).await {
        Ok(()) => session::redirect("/console/totp?off=1", vec![]),
        Err(e) => totp_refused(&state, &req, e).await,
    }
}

/// `POST /console/totp/confirm`: the first code switches two-factor sign-in on, as
/// `POST /me/totp/confirm` (wrong codes counted like failed sign-ins).
pub async fn totp_confirm(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = posted::<TotpForm>(&req, &body, SESSION_COOKIE) else { return refused_page(lang) };
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in("/console/totp") };
    match enrolment::confirm(&state, bearer, f.code.trim().to_string()).await {
        Ok(_) => session::redirect("/console/totp?done=1", vec![]),
        Err(e) => totp_refused(&state, &req, e).await,
    }
}

// ---------------------------------------------------------------------------------------------
// The patient and the family: the invitation's page, and the family page.

/// `GET /participant-invitations`, the link of a participant invitation's e-mail: its page.
pub async fn participant_invitation_link(req: HttpRequest) -> HttpResponse {
    let q: TokenQuery = query(&req).unwrap_or_default();
    match link_token(q.token) {
        Some(token) => session::redirect(&format!("/console/participant-invitations?token={token}"), vec![]),
        None => session::redirect("/console/participant-invitations", vec![]),
    }
}

/// What the participant invitation page shows besides the invitation.
struct JoinedShown {
    name: String,
    message: Option<String>,
}

/// The participant invitation's page: for a link that works, the account form (or, for an
/// address with an account, the way to sign in and take part); otherwise why it does not.
async fn participant_invitation_page(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    token: Option<String>,
    shown: JoinedShown,
) -> HttpResponse {
    let t = text::texts(lang);
    let found = match token.clone() {
        None => Err(crate::patients::participants::invalid_token()),
        Some(token) => state.db.run(move |conn| views::participant_invitation(conn, lang, &token)).await,
    };
    let (status, token, about, has_account, message) = match found {
        Ok(found) => {
            let template = if found.has_account { t.joined_has_account } else { t.joined_open };
            let about = template.replace("{role}", found.role).replace("{until}", &found.until);
            (StatusCode::OK, token.unwrap_or_default(), about, found.has_account, shown.message)
        }
        Err(e) if shown_on_form(&e) => (e.status(), String::new(), String::new(), false, Some(reason(&e, lang))),
        Err(e) => return failure(req, lang, e),
    };
    let signed_in = session::bearer(req, &state.keys).is_some();
    let (csrf, cookies) = if signed_in {
        (session::csrf(req), vec![])
    } else {
        let pre = session::new_pre_value();
        (session::csrf_of(&pre), vec![session::cookie(&state.config, PRE_COOKIE, pre, 3600)])
    };
    let status = if message.is_some() && status == StatusCode::OK { StatusCode::UNPROCESSABLE_ENTITY } else { status };
    let page =
        pages::ParticipantInvitationPage { t, csrf, token, about, has_account, signed_in, name: shown.name, message };
    match pages::render(&page) {
        Ok(html) => session::html(status, html, cookies),
        Err(_) => message_fallback(lang),
    }
}

/// `GET /console/participant-invitations?token=…`: the invitation of the patient, a family
/// member or the key person. A link no longer valid is said at once.
pub async fn participant_invitation(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = session::lang(&req);
    let q: TokenQuery = query(&req).unwrap_or_default();
    participant_invitation_page(
        &state,
        &req,
        lang,
        link_token(q.token),
        JoinedShown { name: String::new(), message: None },
    )
    .await
}

#[derive(Deserialize)]
struct JoinedForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_again: String,
}

/// `POST /console/participant-invitations`: takes the invitation up with a new account, as
/// `POST /api/v1/participant-invitations/register`; then the sign-in page.
pub async fn register_participant(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = posted::<JoinedForm>(&req, &body, PRE_COOKIE) else { return refused_page(lang) };
    let t = text::texts(lang);
    let token = link_token(Some(f.token));
    let again = |message: String, name: String| JoinedShown { name, message: Some(message) };
    if f.password != f.password_again {
        return participant_invitation_page(&state, &req, lang, token, again(t.password_mismatch.into(), f.name)).await;
    }
    let mut check = api::Check::new();
    check.required_line("name", &f.name, 100);
    if let Err(e) = check.finish() {
        return participant_invitation_page(&state, &req, lang, token, again(reason(&e, lang), f.name)).await;
    }
    let locale = crate::vocab::Locale::from(lang);
    let ip = crate::auth::client_ip(&req);
    let presented = token.clone().unwrap_or_default();
    match crate::patients::joining::take_up_participation(&state, presented, f.name.clone(), f.password, locale, ip)
        .await
    {
        Ok(_) => sign_in_page(&state, lang, StatusCode::OK, "/console", String::new(), Some(t.joined_done)),
        Err(e) if shown_on_form(&e) => {
            participant_invitation_page(&state, &req, lang, token, again(reason(&e, lang), f.name)).await
        }
        Err(e) => failure(&req, lang, e),
    }
}

/// `POST /console/participant-invitations/accept`: takes the invitation up as the signed-in
/// account, as `POST /api/v1/participant-invitations/accept`; then the family page.
pub async fn accept_participant(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = posted::<InvitationForm>(&req, &body, SESSION_COOKIE) else { return refused_page(lang) };
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in("/console") };
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            views::accept_participant_invitation(conn, &me, &f.token)
        })
        .await;
    onward(&req, lang, done, |patient_id| format!("/console/patients/{patient_id}/family"))
}

/// `GET /console/patients/{id}/family`: the family channel, and the joinings to approve.
pub async fn family(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(&session::here(&req)) };
    let id = Id::parse(&path.into_inner()).into_string();
    let csrf = session::csrf(&req);
    let page = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            views::family_page(conn, &me, lang, csrf, &id)
        })
        .await;
    shown(&req, lang, page)
}

#[derive(Deserialize, serde::Serialize)]
struct FamilyForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    raise_flag: Option<String>,
}

/// `POST /console/patients/{id}/family-messages`: as `POST /api/v1/patients/{id}/family-messages`
/// (the page's key is the `Idempotency-Key`: pressing twice posts once); then the family page.
pub async fn post_family_message(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = posted::<FamilyForm>(&req, &body, SESSION_COOKIE) else { return refused_page(lang) };
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(session::HOME) };
    let id = Id::parse(&path.into_inner()).into_string();
    let key = f.key.trim().to_string();
    if !crate::idempotency::is_valid_key(&key) {
        let e = invalid("key", "ページを開き直してからもう一度お試しください。", "Reload the page and try again.");
        return failure(&req, lang, e);
    }
    let mut check = api::Check::new();
    check.text("text", &f.text, crate::family::MAX_CHARS);
    if let Err(e) = check.finish() {
        return failure(&req, lang, e);
    }
    let fingerprint = crate::idempotency::fingerprint("POST", req.path(), &f);
    let post = crate::family::Post { text: f.text, raise_flag: f.raise_flag.as_deref() == Some("true") };
    let (mailer, limits) = (state.mail.clone(), state.config.escalation_limits());
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            views::post_family_message(
                conn,
                &me,
                &mailer,
                &limits,
                &id,
                views::FamilySubmission { key, fingerprint, post },
            )
        })
        .await;
    onward(&req, lang, done, |patient_id| format!("/console/patients/{patient_id}/family"))
}

#[derive(Deserialize)]
struct WithdrawForm {
    #[serde(default)]
    reason: String,
}

/// `POST /console/patients/{id}/family-messages/{message_id}/entered-in-error`: withdraws one's
/// own message with a reason, as the API's; then the family page.
pub async fn withdraw_family_message(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let lang = session::lang(&req);
    let Some(f) = posted::<WithdrawForm>(&req, &body, SESSION_COOKIE) else { return refused_page(lang) };
    let Some(bearer) = session::bearer(&req, &state.keys) else { return session::to_sign_in(session::HOME) };
    let mut check = api::Check::new();
    check.text("reason", &f.reason, 500);
    if let Err(e) = check.finish() {
        return failure(&req, lang, e);
    }
    let (id, message_id) = path.into_inner();
    let (id, message_id) = (Id::parse(&id).into_string(), Id::parse(&message_id).into_string());
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            views::withdraw_family_message(conn, &me, &id, &message_id, &f.reason)
        })
        .await;
    onward(&req, lang, done, |patient_id| format!("/console/patients/{patient_id}/family"))
}

async fn decide_joining(
    state: &AppState,
    req: &HttpRequest,
    path: (String, String),
    body: &[u8],
    approve: bool,
) -> HttpResponse {
    let lang = session::lang(req);
    if posted::<CsrfForm>(req, body, SESSION_COOKIE).is_none() {
        return refused_page(lang);
    }
    let Some(bearer) = session::bearer(req, &state.keys) else { return session::to_sign_in(session::HOME) };
    let (id, invitation_id) = (Id::parse(&path.0).into_string(), Id::parse(&path.1).into_string());
    let mailer = state.mail.clone();
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            views::decide_joining(conn, &me, &mailer, &id, &invitation_id, approve)
        })
        .await;
    onward(req, lang, done, |patient_id| format!("/console/patients/{patient_id}/family"))
}

/// `POST /console/patients/{id}/joining-requests/{invitation_id}/approve`, as the API's.
pub async fn approve_joining(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    decide_joining(&state, &req, path.into_inner(), &body, true).await
}

/// `POST /console/patients/{id}/joining-requests/{invitation_id}/refuse`, as the API's.
pub async fn refuse_joining(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    decide_joining(&state, &req, path.into_inner(), &body, false).await
}
