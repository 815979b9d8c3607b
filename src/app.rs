//! Builds the HTTP application: the route table, the framework's error answers as problem+json,
//! the language of error details and request logs.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Server, Service, ServiceRequest, ServiceResponse};
use actix_web::error::QueryPayloadError;
use actix_web::http::{header, Method};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer, Route};

use crate::care::allergies::Allergy;
use crate::care::appointments::Appointment;
use crate::care::medications::Medication;
use crate::care::visits::Plan as VisitPlan;
use crate::error::{AppError, AppResult, FieldError, Lang};
use crate::state::AppState;
use crate::{
    attachments, audit, auth, care, caseload, console, discharge, docs, family, fhir, flags, mail, notes, ops, orgs,
    patients, users, wards,
};

/// Every route the service answers: the one list the server registers and the contract test
/// compares with `api-spec/openapi.yaml`.
pub fn routes() -> Vec<(Method, &'static str, Route)> {
    use web::{delete, get, head, patch, post, put};
    vec![
        (Method::GET, "/livez", get().to(ops::handlers::livez)),
        (Method::GET, "/readyz", get().to(ops::handlers::readyz)),
        (Method::GET, "/metrics", get().to(ops::handlers::metrics)),
        (Method::GET, "/api-spec/openapi.yaml", get().to(ops::handlers::openapi)),
        (Method::HEAD, "/api-spec/openapi.yaml", head().to(ops::handlers::openapi)),
        (Method::GET, "/", get().to(docs::handlers::landing)),
        (Method::HEAD, "/", head().to(docs::handlers::landing)),
        (Method::GET, "/docs", get().to(docs::handlers::reference)),
        (Method::HEAD, "/docs", head().to(docs::handlers::reference)),
        (Method::GET, "/docs/assets/swagger-ui-bundle.js", get().to(docs::handlers::swagger_ui_bundle)),
        (Method::HEAD, "/docs/assets/swagger-ui-bundle.js", head().to(docs::handlers::swagger_ui_bundle)),
        (Method::GET, "/docs/assets/swagger-ui.css", get().to(docs::handlers::swagger_ui_css)),
        (Method::HEAD, "/docs/assets/swagger-ui.css", head().to(docs::handlers::swagger_ui_css)),
        (Method::GET, "/docs/assets/init.js", get().to(docs::handlers::init_js)),
        (Method::HEAD, "/docs/assets/init.js", head().to(docs::handlers::init_js)),
        (Method::GET, "/docs/assets/LICENSE", get().to(docs::handlers::swagger_ui_license)),
        (Method::HEAD, "/docs/assets/LICENSE", head().to(docs::handlers::swagger_ui_license)),
        // The console: pages for people (src/console/), and the e-mails' links into it.
        (Method::GET, "/console", get().to(console::handlers::my_page)),
        (Method::GET, "/console/sign-in", get().to(console::handlers::sign_in_form)),
        (Method::POST, "/console/sign-in", post().to(console::handlers::sign_in)),
        (Method::POST, "/console/sign-out", post().to(console::handlers::sign_out)),
        (Method::GET, "/console/patients/{id}", get().to(console::handlers::patient)),
        (Method::POST, "/console/patients/{id}/notes", post().to(console::handlers::post_note)),
        (Method::GET, "/console/flags/{id}", get().to(console::handlers::flag)),
        (Method::POST, "/console/flags/{id}/acknowledge", post().to(console::handlers::acknowledge_flag)),
        (Method::POST, "/console/flags/{id}/resolve", post().to(console::handlers::resolve_flag)),
        (Method::GET, "/console/wards/{code}", get().to(console::handlers::ward)),
        (Method::GET, "/console/wards/{code}/caseload.csv", get().to(console::handlers::ward_csv)),
        (Method::GET, "/console/discharge-cases/{id}", get().to(console::handlers::case)),
        (Method::POST, "/console/discharge-cases/{id}/{move}", post().to(console::handlers::move_case)),
        (Method::GET, "/console/tasks/{id}", get().to(console::handlers::task)),
        (Method::POST, "/console/tasks/{id}", post().to(console::handlers::move_task)),
        (Method::GET, "/console/password", get().to(console::handlers::password)),
        (Method::POST, "/console/password", post().to(console::handlers::change_password)),
        (Method::GET, "/console/totp", get().to(console::handlers::totp)),
        (Method::POST, "/console/totp", post().to(console::handlers::totp_start)),
        (Method::POST, "/console/totp/confirm", post().to(console::handlers::totp_confirm)),
        (Method::POST, "/console/totp/recovery-codes", post().to(console::handlers::new_recovery_codes)),
        (Method::POST, "/console/totp/off", post().to(console::handlers::totp_off)),
        (Method::GET, "/console/password-reset", get().to(console::handlers::password_reset)),
        (Method::POST, "/console/password-reset", post().to(console::handlers::ask_password_reset)),
        (Method::POST, "/console/password-reset/confirm", post().to(console::handlers::confirm_password_reset)),
        (Method::GET, "/console/care-team-invitations", get().to(console::handlers::invitation)),
        (Method::POST, "/console/care-team-invitations/accept", post().to(console::handlers::accept_invitation)),
        (Method::POST, "/console/care-team-invitations/decline", post().to(console::handlers::decline_invitation)),
        (Method::GET, "/console/participant-invitations", get().to(console::handlers::participant_invitation)),
        (Method::POST, "/console/participant-invitations", post().to(console::handlers::register_participant)),
        (Method::POST, "/console/participant-invitations/accept", post().to(console::handlers::accept_participant)),
        (Method::GET, "/console/patients/{id}/family", get().to(console::handlers::family)),
        (Method::POST, "/console/patients/{id}/family-messages", post().to(console::handlers::post_family_message)),
        (
            Method::POST,
            "/console/patients/{id}/family-messages/{message_id}/entered-in-error",
            post().to(console::handlers::withdraw_family_message),
        ),
        (
            Method::POST,
            "/console/patients/{id}/joining-requests/{invitation_id}/approve",
            post().to(console::handlers::approve_joining),
        ),
        (
            Method::POST,
            "/console/patients/{id}/joining-requests/{invitation_id}/refuse",
            post().to(console::handlers::refuse_joining),
        ),
        (Method::GET, "/console/assets/console.css", get().to(console::handlers::stylesheet)),
        (Method::GET, "/flags/{id}", get().to(console::handlers::flag_link)),
        (Method::GET, "/password-reset", get().to(console::handlers::password_reset_link)),
        (Method::GET, "/care-team-invitations", get().to(console::handlers::invitation_link)),
        (Method::GET, "/participant-invitations", get().to(console::handlers::participant_invitation_link)),
        (Method::GET, "/patients/{id}/family", get().to(console::handlers::family_link)),
        (Method::GET, "/patients/{id}", get().to(console::handlers::patient_link)),
        (Method::GET, "/patients/{id}/access-log", get().to(console::handlers::patient_link)),
        (Method::GET, "/patients/{id}/care-team", get().to(console::handlers::patient_link)),
        (Method::GET, "/me/tasks", get().to(console::handlers::my_page_link)),
        (Method::GET, "/discharge-cases/{id}", get().to(console::handlers::case_link)),
        (Method::GET, "/tasks/{id}", get().to(console::handlers::task_link)),
        (Method::POST, "/api/v1/auth/login", post().to(auth::handlers::login)),
        (Method::POST, "/api/v1/auth/refresh", post().to(auth::handlers::refresh)),
        (Method::POST, "/api/v1/auth/logout", post().to(auth::handlers::logout)),
        (Method::POST, "/api/v1/password-reset", post().to(auth::handlers::request_password_reset)),
        (Method::POST, "/api/v1/password-reset/confirm", post().to(auth::handlers::confirm_password_reset)),
        (Method::GET, "/api/v1/me", get().to(auth::handlers::me)),
        (Method::POST, "/api/v1/me/password", post().to(auth::handlers::change_password)),
        (Method::POST, "/api/v1/me/totp", post().to(auth::handlers::totp_enrol)),
        (Method::DELETE, "/api/v1/me/totp", delete().to(auth::handlers::totp_disable)),
        (Method::POST, "/api/v1/me/totp/confirm", post().to(auth::handlers::totp_confirm)),
        (Method::GET, "/api/v1/me/totp/recovery-codes", get().to(auth::handlers::recovery_codes)),
        (Method::POST, "/api/v1/me/totp/recovery-codes", post().to(auth::handlers::new_recovery_codes)),
        (Method::GET, "/api/v1/wards", get().to(wards::handlers::list)),
        (Method::GET, "/api/v1/organizations", get().to(orgs::handlers::list)),
        (Method::POST, "/api/v1/organizations", post().to(orgs::handlers::create)),
        (Method::GET, "/api/v1/organizations/{id}", get().to(orgs::handlers::get)),
        (Method::PATCH, "/api/v1/organizations/{id}", patch().to(orgs::handlers::update)),
        (Method::GET, "/api/v1/organizations/{id}/users", get().to(users::handlers::list)),
        (Method::POST, "/api/v1/organizations/{id}/users", post().to(users::handlers::create)),
        (Method::GET, "/api/v1/users/{id}", get().to(users::handlers::get)),
        (Method::PATCH, "/api/v1/users/{id}", patch().to(users::handlers::update)),
        (Method::POST, "/api/v1/users/{id}/offboard", post().to(users::handlers::offboard)),
        (Method::DELETE, "/api/v1/users/{id}/totp", delete().to(users::handlers::reset_second_factor)),
        (Method::GET, "/api/v1/wards/summary", get().to(caseload::handlers::summary)),
        (Method::GET, "/api/v1/wards/{code}/caseload", get().to(caseload::handlers::caseload)),
        (Method::PUT, "/api/v1/wards/{code}/coordinators/{user_id}", put().to(wards::handlers::assign_coordinator)),
        (
            Method::DELETE,
            "/api/v1/wards/{code}/coordinators/{user_id}",
            delete().to(wards::handlers::remove_coordinator),
        ),
        (Method::POST, "/api/v1/patients", post().to(patients::handlers::register)),
        (Method::GET, "/api/v1/patients", get().to(patients::handlers::list)),
        (Method::GET, "/api/v1/patients/{id}", get().to(patients::handlers::get)),
        (Method::PATCH, "/api/v1/patients/{id}", patch().to(patients::handlers::update)),
        (Method::GET, "/api/v1/patients/{id}/consents", get().to(patients::handlers::consents::list)),
        (Method::POST, "/api/v1/patients/{id}/consents", post().to(patients::handlers::consents::create)),
        (
            Method::POST,
            "/api/v1/patients/{id}/consents/{consent_id}/revoke",
            post().to(patients::handlers::consents::revoke),
        ),
        (Method::GET, "/api/v1/patients/{id}/insurance", get().to(patients::handlers::insurance::get)),
        (Method::PUT, "/api/v1/patients/{id}/insurance", put().to(patients::handlers::insurance::put)),
        (Method::POST, "/api/v1/patients/{id}/merge", post().to(patients::handlers::insurance::merge)),
        (Method::GET, "/api/v1/patients/{id}/care-team", get().to(patients::handlers::team::list)),
        (Method::POST, "/api/v1/patients/{id}/care-team", post().to(patients::handlers::team::add)),
        (Method::GET, "/api/v1/patients/{id}/care-team/invitations", get().to(patients::handlers::invitations::list)),
        (
            Method::POST,
            "/api/v1/patients/{id}/care-team/invitations",
            post().to(patients::handlers::invitations::create),
        ),
        (
            Method::POST,
            "/api/v1/patients/{id}/care-team/invitations/{invitation_id}/revoke",
            post().to(patients::handlers::invitations::revoke),
        ),
        (Method::POST, "/api/v1/care-team-invitations/accept", post().to(patients::handlers::invitations::accept)),
        (Method::POST, "/api/v1/care-team-invitations/decline", post().to(patients::handlers::invitations::decline)),
        (Method::GET, "/api/v1/patients/{id}/participants", get().to(patients::handlers::participants::list)),
        (Method::POST, "/api/v1/patients/{id}/participants", post().to(patients::handlers::participants::invite)),
        (
            Method::POST,
            "/api/v1/patients/{id}/participants/{participant_id}/end",
            post().to(patients::handlers::participants::end),
        ),
        (
            Method::POST,
            "/api/v1/participant-invitations/register",
            post().to(patients::handlers::participants::register),
        ),
        (Method::POST, "/api/v1/participant-invitations/accept", post().to(patients::handlers::participants::accept)),
        (Method::GET, "/api/v1/patients/{id}/joining-requests", get().to(patients::handlers::participants::requests)),
        (
            Method::POST,
            "/api/v1/patients/{id}/joining-requests/{invitation_id}/approve",
            post().to(patients::handlers::participants::approve),
        ),
        (
            Method::POST,
            "/api/v1/patients/{id}/joining-requests/{invitation_id}/refuse",
            post().to(patients::handlers::participants::refuse),
        ),
        (
            Method::GET,
            "/api/v1/patients/{id}/joining-approval",
            get().to(patients::handlers::participants::approval_setting),
        ),
        (
            Method::PUT,
            "/api/v1/patients/{id}/joining-approval",
            put().to(patients::handlers::participants::set_approval),
        ),
        (Method::GET, "/api/v1/patients/{id}/family-messages", get().to(family::handlers::list)),
        (Method::POST, "/api/v1/patients/{id}/family-messages", post().to(family::handlers::create)),
        (
            Method::POST,
            "/api/v1/patients/{id}/family-messages/{message_id}/entered-in-error",
            post().to(family::handlers::entered_in_error),
        ),
        (Method::PATCH, "/api/v1/patients/{id}/care-team/{member_id}", patch().to(patients::handlers::team::update)),
        (Method::POST, "/api/v1/patients/{id}/emergency-access", post().to(patients::handlers::emergency_access)),
        (Method::GET, "/api/v1/patients/{id}/access-log", get().to(patients::handlers::access_log)),
        (Method::GET, "/api/v1/patients/{id}/fhir", get().to(fhir::handlers::export)),
        (Method::GET, "/api/v1/audit-events", get().to(audit::handlers::list)),
        (Method::POST, "/api/v1/patients/{id}/flags", post().to(flags::handlers::raise)),
        (Method::GET, "/api/v1/patients/{id}/flags", get().to(flags::handlers::list)),
        (Method::GET, "/api/v1/flags/{id}", get().to(flags::handlers::get)),
        (Method::POST, "/api/v1/flags/{id}/acknowledge", post().to(flags::handlers::acknowledge)),
        (Method::POST, "/api/v1/flags/{id}/resolve", post().to(flags::handlers::resolve)),
        (Method::GET, "/api/v1/me/flags", get().to(flags::handlers::mine)),
        (Method::GET, "/api/v1/me/notification-preferences", get().to(users::handlers::notification_preferences)),
        (Method::PUT, "/api/v1/me/notification-preferences", put().to(users::handlers::set_notification_preferences)),
        (Method::GET, "/api/v1/push/public-key", get().to(crate::push::handlers::public_key)),
        (Method::GET, "/api/v1/me/push-subscriptions", get().to(crate::push::handlers::list)),
        (Method::POST, "/api/v1/me/push-subscriptions", post().to(crate::push::handlers::register)),
        (Method::DELETE, "/api/v1/me/push-subscriptions/{id}", delete().to(crate::push::handlers::delete)),
        (Method::GET, "/api/v1/organizations/{id}/webhooks", get().to(crate::webhooks::handlers::list)),
        (Method::POST, "/api/v1/organizations/{id}/webhooks", post().to(crate::webhooks::handlers::register)),
        (
            Method::POST,
            "/api/v1/organizations/{id}/webhooks/{webhook_id}/disable",
            post().to(crate::webhooks::handlers::disable),
        ),
        (
            Method::POST,
            "/api/v1/organizations/{id}/webhooks/{webhook_id}/enable",
            post().to(crate::webhooks::handlers::enable),
        ),
        (
            Method::POST,
            "/api/v1/organizations/{id}/webhooks/{webhook_id}/rotate-secret",
            post().to(crate::webhooks::handlers::rotate_secret),
        ),
        (Method::GET, "/api/v1/outbox", get().to(mail::handlers::status)),
        (Method::POST, "/api/v1/outbox/{id}/retry", post().to(mail::handlers::retry)),
        (Method::GET, "/api/v1/discharge-task-templates", get().to(discharge::handlers::list_templates)),
        (Method::POST, "/api/v1/discharge-cases", post().to(discharge::handlers::open)),
        (Method::GET, "/api/v1/discharge-cases", get().to(discharge::handlers::list)),
        (Method::GET, "/api/v1/discharge-cases/{id}", get().to(discharge::handlers::get)),
        (Method::PATCH, "/api/v1/discharge-cases/{id}", patch().to(discharge::handlers::update)),
        (Method::POST, "/api/v1/discharge-cases/{id}/discharge", post().to(discharge::handlers::discharge)),
        (Method::POST, "/api/v1/discharge-cases/{id}/close", post().to(discharge::handlers::close)),
        (Method::POST, "/api/v1/discharge-cases/{id}/cancel", post().to(discharge::handlers::cancel)),
        (Method::GET, "/api/v1/discharge-cases/{id}/conferences", get().to(discharge::handlers::list_conferences)),
        (Method::POST, "/api/v1/discharge-cases/{id}/conferences", post().to(discharge::handlers::record_conference)),
        (Method::GET, "/api/v1/discharge-cases/{id}/tasks", get().to(discharge::handlers::list_tasks)),
        (Method::POST, "/api/v1/discharge-cases/{id}/tasks", post().to(discharge::handlers::add_task)),
        (Method::GET, "/api/v1/tasks/{id}", get().to(discharge::handlers::get_task)),
        (Method::PATCH, "/api/v1/tasks/{id}", patch().to(discharge::handlers::update_task)),
        (Method::POST, "/api/v1/tasks/{id}/comments", post().to(discharge::handlers::add_comment)),
        (Method::GET, "/api/v1/me/tasks", get().to(discharge::handlers::my_tasks)),
        (Method::POST, "/api/v1/patients/{id}/notes", post().to(notes::handlers::notes::create)),
        (Method::GET, "/api/v1/patients/{id}/notes", get().to(notes::handlers::notes::list)),
        (Method::GET, "/api/v1/notes/{id}", get().to(notes::handlers::notes::get)),
        (Method::POST, "/api/v1/notes/{id}/amendments", post().to(notes::handlers::notes::amend)),
        (Method::GET, "/api/v1/notes/{id}/versions", get().to(notes::handlers::notes::versions)),
        (Method::PUT, "/api/v1/notes/{id}/read", put().to(notes::handlers::reads::mark)),
        (Method::GET, "/api/v1/notes/{id}/reads", get().to(notes::handlers::reads::list)),
        (Method::GET, "/api/v1/me/unread", get().to(notes::handlers::reads::unread)),
        (Method::GET, "/api/v1/changes", get().to(crate::sync::handlers::list)),
        (Method::GET, "/api/v1/changes/stream", get().to(crate::sync::handlers::stream)),
        (Method::GET, "/api/v1/patients/{id}/timeline", get().to(notes::handlers::timeline::list)),
        (Method::GET, "/api/v1/patients/{id}/vitals", get().to(notes::handlers::vitals::trend)),
        (Method::POST, "/api/v1/notes/{id}/attachments", post().to(attachments::handlers::add_to_note)),
        (Method::GET, "/api/v1/notes/{id}/attachments", get().to(attachments::handlers::list_for_note)),
        (Method::POST, "/api/v1/discharge-cases/{id}/attachments", post().to(attachments::handlers::add_to_case)),
        (Method::GET, "/api/v1/discharge-cases/{id}/attachments", get().to(attachments::handlers::list_for_case)),
        (Method::GET, "/api/v1/attachments/{id}", get().to(attachments::handlers::get)),
        (Method::GET, "/api/v1/attachments/{id}/content", get().to(attachments::handlers::content)),
        (Method::GET, "/api/v1/attachments/{id}/thumbnail", get().to(attachments::handlers::thumbnail)),
        (Method::POST, "/api/v1/attachments/{id}/entered-in-error", post().to(attachments::handlers::mark_in_error)),
        // Medications, allergies and the emergency card.
        (Method::GET, "/api/v1/patients/{id}/medications", get().to(care::handlers::medications::list)),
        (Method::POST, "/api/v1/patients/{id}/medications", post().to(care::handlers::records::add::<Medication>)),
        (Method::GET, "/api/v1/medications/{id}", get().to(care::handlers::records::get::<Medication>)),
        (Method::PUT, "/api/v1/medications/{id}", put().to(care::handlers::records::change::<Medication>)),
        (Method::GET, "/api/v1/medications/{id}/versions", get().to(care::handlers::records::versions::<Medication>)),
        (
            Method::POST,
            "/api/v1/medications/{id}/entered-in-error",
            post().to(care::handlers::records::entered_in_error::<Medication>),
        ),
        (
            Method::POST,
            "/api/v1/patients/{id}/medication-reconciliations",
            post().to(care::handlers::medications::reconcile),
        ),
        (Method::GET, "/api/v1/patients/{id}/allergies", get().to(care::handlers::allergies::list)),
        (Method::POST, "/api/v1/patients/{id}/allergies", post().to(care::handlers::records::add::<Allergy>)),
        (Method::GET, "/api/v1/allergies/{id}", get().to(care::handlers::records::get::<Allergy>)),
        (Method::PUT, "/api/v1/allergies/{id}", put().to(care::handlers::records::change::<Allergy>)),
        (Method::GET, "/api/v1/allergies/{id}/versions", get().to(care::handlers::records::versions::<Allergy>)),
        (
            Method::POST,
            "/api/v1/allergies/{id}/entered-in-error",
            post().to(care::handlers::records::entered_in_error::<Allergy>),
        ),
        // The visit week.
        (Method::GET, "/api/v1/patients/{id}/visit-plans", get().to(care::handlers::week::list_plans)),
        (Method::POST, "/api/v1/patients/{id}/visit-plans", post().to(care::handlers::records::add::<VisitPlan>)),
        (Method::GET, "/api/v1/visit-plans/{id}", get().to(care::handlers::records::get::<VisitPlan>)),
        (Method::PUT, "/api/v1/visit-plans/{id}", put().to(care::handlers::records::change::<VisitPlan>)),
        (Method::GET, "/api/v1/visit-plans/{id}/versions", get().to(care::handlers::records::versions::<VisitPlan>)),
        (Method::GET, "/api/v1/patients/{id}/appointments", get().to(care::handlers::week::list_appointments)),
        (Method::POST, "/api/v1/patients/{id}/appointments", post().to(care::handlers::records::add::<Appointment>)),
        (Method::GET, "/api/v1/appointments/{id}", get().to(care::handlers::records::get::<Appointment>)),
        (Method::PUT, "/api/v1/appointments/{id}", put().to(care::handlers::records::change::<Appointment>)),
        (Method::GET, "/api/v1/appointments/{id}/versions", get().to(care::handlers::records::versions::<Appointment>)),
        (Method::GET, "/api/v1/patients/{id}/week", get().to(care::handlers::week::patient_week)),
        (Method::GET, "/api/v1/me/week", get().to(care::handlers::week::my_week)),
        (Method::GET, "/api/v1/patients/{id}/emergency-card", get().to(care::handlers::card::get)),
        (Method::PUT, "/api/v1/patients/{id}/emergency-card", put().to(care::handlers::card::put)),
        (Method::GET, "/api/v1/patients/{id}/emergency-card/versions", get().to(care::handlers::card::versions)),
        (Method::GET, "/api/v1/patients/{id}/emergency-card/print", get().to(care::handlers::card::print)),
    ]
}

/// The metrics label of a matched route pattern: the pattern itself when the route table holds
/// it, so that no request can add a label value.
pub fn route_label(pattern: Option<&str>) -> Option<&'static str> {
    static PATTERNS: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
        std::sync::LazyLock::new(|| routes().into_iter().map(|(_, path, _)| path).collect());
    pattern.and_then(|p| PATTERNS.get(p).copied())
}

/// `(method, path)` of every route, for the contract test.
pub fn route_table() -> Vec<(String, String)> {
    routes().into_iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect()
}

fn configure(cfg: &mut web::ServiceConfig) {
    let mut by_path: BTreeMap<&'static str, Vec<(Method, Route)>> = BTreeMap::new();
    for (method, path, route) in routes() {
        by_path.entry(path).or_default().push((method, route));
    }
    for (path, routes) in by_path {
        let allow: Vec<String> = routes.iter().map(|(m, _)| m.to_string()).collect();
        let allow = allow.join(", ");
        let mut resource = web::resource(path);
        for (_, route) in routes {
            resource = resource.route(route);
        }
        // A known path with the wrong method: 405 with `Allow`, as problem+json.
        resource = resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move { Err::<HttpResponse, AppError>(AppError::method_not_allowed(&allow)) }
        }));
        cfg.service(resource);
    }
}

fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let message = err.to_string();
    let message = message.trim_start_matches("Query deserialize error: ").to_string();
    let quoted = message.split('`').nth(1).unwrap_or("query").to_string();
    let field = if message.starts_with("unknown field") || message.starts_with("missing field") {
        quoted
    } else {
        "query".to_string()
    };
    AppError::validation(vec![FieldError::new(
        field,
        "invalid_query",
        format!("検索条件が正しくありません: {message}"),
        format!("A query parameter is not valid: {message}"),
    )])
    .into()
}

async fn not_found() -> AppResult<HttpResponse> {
    Err(AppError::not_found())
}

/// A request whose path or query string carries a NUL character (`%00`) never reaches a
/// handler: no id holds one, and PostgreSQL cannot even compare text with one. The path answers
/// 404 like any id that names nothing, the query 422 like any malformed parameter.
fn refuse_nul<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>>>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    let has_nul = |s: &str| s.contains("%00");
    let refusal = if has_nul(req.path()) {
        Some(AppError::not_found())
    } else if has_nul(req.query_string()) && !console::is_page_path(req.path()) {
        // A console page reads its query itself: a NUL in a return path or a flag it ignores,
        // one in a filter or cursor names that field, and a wrong method is still a 405.
        Some(AppError::validation(vec![FieldError::new(
            "query",
            "invalid_query",
            "検索条件に NUL 文字は使えません。",
            "A query parameter must not contain a NUL character.",
        )]))
    } else {
        None
    };
    match refusal {
        Some(e) => {
            let res = req.error_response(e);
            Box::pin(async move { Ok(res) })
        }
        None => {
            let call = srv.call(req);
            Box::pin(async move { Ok(call.await?.map_into_boxed_body()) })
        }
    }
}

/// On the console's paths (`console::is_page_path`) every refusal made before a handler ran —
/// a NUL in the path or query, a wrong method, an unreadable path or body — answers as the
/// console's page for it, like every refusal its handlers make.
fn console_pages<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let page = console::is_page_path(req.path());
    let call = srv.call(req);
    async move {
        let res = call.await?.map_into_boxed_body();
        if !page {
            return Ok(res);
        }
        let refused = res.response().error().and_then(|e| e.as_error::<AppError>()).map(|e| {
            let mut page = console::handlers::refusal_page(res.request(), e);
            if let Some(allow) = res.headers().get(header::ALLOW) {
                page.headers_mut().insert(header::ALLOW, allow.clone());
            }
            page
        });
        Ok(match refused {
            Some(page) => res.into_response(page),
            None => res,
        })
    }
}

/// Re-renders error details in English for readers who prefer it, and logs each request
/// without its query string or body (they may hold patient data).
fn language_and_log<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let lang = Lang::from_accept_language(req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    let started = Instant::now();
    let method = req.method().clone();
    let metrics = req.app_data::<web::Data<AppState>>().map(|s| s.metrics.clone());
    let call = srv.call(req);
    async move {
        let mut res = call.await?.map_into_boxed_body();
        if lang == Lang::En {
            let english = res.response().error().and_then(|e| e.as_error::<AppError>()).map(|e| e.response(Lang::En));
            if let Some(english) = english {
                res = res.into_response(english);
            }
        }
        let pattern = res.request().match_pattern();
        let route = pattern.clone().unwrap_or_else(|| "unmatched".into());
        if let Some(m) = metrics {
            m.observe(
                method.as_str(),
                route_label(pattern.as_deref()),
                res.status().as_u16(),
                started.elapsed().as_secs_f64(),
            );
        }
        tracing::info!(
            // An invented method may be any length: the log names the standard ones only.
            method = crate::metrics::method_label(method.as_str()),
            route = %route,
            status = res.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        Ok(res)
    }
}

/// Every application instance: the same routes, error handling and middleware.
pub fn build_app(
    state: AppState,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(state))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(|_, _| AppError::not_found().into()))
        .app_data(web::PayloadConfig::default().limit(crate::api::BODY_LIMIT))
        .configure(configure)
        .default_service(web::to(not_found))
        .wrap_fn(refuse_nul)
        .wrap_fn(console_pages)
        .wrap_fn(language_and_log)
        // Outermost, so that re-rendered answers carry these headers too.
        .wrap(
            DefaultHeaders::new()
                .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .add((header::CACHE_CONTROL, "no-store")),
        )
}

/// Starts the HTTP server on an already-bound listener (tests bind port 0).
pub fn serve(listener: TcpListener, state: AppState) -> std::io::Result<Server> {
    let server = HttpServer::new(move || build_app(state.clone()))
        .listen(listener)?
        .shutdown_timeout(30)
        .client_request_timeout(Duration::from_secs(30))
        // Idle connections stay open longer than the clients and proxies in front keep them
        // (load balancers commonly 60 s): with actix's 5 s a proxy or client could send a
        // request on a connection the server was closing just then, and get no answer at all.
        .keep_alive(Duration::from_secs(75))
        .run();
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn route_labels_come_from_the_route_table() {
        assert_eq!(route_label(Some("/api/v1/patients/{id}")), Some("/api/v1/patients/{id}"));
        assert_eq!(route_label(Some("/api/v1/patients/0193a3f2")), None);
        assert_eq!(route_label(None), None);
    }
}
