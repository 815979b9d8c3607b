//! `/organizations/{id}/webhooks`: an organisation's administrators register, list, disable,
//! enable and re-key the endpoints of their partner systems.

use actix_web::{web, HttpResponse};

use super::{EndpointInput, EndpointView, EndpointWithSecret, Registration};
use crate::access;
use crate::api::{Id, Items, Json};
use crate::auth::Bearer;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// `GET /organizations/{id}/webhooks`: the organisation's endpoints, without their secrets.
pub async fn list(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let organization_id = path.into_inner().into_string();
    let items = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::manage_webhooks(&me, &organization_id)?;
            let endpoints = super::for_organization(conn, &organization_id)?;
            Ok(endpoints.iter().map(EndpointView::from).collect::<Vec<_>>())
        })
        .await?;
    Ok(HttpResponse::Ok().json(Items::of(items)))
}

/// `POST /organizations/{id}/webhooks`: registers an endpoint; the answer shows its secret, the
/// only time it is shown. The same URL twice is refused (409), so a registration retried after
/// a lost answer never doubles the deliveries.
pub async fn register(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<Id>,
    body: Json<EndpointInput>,
) -> AppResult<HttpResponse> {
    let organization_id = path.into_inner().into_string();
    let input = body.into_inner();
    let allow_loopback = state.config.webhook_allow_loopback;
    let sealer = state.sealer.clone();
    let created = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::manage_webhooks(&me, &organization_id)?;
            super::check(&input, allow_loopback)?;
            match super::register(conn, &sealer, &organization_id, &input.url, &me.id)? {
                Registration::Created(endpoint, secret) => {
                    tracing::info!(id = %endpoint.id, organization = %organization_id, by = %me.id, "webhook endpoint registered");
                    Ok(EndpointWithSecret::new(&endpoint, secret))
                }
                Registration::Duplicate => Err(AppError::conflict(
                    "この URL は既に登録されています。シークレットを失った場合は再発行してください。",
                    "This URL is registered already; if its secret was lost, rotate it.",
                )),
                Registration::TooMany => Err(AppError::conflict(
                    format!(
                        "Webhook の送信先は1組織{}件までです。使わなくなった送信先を停止するか整理してください。",
                        super::MAX_PER_ORGANIZATION
                    ),
                    format!("At most {} webhook endpoints per organisation.", super::MAX_PER_ORGANIZATION),
                )),
            }
        })
        .await?;
    Ok(HttpResponse::Created().json(created))
}

/// `POST /organizations/{id}/webhooks/{webhook_id}/disable`.
pub async fn disable(state: web::Data<AppState>, bearer: Bearer, path: web::Path<(Id, Id)>) -> AppResult<HttpResponse> {
    set_enabled(state, bearer, path, false).await
}

/// `POST /organizations/{id}/webhooks/{webhook_id}/enable`: also after the service disabled it
/// for failing; the count of failures starts again.
pub async fn enable(state: web::Data<AppState>, bearer: Bearer, path: web::Path<(Id, Id)>) -> AppResult<HttpResponse> {
    set_enabled(state, bearer, path, true).await
}

async fn set_enabled(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<(Id, Id)>,
    enabled: bool,
) -> AppResult<HttpResponse> {
    let (organization_id, id) = path.into_inner();
    let (organization_id, id) = (organization_id.into_string(), id.into_string());
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let endpoint = access::webhook_endpoint(&me, &organization_id, super::find(conn, &id)?)?;
            let endpoint = super::set_enabled(conn, &endpoint.id, enabled)?;
            tracing::info!(id = %endpoint.id, by = %me.id, enabled, "webhook endpoint switched");
            Ok(EndpointView::from(&endpoint))
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `POST /organizations/{id}/webhooks/{webhook_id}/rotate-secret`: a new secret, shown once;
/// deliveries from now on are signed with it.
pub async fn rotate_secret(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<(Id, Id)>,
) -> AppResult<HttpResponse> {
    let (organization_id, id) = path.into_inner();
    let (organization_id, id) = (organization_id.into_string(), id.into_string());
    let sealer = state.sealer.clone();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let endpoint = access::webhook_endpoint(&me, &organization_id, super::find(conn, &id)?)?;
            let (endpoint, secret) = super::rotate_secret(conn, &sealer, &endpoint.id)?;
            tracing::info!(id = %endpoint.id, by = %me.id, "webhook secret rotated");
            Ok(EndpointWithSecret::new(&endpoint, secret))
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}
