//! `GET /wards/{code}/caseload` and `GET /wards/summary`.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Serialize;

pub use super::CaseloadQuery;
use super::{Filter, SortKey, Summary};
use crate::access;
use crate::api;
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::error::{AppError, AppResult, Lang};
use crate::state::AppState;

fn wants_csv(req: &HttpRequest) -> bool {
    req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|m| m.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("text/csv"))
    })
}

/// `GET /wards/{code}/caseload`: the ward's coordinating physicians only (anyone else: 404, as
/// for an unknown ward). Each listed patient's read is audited.
pub async fn caseload(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<String>,
    query: api::Query<CaseloadQuery>,
) -> AppResult<HttpResponse> {
    let ward = path.into_inner();
    let request = query.into_inner().request()?;
    if wants_csv(&req) {
        let lang = Lang::from_accept_language(req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
        return export(&state, bearer, ward, request.filter, request.order, lang).await;
    }
    let page = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            super::read_page(conn, &me, &ward, request)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Rows read per step of a CSV download: small enough that a step is a few milliseconds and
/// a part of the file a few hundred kilobytes, large enough that 15,000 rows are 30 steps.
const EXPORT_PART: i64 = 500;

/// Where a CSV download has got to.
enum Export {
    Header,
    Rows(Option<super::After>),
    Done,
}

/// The whole filtered ward as one CSV download (`Accept: text/csv`; `limit` and `cursor` do not
/// apply), streamed as it is read, so memory stays flat however large the ward.
///
/// The export is audited — and that record committed — before the response starts. Then each
/// part is read in its own short step (one transaction, on the blocking pool) in keyset order,
/// the caller's access checked again, each listed patient's read audited in that step, and the
/// part written out after the step committed: no transaction is held while the network takes
/// the bytes, and no patient's row leaves before its read is durable. A step that fails after
/// the response began ends the download without its final chunk, so a client sees an
/// incomplete transfer rather than a file that looks whole.
pub async fn export(
    state: &AppState,
    bearer: Bearer,
    ward: String,
    filter: Filter,
    order: (SortKey, bool),
    lang: Lang,
) -> AppResult<HttpResponse> {
    let now = crate::db::now();
    {
        let (bearer, ward) = (bearer.clone(), ward.clone());
        state
            .db
            .run(move |conn| {
                let me = bearer.user(conn)?;
                access::ward_caseload(conn, &me, &ward)?;
                audit::record(conn, &me, Event::new(Action::Execute, Resource::Caseload, None, None).detail(ward))
            })
            .await?;
    }
    let db = state.db.clone();
    let parts = futures_util::stream::unfold(Export::Header, move |next| {
        let (db, bearer, ward, filter) = (db.clone(), bearer.clone(), ward.clone(), filter.clone());
        async move {
            let after = match next {
                Export::Done => return None,
                Export::Header => return Some((Ok(web::Bytes::from(super::csv_header(lang))), Export::Rows(None))),
                Export::Rows(after) => after,
            };
            let step = db
                .run(move |conn| {
                    let me = bearer.user(conn)?;
                    let mut filter = filter;
                    filter.withheld = access::ward_caseload(conn, &me, &ward)?;
                    let (rows, next) = super::part(conn, &ward, &filter, order, after.as_ref(), EXPORT_PART, now)?;
                    let reads = rows
                        .iter()
                        .map(|r| {
                            Event::new(Action::Read, Resource::Caseload, Some(&r.id), Some(&r.id)).detail(ward.clone())
                        })
                        .collect();
                    audit::record_all(conn, &me, reads)?;
                    Ok((rows, next))
                })
                .await;
            match step {
                Ok((rows, next)) => {
                    let next = match next {
                        Some(a) => Export::Rows(Some(a)),
                        None => Export::Done,
                    };
                    Some((Ok(web::Bytes::from(super::csv_rows(&rows, lang))), next))
                }
                Err(e) => {
                    tracing::warn!(error = ?e, "caseload CSV download ended early");
                    Some((Err(e), Export::Done))
                }
            }
        }
    });
    Ok(HttpResponse::Ok().content_type("text/csv; charset=utf-8").streaming(parts))
}

#[derive(Serialize)]
struct WardSummary {
    ward_code: String,
    ward_name: String,
    #[serde(flatten)]
    counts: Summary,
}

#[derive(Serialize)]
struct WardSummaryList {
    items: Vec<WardSummary>,
}

/// `GET /wards/summary`: per-ward counts for city staff and system administrators; no
/// patient-level data, so no patient read is audited.
pub async fn summary(state: web::Data<AppState>, bearer: Bearer) -> AppResult<HttpResponse> {
    let items = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let org = crate::orgs::find(conn, access::my_organization(&me)?)?
                .ok_or_else(|| AppError::internal("user without organisation"))?;
            access::read_city_summary(&me, org.kind)?;
            let now = crate::db::now();
            crate::wards::all(conn)?
                .into_iter()
                .map(|w| {
                    let counts = super::summary(conn, &w.code, now)?;
                    Ok(WardSummary { counts, ward_code: w.code, ward_name: w.name })
                })
                .collect::<AppResult<Vec<_>>>()
        })
        .await?;
    Ok(HttpResponse::Ok().json(WardSummaryList { items }))
}
