//! Reading the caller from the request: the bearer token's signature and claims, checked with
//! the service's keys (the application state), and the client's address. Apart from `auth`'s
//! model so that the model does not depend on the state.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use super::Bearer;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

impl FromRequest for Bearer {
    type Error = AppError;
    type Future = Ready<Result<Bearer, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(bearer_from(req))
    }
}

fn bearer_from(req: &HttpRequest) -> AppResult<Bearer> {
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| AppError::internal("application state missing"))?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(AppError::invalid_token)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(AppError::invalid_token)?;
    let claims = state.keys.verify_access(token.trim())?;
    Ok(Bearer { user_id: claims.sub, session_id: claims.sid, client_ip: client_ip(req) })
}

/// The client's address as the server saw it (for sessions and the audit trail).
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_string())
}
