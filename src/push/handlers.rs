//! `/push/public-key` and `/me/push-subscriptions`: the key the app subscribes with, and a
//! person's own subscriptions.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::{SubscriptionInput, SubscriptionView};
use crate::access;
use crate::api::{Id, Items, Json};
use crate::auth::Bearer;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct PublicKey {
    /// The VAPID public key, base64url: the `applicationServerKey` of `pushManager.subscribe`.
    pub public_key: String,
}

/// `GET /push/public-key`: public, like any public key; 404 when push is not configured.
pub async fn public_key(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let key = state.push.public_key().ok_or_else(AppError::not_found)?;
    Ok(HttpResponse::Ok().json(PublicKey { public_key: key.to_string() }))
}

/// `POST /me/push-subscriptions`: registers this browser's subscription for the caller; 409 when
/// push is not configured.
pub async fn register(
    state: web::Data<AppState>,
    bearer: Bearer,
    body: Json<SubscriptionInput>,
) -> AppResult<HttpResponse> {
    let input = body.into_inner();
    // Without a VAPID key nothing could ever be sent to the subscription: say so rather than
    // keep one that stays silent.
    if state.push.public_key().is_none() {
        return Err(AppError::conflict(
            "このサーバーではプッシュ通知が設定されていないため、登録できません。通知はメールで届きます。",
            "Push notifications are not configured on this server, so a subscription cannot be registered. \
             Alerts still arrive by e-mail.",
        ));
    }
    super::check(&input, state.config.push_allow_loopback)?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let Some(subscription) = super::register(conn, &me.id, &input)? else {
                return Err(AppError::conflict(
                    format!(
                        "プッシュ通知の登録は1人{}件までです。使わなくなった端末の登録を削除してください。",
                        super::MAX_PER_USER
                    ),
                    format!(
                        "At most {} push subscriptions per person: delete those of devices no longer used.",
                        super::MAX_PER_USER
                    ),
                ));
            };
            Ok(SubscriptionView::from(subscription))
        })
        .await?;
    Ok(HttpResponse::Created().json(view))
}

/// `GET /me/push-subscriptions`: the caller's subscriptions.
pub async fn list(state: web::Data<AppState>, bearer: Bearer) -> AppResult<HttpResponse> {
    let items = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            Ok(super::for_user(conn, &me.id)?.into_iter().map(SubscriptionView::from).collect::<Vec<_>>())
        })
        .await?;
    Ok(HttpResponse::Ok().json(Items::of(items)))
}

/// `DELETE /me/push-subscriptions/{id}`: one of the caller's own (anyone else's: 404).
pub async fn delete(state: web::Data<AppState>, bearer: Bearer, path: web::Path<Id>) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let subscription = access::own_push_subscription(&me, super::find(conn, &id)?)?;
            super::remove(conn, &subscription.id)?;
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
