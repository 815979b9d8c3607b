//! The care records' routes: `/patients/{id}/medications`, `/medications/{id}…`,
//! `/patients/{id}/medication-reconciliations`, `/patients/{id}/allergies`, `/allergies/{id}…`
//! `/patients/{id}/emergency-card…`, and the visit week (`/patients/{id}/visit-plans`,
//! `/visit-plans/{id}…`, `/patients/{id}/appointments`, `/appointments/{id}…`, `/patients/{id}/week`,
//! `/me/week`). Each handler parses, asks `access`, calls the care
//! query functions in one transaction and answers.

pub mod allergies;
pub mod card;
pub mod medications;
pub mod records;
pub mod week;

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};

use crate::idempotency::Answer;

/// The body of `POST …/entered-in-error`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnteredInError {
    pub reason: String,
}

/// Versions of one record, oldest first.
#[derive(Serialize)]
struct Versions<T: Serialize> {
    id: String,
    items: Vec<T>,
}

/// A created record's answer, with its `Location` and `ETag` (version 1).
fn created(answer: Answer, location: &str) -> HttpResponse {
    let mut res = answer.builder();
    if answer.status == StatusCode::CREATED {
        if let Some(id) = answer.id() {
            res.insert_header((header::LOCATION, format!("/api/v1/{location}/{id}")));
            res.insert_header((header::ETAG, crate::api::etag(1)));
        }
    }
    answer.finish(res)
}
