//! `/discharge-cases`, `/tasks`, `/me/tasks` and `/discharge-task-templates`, one file per
//! resource: parse, ask the access policy, call this module's workflow and queries in the
//! request's one transaction, answer.

mod cases;
mod comments;
mod conferences;
mod tasks;
mod templates;

use actix_web::http::header;
use actix_web::HttpResponse;
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeDelta};
use serde::Serialize;

pub use cases::{cancel, close, discharge, get, list, open, update};
pub use comments::add_comment;
pub use conferences::{list_conferences, record_conference};
pub use tasks::{add_task, get_task, list_tasks, my_tasks, update_task};
pub use templates::list_templates;

use super::cases::Contact;
use crate::api::{self, Check};
use crate::db::{now, truncate};
use crate::idempotency::Answer;

/// How far ahead of the server's clock a reported time may be (clients' clocks drift).
const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

#[derive(Serialize)]
struct Items<T: Serialize> {
    items: Vec<T>,
}

/// A created record — or, for a retry with the same `Idempotency-Key`, the first answer again —
/// with its `Location` and, for a record that carries a version, its `ETag`.
fn created(answer: Answer, location: String) -> HttpResponse {
    let mut res = answer.builder();
    res.insert_header((header::LOCATION, location));
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: i32,
    }
    if let Ok(v) = serde_json::from_str::<Versioned>(&answer.body) {
        res.insert_header((header::ETAG, api::etag(v.version)));
    }
    answer.finish(res)
}

fn etagged<T: Serialize>(version: i32, view: &T) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::ETAG, api::etag(version))).json(view)
}

fn utc(t: DateTime<FixedOffset>) -> NaiveDateTime {
    truncate(t.naive_utc())
}

fn check_not_future(check: &mut Check, field: &str, t: NaiveDateTime) {
    if t > now() + CLOCK_SKEW {
        check.push(
            field,
            "in_future",
            format!("{field} が未来の日時になっています。"),
            format!("{field} is in the future."),
        );
    }
}

fn check_contact(check: &mut Check, contact: Option<&Contact>) {
    if let Some(c) = contact {
        check.required_line("contact.name", &c.name, 100);
        check.phone("contact.phone", c.phone.as_deref());
    }
}
