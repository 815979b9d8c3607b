//! `/notes/{id}/attachments`, `/discharge-cases/{id}/attachments` and `/attachments/{id}`.
//!
//! An upload is decided before its body is read (who may not add a file sends it for
//! nothing), received into a temporary file and stored in the object store outside any
//! transaction, then recorded — the access decision taken again — in one short transaction.
//! When that transaction does not record it (refused, over the count, or a repeated
//! `Idempotency-Key`), the stored object is removed at once; an object left by a server that
//! stopped in between is found by the sweep.

use std::ops::Range;

use actix_multipart::Multipart;
use actix_web::http::header::{self, Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::access::{self, Need};
use crate::attachments::{self, Attachment, Owner};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::error::{AppError, AppResult};
use crate::idempotency::{self, Answer};
use crate::notes;
use crate::state::AppState;

/// What a received file is added to, as the path named it.
enum Target {
    Note(String),
    Case(String),
}

/// Receives the file and records it for `target`; removes the stored objects whenever the
/// record does not keep them.
async fn add(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    payload: web::Payload,
    target: Target,
) -> AppResult<HttpResponse> {
    let key = idempotency::key_from(&req)?;
    let checked = {
        let (bearer, id) = (
            bearer.clone(),
            match &target {
                Target::Note(id) | Target::Case(id) => id.clone(),
            },
        );
        let note = matches!(target, Target::Note(_));
        move |conn: &mut crate::db::DbConn| {
            let me = bearer.user(conn)?;
            if note {
                Ok(access::attach_to_note(conn, &me, &id)?.1.id)
            } else {
                Ok(access::attach_to_case(conn, &me, &id)?.patient_id)
            }
        }
    };
    let patient_id = state.db.run(checked).await?;

    let tmp_dir = state.config.data_dir.join("tmp");
    let multipart = Multipart::new(req.headers(), payload);
    let config = &state.config;
    let clamd = config.clamd.as_ref().map(|c| (c, std::time::Duration::from_secs(config.clamd_timeout_secs)));
    let received =
        match attachments::receive(&state.store, multipart, &tmp_dir, config.attachment_max_bytes, clamd).await? {
            Ok(received) => received,
            Err(infected) => {
                // Refused and audited, with the signature clamd named; nothing was stored.
                let refusal = infected.refusal();
                let bearer = bearer.clone();
                state
                    .db
                    .run(move |conn| {
                        let me = bearer.user(conn)?;
                        let event = Event::new(Action::Create, Resource::Attachment, None, Some(&patient_id))
                            .denied()
                            .detail(format!("malware: {}", infected.signature));
                        audit::record(conn, &me, event)
                    })
                    .await?;
                return Err(refusal);
            }
        };
    let fingerprint = idempotency::fingerprint("POST", req.path(), &received);
    let max_per_note = state.config.attachment_max_per_note;
    let recorded = {
        let received = received.clone();
        state
            .db
            .run(move |conn| {
                let me = bearer.user(conn)?;
                let (patient_id, owner) = match target {
                    Target::Note(id) => {
                        let (note, patient) = access::attach_to_note(conn, &me, &id)?;
                        let version = notes::current_version(conn, &note.id)?;
                        (patient.id, Owner::Note { note_id: note.id, version })
                    }
                    Target::Case(id) => {
                        let case = access::attach_to_case(conn, &me, &id)?;
                        (case.patient_id, Owner::Case { case_id: case.id })
                    }
                };
                let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
                    let view = attachments::record(conn, &me, &patient_id, owner, &received, max_per_note)?;
                    Answer::json(StatusCode::CREATED, &view)
                })?;
                answer.audit_replay(conn, &me, Resource::Attachment, &patient_id)?;
                Ok(answer)
            })
            .await
    };
    let kept = matches!(&recorded, Ok(answer) if !answer.replayed);
    if !kept {
        for key in received.keys() {
            state.store.discard(&key).await;
        }
    }
    let answer = recorded?;
    let mut res = answer.builder();
    if let Some(id) = answer.id() {
        res.insert_header((header::LOCATION, format!("/api/v1/attachments/{id}")));
    }
    Ok(answer.finish(res))
}

/// `POST /notes/{id}/attachments`: a photo or document added to the note's current version by
/// its author (right after posting it, or after an amendment: older versions keep the files
/// they had). `multipart/form-data` with one part `file`; offline-safe with `Idempotency-Key`.
pub async fn add_to_note(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
    payload: web::Payload,
) -> AppResult<HttpResponse> {
    add(state, bearer, req, payload, Target::Note(path.into_inner().into_string())).await
}

/// `POST /discharge-cases/{id}/attachments`: a document (a referral letter, a discharge
/// summary) added to the case by a member of the patient's team.
pub async fn add_to_case(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
    payload: web::Payload,
) -> AppResult<HttpResponse> {
    add(state, bearer, req, payload, Target::Case(path.into_inner().into_string())).await
}

/// `GET /notes/{id}/attachments`: the files of the note's current version.
pub async fn list_for_note(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let note_id = path.into_inner().into_string();
    let items = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (note, patient, _) = access::note(conn, &me, &note_id, Need::Read)?;
            let version = notes::current_version(conn, &note.id)?;
            let items = attachments::for_note(conn, &note.id, version)?;
            let event = Event::new(Action::Read, Resource::Attachment, None, Some(&patient.id))
                .detail(format!("note list:{}", items.len()));
            audit::record(conn, &me, event)?;
            Ok(items)
        })
        .await?;
    Ok(HttpResponse::Ok().json(crate::api::Items::of(items)))
}

/// `GET /discharge-cases/{id}/attachments`: the case's documents.
pub async fn list_for_case(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let case_id = path.into_inner().into_string();
    let items = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (case, _) = access::case(conn, &me, &case_id, Need::Read)?;
            let items = attachments::for_case(conn, &case.id)?;
            let event = Event::new(Action::Read, Resource::Attachment, None, Some(&case.patient_id))
                .detail(format!("case list:{}", items.len()));
            audit::record(conn, &me, event)?;
            Ok(items)
        })
        .await?;
    Ok(HttpResponse::Ok().json(crate::api::Items::of(items)))
}

/// `POST /attachments/{id}/entered-in-error`: the reason a file should never have been added.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MarkInError {
    pub reason: String,
}

/// `POST /attachments/{id}/entered-in-error`: marks the file entered in error, by whoever added
/// it or the team's lead. It is never deleted: the row, the object and the audit trail stay, and
/// normal views (lists, the note, downloads) stop showing it. Offline-safe with
/// `Idempotency-Key`; marking one already marked answers 409.
pub async fn mark_in_error(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
    body: crate::api::Json<MarkInError>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let body = body.into_inner();
    let key = idempotency::key_from(&req)?;
    let fingerprint = idempotency::fingerprint("POST", req.path(), &body);
    let answer = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (a, patient, already) = access::attachment_to_mark_in_error(conn, &me, &id)?;
            let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
                let mut check = crate::api::Check::new();
                check.text("reason", &body.reason, notes::writing::REASON_MAX_CHARS);
                check.finish()?;
                if already {
                    return Err(AppError::conflict(
                        "この添付ファイルはすでに誤入力として取り消されています。",
                        "This file is already marked entered in error.",
                    ));
                }
                let marking = attachments::mark_in_error(conn, &a, &body.reason, &me.id)?;
                audit::record(
                    conn,
                    &me,
                    Event::new(Action::Update, Resource::Attachment, Some(&a.id), Some(&patient.id))
                        .detail("entered in error"),
                )?;
                Answer::json(StatusCode::CREATED, &marking)
            })?;
            answer.audit_replay(conn, &me, Resource::Attachment, &patient.id)?;
            Ok(answer)
        })
        .await?;
    let res = answer.builder();
    Ok(answer.finish(res))
}

/// `GET /attachments/{id}`: one attachment's metadata.
pub async fn get(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner().into_string();
    let view = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (a, patient) = access::attachment(conn, &me, &id, Need::Read)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::Attachment, Some(&a.id), Some(&patient.id)))?;
            attachments::view(conn, a)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The single byte range a `Range` header asks for, when it is one this object can satisfy;
/// anything else (several ranges, a malformed or unsatisfiable one) is answered with the whole
/// file, as RFC 9110 allows.
fn requested_range(req: &HttpRequest, size: u64, etag: &str) -> Option<Range<u64>> {
    let value = req.headers().get(header::RANGE)?.to_str().ok()?;
    // `If-Range` naming another version: the whole (current) file.
    if let Some(if_range) = req.headers().get(header::IF_RANGE) {
        if if_range.to_str().ok()? != etag {
            return None;
        }
    }
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let suffix: u64 = end.parse().ok()?;
        if suffix == 0 {
            return None;
        }
        size.saturating_sub(suffix)..size
    } else {
        let start: u64 = start.parse().ok()?;
        let end = if end.is_empty() { size - 1 } else { end.parse::<u64>().ok()?.min(size - 1) };
        if start > end {
            return None;
        }
        start..end + 1
    };
    (range.start < size).then_some(range)
}

/// `Content-Disposition: inline` with the file's name: an ASCII stand-in in `filename` for old
/// clients, the exact (Japanese) name in `filename*` (RFC 6266, RFC 5987/8187 UTF-8).
fn disposition(file_name: &str) -> ContentDisposition {
    let ascii: String = file_name
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    ContentDisposition {
        disposition: DispositionType::Inline,
        parameters: vec![
            DispositionParam::Filename(ascii),
            DispositionParam::FilenameExt(ExtendedValue {
                charset: Charset::Ext("UTF-8".into()),
                language_tag: None,
                value: file_name.as_bytes().to_vec(),
            }),
        ],
    }
}

/// Sends one stored object: audited before the first byte leaves, with its sniffed type, ETag
/// and range support.
async fn send(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    id: String,
    thumbnail: bool,
) -> AppResult<HttpResponse> {
    let a: Attachment = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (a, patient) = access::attachment(conn, &me, &id, Need::Read)?;
            if thumbnail && a.thumbnail_key.is_none() {
                // The attachment exists and may be read; it simply has no thumbnail.
                audit::record(
                    conn,
                    &me,
                    Event::new(Action::Read, Resource::Attachment, Some(&a.id), Some(&patient.id))
                        .detail("no thumbnail"),
                )?;
                return Err(AppError::not_found().keeping_changes());
            }
            let what = if thumbnail { "thumbnail" } else { "content" };
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::Attachment, Some(&a.id), Some(&patient.id)).detail(what),
            )?;
            Ok(a)
        })
        .await?;
    let (key, content_type, etag) = match (&a.thumbnail_key, thumbnail) {
        (Some(key), true) => (key.clone(), "image/jpeg", format!("\"{}-thumb\"", a.sha256)),
        _ => (a.storage_key.clone(), a.content_type.as_str(), format!("\"{}\"", a.sha256)),
    };
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if not_modified {
        return Ok(HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish());
    }
    let size = if thumbnail { None } else { Some(u64::try_from(a.byte_size).unwrap_or(0)) };
    let range = size.and_then(|size| requested_range(&req, size, &etag));
    let partial = range.is_some();
    let object = state.store.get(&key, range).await?;
    let mut res = if partial { HttpResponse::PartialContent() } else { HttpResponse::Ok() };
    res.insert_header((header::CONTENT_TYPE, content_type))
        .insert_header(disposition(&a.file_name))
        .insert_header((header::ETAG, etag))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "private, no-store"));
    if size.is_some() {
        res.insert_header((header::ACCEPT_RANGES, "bytes"));
    }
    if let (true, Some(size)) = (partial, size) {
        let r = &object.range;
        res.insert_header((header::CONTENT_RANGE, format!("bytes {}-{}/{size}", r.start, r.end.saturating_sub(1))));
    }
    let length = object.range.end - object.range.start;
    let body = object.stream.map(|chunk| {
        chunk.map_err(|e| {
            tracing::warn!(error = %e, "object store: reading an attachment failed midway");
            std::io::Error::other("object store read failed")
        })
    });
    Ok(res.no_chunking(length).streaming(body))
}

/// `GET /attachments/{id}/content`: the file itself.
pub async fn content(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    send(state, bearer, req, path.into_inner().into_string(), false).await
}

/// `GET /attachments/{id}/thumbnail`: a small JPEG of a photo, for lists.
pub async fn thumbnail(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    send(state, bearer, req, path.into_inner().into_string(), true).await
}
