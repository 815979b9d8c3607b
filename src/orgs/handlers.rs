//! `/organizations` and `/organizations/{id}`.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use chrono::Datelike;
use serde::Deserialize;

use super::{BusinessHoursView, Filter, NewOrganization, OrganizationChanges};
use crate::access;
use crate::api::{self, Check, Json, PageQuery};
use crate::auth::Bearer;
use crate::calendar::{self, BusinessHours};
use crate::db::DbConn;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::vocab::{OrgKind, OrgService};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub kind: Option<OrgKind>,
    pub ward: Option<String>,
    pub service: Option<OrgService>,
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

pub async fn list(state: web::Data<AppState>, bearer: Bearer, query: api::Query<ListQuery>) -> AppResult<HttpResponse> {
    let q = query.into_inner();
    let paging = PageQuery { limit: q.limit, cursor: q.cursor.clone() };
    let (limit, after) = (paging.limit()?, paging.after()?);
    let mut check = Check::new();
    check.line("q", q.q.as_deref(), 100);
    check.finish()?;
    let filter = Filter {
        kind: q.kind,
        ward_code: q.ward,
        service: q.service,
        q: q.q.filter(|s| !s.trim().is_empty()).map(|s| s.trim().to_string()),
    };
    let page = state
        .db
        .run(move |conn| {
            bearer.user(conn)?;
            let rows = super::search(conn, &filter, after.as_deref(), limit)?;
            let views = super::with_services(conn, rows)?;
            Ok(api::page(views, limit, |o| o.id.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    pub kind: OrgKind,
    pub name: String,
    pub name_kana: Option<String>,
    pub ward_code: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
    #[serde(default)]
    pub services: Vec<OrgService>,
}

fn check_ward(conn: &mut DbConn, ward_code: Option<&str>) -> AppResult<()> {
    match ward_code {
        Some(code) if !super::ward_exists(conn, code)? => Err(AppError::field(
            "ward_code",
            "unknown_ward",
            format!("区コード {code} は登録されていません。GET /api/v1/wards で一覧を確認できます。"),
            format!("Ward code {code} is not known. GET /api/v1/wards lists them."),
        )),
        _ => Ok(()),
    }
}

pub async fn create(
    state: web::Data<AppState>,
    bearer: Bearer,
    body: Json<CreateOrganization>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let mut check = Check::new();
    check.required_line("name", &body.name, 200);
    check.kana("name_kana", body.name_kana.as_deref(), 200);
    check.line("address", body.address.as_deref(), 300);
    check.phone("phone", body.phone.as_deref());
    check.finish()?;
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::create_organization(&me)?;
            check_ward(conn, body.ward_code.as_deref())?;
            let services = body.services.clone();
            let org = super::insert(
                conn,
                NewOrganization {
                    kind: body.kind,
                    name: body.name,
                    name_kana: body.name_kana,
                    ward_code: body.ward_code,
                    address: body.address,
                    phone: body.phone,
                    services: body.services,
                },
            )?;
            let mut names: Vec<String> = services.iter().map(|s| s.as_str().to_string()).collect();
            names.sort();
            names.dedup();
            org.view(names, Vec::new())
        })
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/organizations/{}", view.id)))
        .insert_header((header::ETAG, api::etag(view.version)))
        .json(view))
}

pub async fn get(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let view = state
        .db
        .run(move |conn| {
            bearer.user(conn)?;
            let org = super::find(conn, &id)?.ok_or_else(AppError::not_found)?;
            let mut views = super::with_services(conn, vec![org])?;
            views.pop().ok_or_else(AppError::not_found)
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header((header::ETAG, api::etag(view.version))).json(view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganization {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub name_kana: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub ward_code: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub address: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::api::double_option")]
    pub phone: Option<Option<String>>,
    pub services: Option<Vec<OrgService>>,
    pub active: Option<bool>,
    /// Replaces the business hours and closed days whole.
    pub business_hours: Option<BusinessHoursView>,
}

/// Reads business hours from the request, or names the fields at fault.
fn check_business_hours(check: &mut Check, view: &BusinessHoursView) -> Option<BusinessHours> {
    let opens = calendar::parse_minute(&view.opens_at);
    let closes = calendar::parse_minute(&view.closes_at);
    if opens.is_none() {
        check.push(
            "business_hours.opens_at",
            "invalid_time",
            "時刻は HH:MM で指定してください。",
            "Give the time as HH:MM.",
        );
    }
    if closes.is_none() {
        check.push(
            "business_hours.closes_at",
            "invalid_time",
            "時刻は HH:MM で指定してください。",
            "Give the time as HH:MM.",
        );
    }
    if let (Some(o), Some(c)) = (opens, closes) {
        if c <= o {
            check.push(
                "business_hours.closes_at",
                "closes_before_opening",
                "終業時刻は始業時刻より後にしてください。",
                "The closing time must come after the opening time.",
            );
        }
    }
    let mut days = Vec::new();
    for code in &view.closed_weekdays {
        match calendar::parse_weekday(code) {
            Some(d) => days.push(d),
            None => check.push(
                "business_hours.closed_weekdays",
                "invalid_weekday",
                "曜日は mon, tue, wed, thu, fri, sat, sun のいずれかです。",
                "A weekday is one of mon, tue, wed, thu, fri, sat, sun.",
            ),
        }
    }
    if view.closed_dates.len() > calendar::MAX_CLOSED_DATES {
        check.push(
            "business_hours.closed_dates",
            "too_many_closed_dates",
            format!("独自の休業日は{}日までです。", calendar::MAX_CLOSED_DATES),
            format!("An office names at most {} closed dates of its own.", calendar::MAX_CLOSED_DATES),
        );
    }
    let years = calendar::CLOSED_DATE_YEARS;
    if view.closed_dates.iter().any(|d| !years.contains(&d.year())) {
        check.push(
            "business_hours.closed_dates",
            "closed_date_out_of_range",
            format!("休業日は{}年から{}年までの日付です。", years.start(), years.end()),
            format!("A closed date lies in the years {} to {}.", years.start(), years.end()),
        );
    }
    let hours = BusinessHours::new(opens?, closes?, &days, view.closed_on_holidays, view.closed_year_end)
        .with_closed_dates(view.closed_dates.clone());
    if hours.closed_weekdays().len() == calendar::ALL_WEEKDAYS.len() {
        check.push(
            "business_hours.closed_weekdays",
            "never_open",
            "少なくとも1つの曜日は営業日にしてください。",
            "At least one weekday must be a business day.",
        );
    }
    Some(hours)
}

pub async fn update(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
    body: Json<UpdateOrganization>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let body = body.into_inner();
    let expected = api::if_match(&req)?;
    let mut check = Check::new();
    if let Some(name) = &body.name {
        check.required_line("name", name, 200);
    }
    if let Some(kana) = &body.name_kana {
        check.kana("name_kana", kana.as_deref(), 200);
    }
    if let Some(address) = &body.address {
        check.line("address", address.as_deref(), 300);
    }
    if let Some(phone) = &body.phone {
        check.phone("phone", phone.as_deref());
    }
    let business_hours = body.business_hours.as_ref().and_then(|h| check_business_hours(&mut check, h));
    check.finish()?;
    let mailer = state.mail.clone();
    let (view, _) = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let org = super::find(conn, &id)?.ok_or_else(AppError::not_found)?;
            access::update_organization(&me, &org.id, body.active.is_some())?;
            if let Some(Some(code)) = &body.ward_code {
                check_ward(conn, Some(code))?;
            }
            if expected.is_some_and(|v| v != org.version) {
                return Err(AppError::precondition_failed());
            }
            let deactivating = org.active && body.active == Some(false);
            let reactivating = !org.active && body.active == Some(true);
            if deactivating && crate::users::count_system_admins(conn, Some(&org.id))? == 0 {
                return Err(AppError::conflict(
                    "この組織を無効にすると、有効なシステム管理者がいなくなります。",
                    "Deactivating this organisation would leave the service without an active system administrator.",
                ));
            }
            let mut changes = OrganizationChanges {
                name: body.name,
                name_kana: body.name_kana,
                ward_code: body.ward_code,
                address: body.address,
                phone: body.phone,
                active: body.active,
                ..OrganizationChanges::default()
            };
            if let Some(hours) = &business_hours {
                changes.set_business_hours(hours);
            }
            if !super::update(conn, &org.id, org.version, &changes)? {
                return Err(AppError::precondition_failed());
            }
            if let Some(hours) = &business_hours {
                super::replace_closed_dates(conn, &org.id, hours.closed_dates())?;
            }
            if let Some(services) = &body.services {
                super::replace_services(conn, &org.id, services)?;
            }
            let org = super::find(conn, &org.id)?.ok_or_else(AppError::not_found)?;
            let queued = if deactivating {
                super::taken_out_of_service(conn, &mailer, &org)?
            } else {
                if reactivating {
                    super::refresh_caseload_of(conn, &org.id)?;
                }
                0
            };
            let mut views = super::with_services(conn, vec![org])?;
            Ok((views.pop().ok_or_else(AppError::not_found)?, queued))
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header((header::ETAG, api::etag(view.version))).json(view))
}
