//! `PUT /notes/{id}/read`, `GET /notes/{id}/reads` and `GET /me/unread`.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::access::{self, Need};
use crate::api::PageQuery;
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::db::now;
use crate::error::AppResult;
use crate::notes::reads::{self, Receipt};
use crate::state::AppState;

#[derive(Serialize)]
struct ReceiptList {
    note_id: String,
    read_count: usize,
    items: Vec<Receipt>,
}

/// `PUT /notes/{id}/read`: marks the note read for the caller (care-team members), idempotently.
pub async fn mark(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let note_id = path.into_inner().into_string();
    state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let note = access::note_to_mark_read(conn, &me, &note_id)?;
            if reads::mark(conn, &note, &me.id, now())? {
                audit::record(
                    conn,
                    &me,
                    Event::new(Action::Create, Resource::NoteRead, Some(&note.id), Some(&note.patient_id)),
                )?;
            }
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /notes/{id}/reads`: who read the note, and when.
pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let note_id = path.into_inner().into_string();
    let list = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let (note, _, _) = access::note(conn, &me, &note_id, Need::Read)?;
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::NoteRead, Some(&note.id), Some(&note.patient_id)),
            )?;
            let items = reads::receipts(conn, &note.id)?;
            Ok(ReceiptList { note_id: note.id, read_count: items.len(), items })
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// `GET /me/unread`: for each patient on whose team I am now, how many notes I have not read and
/// the newest few of them — what is new when a nurse starts the day — a page at a time. Each
/// patient shown is an audited read.
pub async fn unread(
    state: web::Data<AppState>,
    bearer: Bearer,
    paging: crate::api::Query<PageQuery>,
) -> AppResult<HttpResponse> {
    let paging = paging.into_inner();
    let summary = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let summary = reads::summary(conn, &me.id, &paging)?;
            let reads = summary
                .items
                .iter()
                .map(|p| Event::new(Action::Read, Resource::Note, None, Some(&p.patient_id)).detail("unread"))
                .collect();
            audit::record_all(conn, &me, reads)?;
            Ok(summary)
        })
        .await?;
    Ok(HttpResponse::Ok().json(summary))
}
