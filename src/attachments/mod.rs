//! Photos and documents on notes and discharge cases (the wound photo a visiting nurse shares,
//! the hospital's 診療情報提供書 as a PDF).
//!
//! The bytes live in the object store ([`store`]) under random keys; the `attachments` row,
//! recorded in one short transaction after the object is stored, says what the file is (name,
//! type read from its content, size, SHA-256), whose it is (patient, note and the note version it
//! was added at, or discharge case) and who added it. An attachment is never edited or deleted:
//! like a note, it can only be marked entered in error (with a reason), which hides it from
//! normal views. A note version shows the files added up to it, so an amendment keeps the old
//! version's files as they were.

pub mod handlers;
pub mod photos;
pub mod scan;
pub mod store;
pub mod upload;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::api;
use crate::db::schema::{attachment_errors, attachments, users};
use crate::db::DbConn;
use crate::error::{AppError, AppResult};
use crate::vocab::AttachmentType;

/// One stored file.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = attachments)]
pub struct Attachment {
    pub id: String,
    pub patient_id: String,
    pub note_id: Option<String>,
    pub note_version: Option<i32>,
    pub case_id: Option<String>,
    pub file_name: String,
    pub content_type: AttachmentType,
    pub byte_size: i64,
    pub sha256: String,
    pub storage_key: String,
    pub thumbnail_key: Option<String>,
    pub uploaded_by: String,
    pub created_at: NaiveDateTime,
    /// SHA-1, hex (FHIR's Attachment.hash); none for files stored before it was kept.
    pub sha1: Option<String>,
}

/// What an attachment belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A note, at the version current when the file was added.
    Note { note_id: String, version: i32 },
    /// A discharge case.
    Case { case_id: String },
}

/// An attachment as responses show it: metadata and links, never the storage key.
#[derive(Debug, Serialize)]
pub struct AttachmentView {
    pub id: String,
    pub patient_id: String,
    pub note_id: Option<String>,
    pub note_version: Option<i32>,
    pub case_id: Option<String>,
    pub file_name: String,
    pub content_type: AttachmentType,
    pub byte_size: i64,
    pub sha256: String,
    pub uploaded_by: String,
    pub uploaded_by_name: String,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
    /// Where the bytes are read (with the caller's token).
    pub content_url: String,
    /// A small JPEG for lists, for photos a thumbnail could be made of.
    pub thumbnail_url: Option<String>,
}

impl Attachment {
    pub fn view(self, uploaded_by_name: String) -> AttachmentView {
        let content_url = format!("/api/v1/attachments/{}/content", self.id);
        let thumbnail_url = self.thumbnail_key.as_ref().map(|_| format!("/api/v1/attachments/{}/thumbnail", self.id));
        AttachmentView {
            id: self.id,
            patient_id: self.patient_id,
            note_id: self.note_id,
            note_version: self.note_version,
            case_id: self.case_id,
            file_name: self.file_name,
            content_type: self.content_type,
            byte_size: self.byte_size,
            sha256: self.sha256,
            uploaded_by: self.uploaded_by,
            uploaded_by_name,
            created_at: self.created_at,
            content_url,
            thumbnail_url,
        }
    }
}

pub fn insert(conn: &mut DbConn, a: &Attachment) -> AppResult<()> {
    diesel::insert_into(attachments::table).values(a.clone()).execute(conn)?;
    crate::changes::record(conn, crate::changes::Change::Attachment { patient_id: &a.patient_id })
}

/// The attachment with this id, whether or not it was marked entered in error.
pub fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<Attachment>> {
    Ok(attachments::table.find(id).select(Attachment::as_select()).first(conn).optional()?)
}

/// Whether the attachment was marked entered in error.
pub fn entered_in_error(conn: &mut DbConn, id: &str) -> AppResult<bool> {
    let n: i64 = attachment_errors::table.filter(attachment_errors::attachment_id.eq(id)).count().get_result(conn)?;
    Ok(n > 0)
}

/// A marking of an attachment as entered in error: who, when and why.
#[derive(Queryable, Selectable, Insertable, Debug, Clone, Serialize)]
#[diesel(table_name = attachment_errors)]
pub struct Marking {
    pub attachment_id: String,
    pub patient_id: String,
    pub reason: String,
    pub marked_by: String,
    #[serde(serialize_with = "api::utc")]
    pub marked_at: NaiveDateTime,
}

/// The marking of this attachment, when it was marked entered in error.
pub fn marking(conn: &mut DbConn, id: &str) -> AppResult<Option<Marking>> {
    Ok(attachment_errors::table.find(id).select(Marking::as_select()).first(conn).optional()?)
}

/// Marks the attachment entered in error (with its change), in the caller's transaction. The
/// row and the object stay: the record keeps what was shared, normal views stop showing it.
pub fn mark_in_error(conn: &mut DbConn, a: &Attachment, reason: &str, marked_by: &str) -> AppResult<Marking> {
    let m = Marking {
        attachment_id: a.id.clone(),
        patient_id: a.patient_id.clone(),
        reason: reason.to_string(),
        marked_by: marked_by.to_string(),
        marked_at: crate::db::now(),
    };
    diesel::insert_into(attachment_errors::table).values(m.clone()).execute(conn)?;
    crate::changes::record(conn, crate::changes::Change::Attachment { patient_id: &a.patient_id })?;
    Ok(m)
}

/// How many files the note carries (in any version, entered in error or not: the limit is on
/// what was stored).
pub fn count_for_note(conn: &mut DbConn, note_id: &str) -> AppResult<i64> {
    Ok(attachments::table.filter(attachments::note_id.eq(note_id)).count().get_result(conn)?)
}

fn with_names(conn: &mut DbConn, rows: Vec<Attachment>) -> AppResult<Vec<AttachmentView>> {
    let ids: Vec<&str> = rows.iter().map(|a| a.uploaded_by.as_str()).collect();
    let names: std::collections::HashMap<String, String> = users::table
        .filter(users::id.eq_any(&ids))
        .select((users::id, users::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|a| {
            let name = names.get(&a.uploaded_by).cloned().unwrap_or_default();
            a.view(name)
        })
        .collect())
}

/// The files a note shows at `version` (added at that version or before), oldest first,
/// without those entered in error.
pub fn for_note(conn: &mut DbConn, note_id: &str, version: i32) -> AppResult<Vec<AttachmentView>> {
    let rows = attachments::table
        .filter(attachments::note_id.eq(note_id))
        .filter(attachments::note_version.le(version))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            attachment_errors::table.filter(attachment_errors::attachment_id.eq(attachments::id)),
        )))
        .order((attachments::created_at.asc(), attachments::id.asc()))
        .select(Attachment::as_select())
        .load(conn)?;
    with_names(conn, rows)
}

/// The documents of a discharge case, oldest first, without those entered in error.
pub fn for_case(conn: &mut DbConn, case_id: &str) -> AppResult<Vec<AttachmentView>> {
    let rows = attachments::table
        .filter(attachments::case_id.eq(case_id))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            attachment_errors::table.filter(attachment_errors::attachment_id.eq(attachments::id)),
        )))
        .order((attachments::created_at.asc(), attachments::id.asc()))
        .select(Attachment::as_select())
        .load(conn)?;
    with_names(conn, rows)
}

/// Every file of the patient (notes and cases), oldest first, without those entered in error.
pub fn for_patient(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<Attachment>> {
    Ok(attachments::table
        .filter(attachments::patient_id.eq(patient_id))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            attachment_errors::table.filter(attachment_errors::attachment_id.eq(attachments::id)),
        )))
        .order((attachments::created_at.asc(), attachments::id.asc()))
        .select(Attachment::as_select())
        .load(conn)?)
}

/// How many files are stored, by type (every type of the vocabulary, so the label set is
/// closed), those entered in error included; and how many are marked entered in error.
pub fn counts(conn: &mut DbConn) -> AppResult<(Vec<(AttachmentType, i64)>, i64)> {
    let rows: Vec<(String, i64)> = attachments::table
        .group_by(attachments::content_type)
        .select((attachments::content_type, diesel::dsl::count_star()))
        .load(conn)?;
    let by_type = AttachmentType::ALL
        .iter()
        .map(|t| (*t, rows.iter().filter(|(c, _)| c == t.as_str()).map(|(_, n)| n).sum()))
        .collect();
    let marked = attachment_errors::table.count().get_result(conn)?;
    Ok((by_type, marked))
}

/// One attachment as responses show it.
pub fn view(conn: &mut DbConn, a: Attachment) -> AppResult<AttachmentView> {
    with_names(conn, vec![a])?.pop().ok_or_else(|| AppError::internal("attachment view lost its row"))
}

/// Of `keys`, those no attachment names (as content or thumbnail): orphans.
pub fn unrecorded(conn: &mut DbConn, keys: &[String]) -> AppResult<Vec<String>> {
    let mut orphans = Vec::new();
    for chunk in keys.chunks(500) {
        let content: Vec<String> = attachments::table
            .filter(attachments::storage_key.eq_any(chunk))
            .select(attachments::storage_key)
            .load(conn)?;
        let thumbs: Vec<Option<String>> = attachments::table
            .filter(attachments::thumbnail_key.eq_any(chunk))
            .select(attachments::thumbnail_key)
            .load(conn)?;
        let known: std::collections::HashSet<String> =
            content.into_iter().chain(thumbs.into_iter().flatten()).collect();
        orphans.extend(chunk.iter().filter(|k| !known.contains(*k)).cloned());
    }
    Ok(orphans)
}

/// How long an object may exist without its row before the sweep takes it for an orphan: an
/// upload in flight stores its object and records its row within a request's lifetime.
pub const ORPHAN_AFTER_MINUTES: i64 = 60;

/// Removes objects no attachment names that were written more than
/// [`ORPHAN_AFTER_MINUTES`] ago. Returns how many were removed.
pub async fn sweep(db: &crate::db::Db, store: &store::Store) -> AppResult<usize> {
    sweep_before(db, store, chrono::Utc::now() - chrono::Duration::minutes(ORPHAN_AFTER_MINUTES)).await
}

/// Removes objects no attachment names that were written before `before`.
pub async fn sweep_before(
    db: &crate::db::Db,
    store: &store::Store,
    before: chrono::DateTime<chrono::Utc>,
) -> AppResult<usize> {
    let keys = store.written_before(before).await?;
    let orphans = db.run(move |conn| unrecorded(conn, &keys)).await?;
    for key in &orphans {
        store.discard(key).await;
    }
    Ok(orphans.len())
}

/// A file received and stored, not yet recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    #[serde(skip)]
    pub storage_key: String,
    #[serde(skip)]
    pub thumbnail_key: Option<String>,
    pub file_name: String,
    pub content_type: AttachmentType,
    pub byte_size: u64,
    pub sha256: String,
    #[serde(skip)]
    pub sha1: String,
}

impl Received {
    /// Every object written for this file (to remove when it is not recorded).
    pub fn keys(&self) -> Vec<String> {
        std::iter::once(self.storage_key.clone()).chain(self.thumbnail_key.clone()).collect()
    }
}

/// Decoding photos for thumbnails takes memory (a 12-megapixel photo is about 36 MB of
/// pixels): at most this many at once per instance, whatever the number of uploads.
static THUMBNAILS_AT_ONCE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

fn unreadable(content_type: AttachmentType, e: &std::io::Error) -> AppError {
    if e.kind() != std::io::ErrorKind::InvalidData && e.kind() != std::io::ErrorKind::UnexpectedEof {
        return AppError::internal(format!("clean photo: {e}"));
    }
    AppError::field(
        "file",
        "unreadable",
        format!("ファイルを {content_type} として読み取れませんでした。壊れていないか確かめてください。"),
        format!("The file could not be read as {content_type}. Check that it is not damaged."),
    )
}

/// A file clamd found malware in: refused, never stored.
#[derive(Debug, Clone)]
pub struct Infected {
    pub signature: String,
    pub file_name: String,
}

impl Infected {
    /// The 422 the uploader gets (the signature is for the audit trail, not for them).
    pub fn refusal(&self) -> AppError {
        AppError::field(
            "file",
            "infected",
            "ファイルからマルウェアが検出されたため、受け付けませんでした。",
            "Malware was found in the file, so it was not accepted.",
        )
    }
}

/// Receives the request's one file into a temporary file; clamd scans it when configured; a
/// photo loses its metadata (GPS first) and gets a thumbnail; then the file and the thumbnail
/// are stored in the object store — all outside any database transaction. Nothing is stored
/// when any step fails or the file is infected.
pub async fn receive(
    store: &store::Store,
    multipart: actix_multipart::Multipart,
    tmp_dir: &std::path::Path,
    max_bytes: u64,
    clamd: Option<(&crate::config::Clamd, std::time::Duration)>,
) -> AppResult<Result<Received, Infected>> {
    let spooled = upload::spool(multipart, tmp_dir, max_bytes).await?;
    if let Some((clamd, timeout)) = clamd {
        if let scan::Verdict::Infected(signature) = scan::scan(clamd, &spooled.file, timeout).await? {
            return Ok(Err(Infected { signature, file_name: spooled.file_name.clone() }));
        }
    }
    let content_type = spooled.content_type;
    let blocking = |e: tokio::task::JoinError| AppError::internal(format!("blocking task failed: {e}"));
    let (received, cleaned) = {
        let dir = tmp_dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let cleaned = photos::clean(&spooled.file, content_type, &dir);
            (spooled, cleaned)
        })
        .await
        .map_err(blocking)?
    };
    let cleaned = cleaned.map_err(|e| unreadable(content_type, &e))?;
    let thumbnail = match &cleaned {
        Some(c) if matches!(content_type, AttachmentType::Jpeg | AttachmentType::Png) => {
            let _turn = THUMBNAILS_AT_ONCE.acquire().await.map_err(|e| AppError::internal(e.to_string()))?;
            let (path, orientation) = (c.file.to_path_buf(), c.orientation);
            tokio::task::spawn_blocking(move || photos::thumbnail(&path, content_type, orientation))
                .await
                .map_err(blocking)?
        }
        _ => None,
    };
    let (path, byte_size, sha256, sha1) = match &cleaned {
        Some(c) => (c.file.to_path_buf(), c.byte_size, c.sha256.clone(), c.sha1.clone()),
        None => (received.file.to_path_buf(), received.byte_size, received.sha256.clone(), received.sha1.clone()),
    };
    let storage_key = store::Store::new_key(store::CONTENT_PREFIX);
    store.put_file(&storage_key, &path).await?;
    let thumbnail_key = match thumbnail {
        Some(bytes) => {
            let key = store::Store::new_key(store::THUMBNAIL_PREFIX);
            if let Err(e) = store.put_bytes(&key, bytes).await {
                store.discard(&storage_key).await;
                return Err(e);
            }
            Some(key)
        }
        None => None,
    };
    Ok(Ok(Received {
        storage_key,
        thumbnail_key,
        file_name: received.file_name.clone(),
        content_type,
        byte_size,
        sha256,
        sha1,
    }))
}

/// Records a received file for `owner` of `patient_id` (audited, with its change), in the
/// caller's transaction. A note carries at most `max_per_note` files: past it, 422.
pub fn record(
    conn: &mut DbConn,
    me: &crate::auth::CurrentUser,
    patient_id: &str,
    owner: Owner,
    received: &Received,
    max_per_note: i64,
) -> AppResult<AttachmentView> {
    if let Owner::Note { note_id, .. } = &owner {
        // Two uploads to one note at once: the second waits here for the first (PostgreSQL;
        // SQLite's write lock already orders them), so the count cannot be passed.
        if let DbConn::Postgres(c) = conn {
            use crate::db::schema::notes;
            notes::table.find(note_id).select(notes::id).for_update().first::<String>(c)?;
        }
        if count_for_note(conn, note_id)? >= max_per_note {
            return Err(AppError::field(
                "file",
                "too_many",
                format!("1 つの記録に添付できるファイルは {max_per_note} 件までです。"),
                format!("A note can carry at most {max_per_note} files."),
            ));
        }
    }
    let (note_id, note_version, case_id) = match owner {
        Owner::Note { note_id, version } => (Some(note_id), Some(version), None),
        Owner::Case { case_id } => (None, None, Some(case_id)),
    };
    let a = Attachment {
        id: crate::db::new_id(),
        patient_id: patient_id.to_string(),
        note_id,
        note_version,
        case_id,
        file_name: received.file_name.clone(),
        content_type: received.content_type,
        byte_size: i64::try_from(received.byte_size).map_err(|_| AppError::internal("file size"))?,
        sha256: received.sha256.clone(),
        storage_key: received.storage_key.clone(),
        thumbnail_key: received.thumbnail_key.clone(),
        uploaded_by: me.id.clone(),
        created_at: crate::db::now(),
        sha1: Some(received.sha1.clone()),
    };
    insert(conn, &a)?;
    let event = crate::audit::Event::new(
        crate::audit::Action::Create,
        crate::audit::Resource::Attachment,
        Some(&a.id),
        Some(patient_id),
    )
    .detail(a.content_type.as_str());
    crate::audit::record(conn, me, event)?;
    Ok(a.view(me.name.clone()))
}
