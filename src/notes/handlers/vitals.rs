//! `GET /patients/{id}/vitals`: the vital-sign series of a period, for a chart.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use crate::access::{self, Need};
use crate::api::Check;
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::db::{now, truncate};
use crate::error::AppResult;
use crate::notes::trends::{self, DEFAULT_DAYS, MAX_DAYS};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrendQuery {
    /// `occurred_at` at or after (RFC 3339); default `DEFAULT_DAYS` before `until`.
    pub since: Option<DateTime<Utc>>,
    /// `occurred_at` before (RFC 3339); default: no end.
    pub until: Option<DateTime<Utc>>,
}

/// `GET /patients/{id}/vitals?since&until`.
pub async fn trend(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
    query: crate::api::Query<TrendQuery>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let until = query.until.map(|t| truncate(t.naive_utc()));
    let since = match query.since {
        Some(t) => truncate(t.naive_utc()),
        None => until.unwrap_or_else(now) - Duration::days(DEFAULT_DAYS),
    };
    let mut check = Check::new();
    if let Some(u) = until {
        if u <= since {
            check.push(
                "until",
                "before_since",
                "until は since より後の日時にしてください。",
                "until must be after since.",
            );
        } else if u - since > Duration::days(MAX_DAYS) {
            check.push(
                "since",
                "period_too_long",
                format!("期間は {MAX_DAYS} 日以内にしてください。"),
                format!("The period must be at most {MAX_DAYS} days."),
            );
        }
    } else if now() - since > Duration::days(MAX_DAYS) {
        check.push(
            "since",
            "period_too_long",
            format!("期間は {MAX_DAYS} 日以内にしてください(until も指定できます)。"),
            format!("The period must be at most {MAX_DAYS} days (until may be given too)."),
        );
    }
    check.finish()?;
    let trend = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Read, Resource::Vitals)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::Vitals, None, Some(&patient_id)))?;
            trends::trend(conn, patient_id, since, until)
        })
        .await?;
    Ok(HttpResponse::Ok().json(trend))
}
