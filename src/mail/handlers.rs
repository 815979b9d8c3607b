//! `/outbox` and `/outbox/{id}/retry`: how far behind delivery is, what was given up, and
//! putting a given-up e-mail back in the queue. System administrators only.

use actix_web::{web, HttpResponse};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::outbox::{self, Channel, EmailStatus, OutboxEmail};
use super::templates::MailKind;
use crate::access;
use crate::api::{self, Page, PageQuery};
use crate::auth::Bearer;
use crate::db;
use crate::error::AppResult;
use crate::state::AppState;

/// An outbox e-mail as operators see it: who, what kind, what happened; never the body.
#[derive(Debug, Serialize)]
pub struct OutboxEmailView {
    pub id: String,
    /// `email`, `push` or `webhook`: for a push message `to_address` is the push service's
    /// origin, for a webhook event the endpoint's, and `subject` the event type.
    pub channel: Channel,
    pub kind: MailKind,
    pub status: EmailStatus,
    pub recipient_user_id: Option<String>,
    pub to_address: String,
    pub locale: String,
    pub subject: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub message_id: String,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "api::utc")]
    pub next_attempt_at: NaiveDateTime,
}

impl From<OutboxEmail> for OutboxEmailView {
    fn from(e: OutboxEmail) -> OutboxEmailView {
        OutboxEmailView {
            id: e.id,
            channel: e.channel,
            kind: e.kind,
            status: e.status,
            recipient_user_id: e.recipient_user_id,
            to_address: e.to_address,
            locale: e.locale,
            subject: e.subject,
            attempts: e.attempts,
            last_error: e.last_error,
            message_id: e.message_id,
            created_at: e.created_at,
            next_attempt_at: e.next_attempt_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct OutboxStatus {
    pub pending: i64,
    pub sent: i64,
    pub dead: i64,
    pub oldest_pending_age_secs: Option<i64>,
    pub dead_emails: Page<OutboxEmailView>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

pub async fn status(
    state: web::Data<AppState>,
    bearer: Bearer,
    query: api::Query<StatusQuery>,
) -> AppResult<HttpResponse> {
    let q = query.into_inner();
    let paging = PageQuery { limit: q.limit, cursor: q.cursor };
    let (limit, after) = (paging.limit()?, paging.after()?);
    let status = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::operate_outbox(&me)?;
            let depth = outbox::depth(conn)?;
            let sent = outbox::count_sent(conn)?;
            let rows = outbox::dead_page(conn, after.as_deref(), limit)?;
            let views: Vec<OutboxEmailView> = rows.into_iter().map(OutboxEmailView::from).collect();
            Ok(OutboxStatus {
                pending: depth.pending,
                sent,
                dead: depth.dead,
                oldest_pending_age_secs: depth.oldest_pending_age_secs(db::now()),
                dead_emails: api::page(views, limit, |e| e.id.clone()),
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(status))
}

pub async fn retry(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let email = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::operate_outbox(&me)?;
            let email = outbox::retry(conn, &id, db::now())?;
            tracing::info!(id = %email.id, by = %me.id, "dead e-mail put back in the queue");
            Ok(OutboxEmailView::from(email))
        })
        .await?;
    Ok(HttpResponse::Ok().json(email))
}
