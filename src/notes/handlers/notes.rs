//! `/patients/{id}/notes`, `/notes/{id}`, amendments and versions.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::access::{self, Need};
use crate::api::{self, Check, Json, PageQuery};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::{Bearer, CurrentUser};
use crate::db::{now, DbConn};
use crate::error::{AppError, AppResult};
use crate::idempotency::{self, Answer};
use crate::notes::vitals::Vitals;
use crate::notes::{self, writing, ListFilter, Listed, Position, Soap, Version, VersionView};
use crate::state::AppState;
use crate::vocab::{NoteKind, Profession};

/// `POST /patients/{id}/notes`. The author, their organisation, the patient and the time of
/// recording come from the request, never from the body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostNote {
    pub kind: NoteKind,
    pub occurred_at: DateTime<Utc>,
    pub text: Option<String>,
    pub soap: Option<Soap>,
    pub vitals: Option<Vitals>,
    pub next_visit_on: Option<NaiveDate>,
    pub treatment_policy_changed: Option<bool>,
    pub treatment_policy_summary: Option<String>,
    pub cautions_for_team: Option<String>,
}

/// `POST /notes/{id}/amendments`: the reason and the whole new content (the kind stays).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Amend {
    pub reason: String,
    pub occurred_at: DateTime<Utc>,
    pub text: Option<String>,
    pub soap: Option<Soap>,
    pub vitals: Option<Vitals>,
    pub next_visit_on: Option<NaiveDate>,
    pub treatment_policy_changed: Option<bool>,
    pub treatment_policy_summary: Option<String>,
    pub cautions_for_team: Option<String>,
}

impl PostNote {
    fn draft(self) -> writing::Draft {
        writing::Draft {
            occurred_at: self.occurred_at,
            text: self.text,
            soap: self.soap,
            vitals: self.vitals,
            next_visit_on: self.next_visit_on,
            treatment_policy_changed: self.treatment_policy_changed,
            treatment_policy_summary: self.treatment_policy_summary,
            cautions_for_team: self.cautions_for_team,
        }
    }
}

impl Amend {
    fn draft(self) -> (String, writing::Draft) {
        let draft = writing::Draft {
            occurred_at: self.occurred_at,
            text: self.text,
            soap: self.soap,
            vitals: self.vitals,
            next_visit_on: self.next_visit_on,
            treatment_policy_changed: self.treatment_policy_changed,
            treatment_policy_summary: self.treatment_policy_summary,
            cautions_for_team: self.cautions_for_team,
        };
        (self.reason, draft)
    }
}

/// The answer to a POST that created a note version: `201`, `Location`, the note.
fn created(answer: Answer) -> HttpResponse {
    let mut res = answer.builder();
    if let Some(id) = answer.id() {
        res.insert_header((header::LOCATION, format!("/api/v1/notes/{id}")));
    }
    answer.finish(res)
}

/// `POST /patients/{id}/notes`: active care-team members post; `physician_info_sharing` is for
/// physicians only. Offline-safe with `Idempotency-Key`.
pub async fn create(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
    body: Json<PostNote>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let body = body.into_inner();
    let key = idempotency::key_from(&req)?;
    let fingerprint = idempotency::fingerprint("POST", req.path(), &body);
    let (mailer, limits) = (state.mail.clone(), state.config.escalation_limits());
    let answer = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let kind = body.kind;
            let patient = access::post_note(conn, &me, &patient_id, kind)?;
            let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
                let listed = writing::post(conn, &me, &mailer, &limits, &patient, kind, body.draft())?;
                let view = notes::view(conn, &me.id, listed)?;
                Answer::json(StatusCode::CREATED, &view)
            })?;
            answer.audit_replay(conn, &me, Resource::Note, &patient.id)?;
            Ok(answer)
        })
        .await?;
    Ok(created(answer))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub kind: Option<NoteKind>,
    pub author_id: Option<crate::api::Id>,
    pub profession: Option<Profession>,
    /// `occurred_at` at or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// `occurred_at` before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// `GET /patients/{id}/notes`: the notebook, newest `occurred_at` first, at current versions.
pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
    query: api::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let patient_id = path.into_inner().into_string();
    let q = query.into_inner();
    let (limit, after) = super::paging(&PageQuery { limit: q.limit, cursor: q.cursor.clone() }, Position::decode)?;
    let mut check = crate::api::Check::new();
    check.optional_id("author_id", q.author_id.as_ref());
    check.finish()?;
    let filter = ListFilter {
        kind: q.kind,
        author_id: q.author_id.map(crate::api::Id::into_string),
        profession: q.profession,
        since: q.since.map(|t| crate::db::truncate(t.naive_utc())),
        until: q.until.map(|t| crate::db::truncate(t.naive_utc())),
    };
    let page = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            access::patient(conn, &me, &patient_id, Need::Read, Resource::Note)?;
            let rows = notes::list(conn, &patient_id, &filter, after.as_ref(), limit)?;
            let shown = rows.len().min(limit as usize);
            audit::record(
                conn,
                &me,
                Event::new(Action::Read, Resource::Note, None, Some(&patient_id)).detail(format!("list:{shown}")),
            )?;
            let views = notes::views(conn, &me.id, rows)?;
            Ok(api::page(views, limit, |v| Position { at: v.occurred_at, id: v.id.clone() }.encode()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// A note as its own read shows it: with the files of its current version (thumbnails for
/// lists), those entered in error left out.
#[derive(Serialize)]
struct NoteRead {
    #[serde(flatten)]
    note: notes::NoteView,
    attachments: Vec<crate::attachments::AttachmentView>,
}

/// `GET /notes/{id}`: the current version, with its files. Reading it marks it read for a
/// care-team member (the first read time is kept).
pub async fn get(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<crate::api::Id>,
) -> AppResult<HttpResponse> {
    let note_id = path.into_inner().into_string();
    let view = state
        .db
        .read(move |conn| {
            let me = bearer.user(conn)?;
            let (note, _, relation) = access::note(conn, &me, &note_id, Need::Read)?;
            audit::record(conn, &me, Event::new(Action::Read, Resource::Note, Some(&note.id), Some(&note.patient_id)))?;
            let row = notes::current(conn, &note.id)?;
            let mut view = notes::view(conn, &me.id, row)?;
            if access::leaves_read_receipt(&relation) {
                notes::reads::mark_viewed(conn, &note, &me.id, &mut view)?;
            }
            let attachments = crate::attachments::for_note(conn, &note.id, view.version)?;
            Ok(NoteRead { note: view, attachments })
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header((header::ETAG, api::etag(view.note.version))).json(view))
}

/// `POST /notes/{id}/amendments`: the author records a new version with a reason; the old one
/// stays readable. `If-Match` (optional) names the version amended: 412 when it is no longer
/// current. Offline-safe with `Idempotency-Key`.
pub async fn amend(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<crate::api::Id>,
    body: Json<Amend>,
) -> AppResult<HttpResponse> {
    let note_id = path.into_inner().into_string();
    let body = body.into_inner();
    let if_match = api::if_match(&req)?;
    let key = idempotency::key_from(&req)?;
    let fingerprint = idempotency::fingerprint("POST", req.path(), &body);
    let answer = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (note, patient) = access::note_to_amend(conn, &me, &note_id)?;
            let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
                let current = notes::current_version(conn, &note.id)?;
                if if_match.is_some_and(|v| v != current) {
                    return Err(stale_amendment(conn, &me, &note)?);
                }
                let kind = note.kind;
                let (reason, draft) = body.draft();
                let mut check = Check::new();
                check.text("reason", &reason, writing::REASON_MAX_CHARS);
                let content = writing::check_content(&mut check, draft, kind, &patient);
                check.finish()?;
                let version = Version::new(&note, current + 1, content, &me.id, Some(reason), now());
                notes::add_version(conn, &version)?;
                let overridden = writing::scale_override(&version).map(|d| format!(" {d}")).unwrap_or_default();
                audit::record(
                    conn,
                    &me,
                    Event::new(Action::Update, Resource::Note, Some(&note.id), Some(&patient.id))
                        .detail(format!("version:{}{overridden}", version.version)),
                )?;
                let view =
                    notes::view(conn, &me.id, Listed { note: note.clone(), version, author_name: me.name.clone() })?;
                Answer::json(StatusCode::CREATED, &view)
            })?;
            answer.audit_replay(conn, &me, Resource::Note, &patient.id)?;
            Ok(answer)
        })
        .await?;
    Ok(created(answer))
}

/// The answer to an amendment of a version that is no longer current: 412 with the current
/// version (`current`, and its `ETag`), so that an app that amended offline can show both. The
/// current version is patient data: its read is audited, and kept with the refusal.
fn stale_amendment(conn: &mut DbConn, me: &CurrentUser, note: &notes::Note) -> AppResult<AppError> {
    audit::record(
        conn,
        me,
        Event::new(Action::Read, Resource::Note, Some(&note.id), Some(&note.patient_id)).detail("stale if-match"),
    )?;
    let row = notes::current(conn, &note.id)?;
    let view = notes::view(conn, &me.id, row)?;
    let current = serde_json::to_value(&view).map_err(|e| AppError::internal(e.to_string()))?;
    Ok(AppError::precondition_failed()
        .with_header(header::ETAG, api::etag(view.version))
        .with_member("current", current)
        .keeping_changes())
}

#[derive(Serialize)]
struct VersionList {
    note_id: String,
    items: Vec<VersionView>,
}

/// `GET /notes/{id}/versions`: every version, oldest first, with author, time and reason.
pub async fn versions(
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
                Event::new(Action::Read, Resource::Note, Some(&note.id), Some(&note.patient_id)).detail("versions"),
            )?;
            let items = notes::history(conn, &note.id)?;
            Ok(VersionList { note_id: note.id, items })
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}
