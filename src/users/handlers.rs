//! `/organizations/{id}/users` and `/users/{id}`.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::accounts::{self, UpdateUser};
use super::NewUser;
use crate::access::{self, AccountChange};
use crate::api::{self, Check, Json, PageQuery};
use crate::auth::{password, reset, tokens, Bearer};
use crate::error::{AppError, AppResult};
use crate::orgs;
use crate::state::AppState;
use crate::vocab::{AccountRole, Locale, Profession};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    pub name: String,
    pub name_kana: Option<String>,
    pub profession: Profession,
    pub role: Option<AccountRole>,
    pub locale: Option<Locale>,
    /// Left out, the person sets their own from the link of a welcome e-mail.
    pub password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListUsersQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
    query: api::Query<ListUsersQuery>,
) -> AppResult<HttpResponse> {
    let organization_id = path.into_inner().into_string();
    let q = query.into_inner();
    let paging = PageQuery { limit: q.limit, cursor: q.cursor };
    let (limit, after) = (paging.limit()?, paging.after()?);
    let page = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            orgs::find(conn, &organization_id)?.ok_or_else(AppError::not_found)?;
            let manages = access::manages_accounts_of(&me, &organization_id);
            let rows = super::list_by_organization(conn, &organization_id, !manages, after.as_deref(), limit)?;
            Ok(super::page(rows, limit, |u| access::sees_account_details(&me, u)))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

pub async fn create(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
    body: Json<CreateUser>,
) -> AppResult<HttpResponse> {
    let organization_id = path.into_inner().into_string();
    let body = body.into_inner();
    let mut check = Check::new();
    check.email("email", &body.email);
    check.required_line("name", &body.name, 100);
    check.kana("name_kana", body.name_kana.as_deref(), 100);
    check.finish()?;
    if let Some(p) = &body.password {
        password::check_policy("password", p, &body.email, &body.name)?;
    }

    let role = body.role.unwrap_or(AccountRole::Member);
    // Hashed only once the caller is known to be allowed (argon2 is deliberately costly), and
    // outside any transaction, in the bounded hashing pool; the insert checks again.
    let allowed_org = organization_id.clone();
    let allowed = bearer.clone();
    state
        .db
        .run(move |conn| {
            let me = allowed.user(conn)?;
            access::user_creation(conn, &me, &allowed_org, role, body.profession)
        })
        .await?;
    // Without a password the account gets the hash of a secret no one knows, so signing in to
    // it costs what any wrong password costs, until its owner sets one from the e-mail.
    let welcome = body.password.is_none();
    let secret = body.password.clone().unwrap_or_else(|| tokens::random_token(32));
    let hash = password::hash_bounded(secret).await?;
    let mailer = state.mail.clone();
    let user = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            access::user_creation(conn, &me, &organization_id, role, body.profession)?;
            if super::email_taken(conn, &body.email)? {
                return Err(super::email_taken_error());
            }
            let user = super::insert(
                conn,
                NewUser {
                    organization_id: Some(&organization_id),
                    email: &body.email,
                    name: &body.name,
                    name_kana: body.name_kana.as_deref(),
                    profession: body.profession,
                    role,
                    locale: body.locale.unwrap_or(Locale::Ja),
                    password_hash: hash,
                },
            )?;
            if welcome {
                reset::welcome(conn, &mailer, &user)?;
            }
            Ok(user)
        })
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/users/{}", user.id)))
        .insert_header((header::ETAG, api::etag(user.version)))
        .json(user.view(true)))
}

pub async fn get(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let (user, details) = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let user = super::find(conn, &id)?.ok_or_else(AppError::not_found)?;
            let details = access::read_user(&me, &user)?;
            Ok((user, details))
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header((header::ETAG, api::etag(user.version))).json(user.view(details)))
}

pub async fn update(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
    body: Json<UpdateUser>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let body = body.into_inner();
    let expected = api::if_match(&req)?;
    let mut check = Check::new();
    if let Some(name) = &body.name {
        check.required_line("name", name, 100);
    }
    if let Some(kana) = &body.name_kana {
        check.kana("name_kana", kana.as_deref(), 100);
    }
    check.finish()?;

    let user = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let change = AccountChange { profession: body.profession, role: body.role, active: body.active };
            let user = access::user_edit(conn, &me, &id, &change)?;
            accounts::edit(conn, &me, &user, expected, body)
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header((header::ETAG, api::etag(user.version))).json(user.view(true)))
}

/// `DELETE /users/{id}/totp`: an administrator resets the person's two-factor sign-in (a lost
/// phone and lost recovery codes); they sign in with their password and enrol again.
pub async fn reset_second_factor(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let mailer = state.mail.clone();
    state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let user = access::second_factor_reset(conn, &me, &id)?;
            crate::auth::enrolment::reset_second_factor(conn, &me, &mailer, &user)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /users/{id}/offboard`: the person leaves their organisation; everything they held ends
/// at once (`offboarding::offboard`). A repeated request answers the first record, changing
/// nothing.
pub async fn offboard(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
    body: Json<super::offboarding::OffboardUser>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let body = body.into_inner();
    let mut check = Check::new();
    check.required_line("reason", &body.reason, 500);
    check.finish()?;
    let mailer = state.mail.clone();
    let done = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let user = access::offboarding(conn, &me, &id)?;
            super::offboarding::offboard(conn, &me, &mailer, &user, body.reason.trim())
        })
        .await?;
    Ok(HttpResponse::Ok().json(done))
}

/// `GET /me/notification-preferences`: which alerts the caller gets by e-mail and by push.
pub async fn notification_preferences(state: web::Data<AppState>, bearer: Bearer) -> AppResult<HttpResponse> {
    let prefs = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            super::preferences::load(conn, &me.id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(prefs))
}

/// `PUT /me/notification-preferences`: changes the choices named in the body, keeps the others.
pub async fn set_notification_preferences(
    state: web::Data<AppState>,
    bearer: Bearer,
    body: Json<super::preferences::PreferencesInput>,
) -> AppResult<HttpResponse> {
    let input = body.into_inner();
    let prefs = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            super::preferences::save(conn, &me.id, &input)
        })
        .await?;
    Ok(HttpResponse::Ok().json(prefs))
}
