//! Offline-safe POSTs (docs/architecture.md, law 6): a request sent with an `Idempotency-Key` header is done once
//! per key. A retry with the same key and the same request gets the first answer again — same
//! status, same body — and creates nothing; the same key with a different request is refused
//! (422); a duplicate that arrives while the first is still being handled gets 409.
//!
//! Keys belong to the user who sent them and are kept at least [`RETENTION_DAYS`] days.
//!
//! How: the key is claimed with `INSERT … ON CONFLICT DO NOTHING` in the same transaction as the
//! work it protects, and the answer is stored in that transaction too, so the key, the work and
//! the answer commit — or vanish — together. The affected row count says whether the claim is
//! new; no unique violation is ever raised, so a PostgreSQL transaction is never aborted by a
//! duplicate. A concurrent duplicate waits on the first one's row (PostgreSQL) or on the write
//! lock (SQLite) and then sees its stored answer. A row that exists without an answer is a
//! request in flight (possible for a route that stores its answer in a later transaction).
//!
//! Use from a handler, inside its one `state.db.run` closure, after the access check:
//!
//! ```text
//! let key = idempotency::key_from(&req)?;
//! let fingerprint = idempotency::fingerprint("POST", req.path(), &body);
//! // … in the closure:
//! let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
//!     let created = …;
//!     Answer::json(StatusCode::CREATED, &created)
//! })?;
//! ```

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use chrono::Duration;
use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::schema::idempotency_keys;
use crate::db::{now, DbConn};
use crate::error::{AppError, AppResult};
use crate::per_backend;

/// The request header that carries the key.
pub const HEADER: &str = "Idempotency-Key";
/// The response header set on an answer that repeats the first one.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";
/// Keys are kept at least this long; older ones are forgotten.
pub const RETENTION_DAYS: i64 = 7;
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// Whether `key` may be an idempotency key: 1–255 visible ASCII characters (the header's rule,
/// and the console form's key).
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic())
}

/// The `Idempotency-Key` of a request: `None` when absent; 422 when it is not 1–255 visible
/// ASCII characters.
pub fn key_from(req: &HttpRequest) -> AppResult<Option<String>> {
    let Some(value) = req.headers().get(HEADER) else { return Ok(None) };
    let key = value.to_str().unwrap_or_default();
    if !is_valid_key(key) {
        return Err(AppError::field(
            HEADER,
            "invalid",
            format!("Idempotency-Key は 1〜{MAX_KEY_LEN} 文字の半角英数記号で指定してください(UUID など)。"),
            format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters (a UUID, for example)."),
        ));
    }
    Ok(Some(key.to_string()))
}

/// What identifies "the same request": method, path and the body as parsed, re-serialised so
/// that spacing and key order do not matter.
pub fn fingerprint<T: Serialize>(method: &str, path: &str, body: &T) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0x1f]);
    h.update(path.as_bytes());
    h.update([0x1f]);
    h.update(serde_json::to_vec(body).unwrap_or_default());
    hex::encode(h.finalize())
}

/// A stored answer: a status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
    /// True when this repeats the answer to an earlier request with the same key.
    pub replayed: bool,
}

impl Answer {
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> AppResult<Answer> {
        let body = serde_json::to_string(value).map_err(|e| AppError::internal(format!("serialise answer: {e}")))?;
        Ok(Answer { status, body, replayed: false })
    }

    /// A response builder with the status, the JSON content type and, on a replay, the
    /// `Idempotent-Replayed: true` header; finish it with [`Answer::finish`].
    pub fn builder(&self) -> HttpResponseBuilder {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CONTENT_TYPE, "application/json"));
        if self.replayed {
            res.insert_header((REPLAYED_HEADER, "true"));
        }
        res
    }

    pub fn finish(self, mut builder: HttpResponseBuilder) -> HttpResponse {
        builder.body(self.body)
    }

    /// The `id` member of the body, for a `Location` header.
    pub fn id(&self) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct WithId {
            id: String,
        }
        serde_json::from_str::<WithId>(&self.body).ok().map(|w| w.id)
    }

    /// A replayed answer hands patient data out again: it is audited as a read of what the first
    /// request created. A first answer was audited by the work that made it.
    pub fn audit_replay(
        &self,
        conn: &mut crate::db::DbConn,
        me: &crate::auth::CurrentUser,
        resource: crate::audit::Resource,
        patient_id: &str,
    ) -> AppResult<()> {
        if !self.replayed {
            return Ok(());
        }
        let id = self.id();
        let event = crate::audit::Event::new(crate::audit::Action::Read, resource, id.as_deref(), Some(patient_id));
        crate::audit::record(conn, me, event.detail("idempotent replay"))
    }
}

/// Where a key stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key was free and is now this request's.
    New,
    /// The same request was done before: its answer.
    Done(Answer),
}

/// Claims `key` for `user_id` in the caller's transaction. The same key with another fingerprint
/// is 422; a claimed key without an answer yet is 409.
pub fn claim(conn: &mut DbConn, user_id: &str, key: &str, fingerprint: &str) -> AppResult<Claim> {
    forget_expired(conn, user_id)?;
    let row = (
        idempotency_keys::user_id.eq(user_id),
        idempotency_keys::key.eq(key),
        idempotency_keys::request_hash.eq(fingerprint),
        idempotency_keys::created_at.eq(now()),
    );
    let inserted = per_backend!(conn, |c| diesel::insert_into(idempotency_keys::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c))?;
    if inserted == 1 {
        return Ok(Claim::New);
    }
    let (hash, status, body): (String, Option<i32>, Option<String>) = idempotency_keys::table
        .find((user_id, key))
        .select((idempotency_keys::request_hash, idempotency_keys::status_code, idempotency_keys::response_body))
        .first(conn)?;
    if hash != fingerprint {
        return Err(AppError::field(
            HEADER,
            "key_reused",
            "この Idempotency-Key は別の内容のリクエストですでに使われています。新しいリクエストには新しいキーを使ってください。",
            "This Idempotency-Key was already used for a different request. Use a new key for a new request.",
        ));
    }
    match (status, body) {
        (Some(status), Some(body)) => {
            let status = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .ok_or_else(|| AppError::internal(format!("stored idempotent status {status} is not an HTTP status")))?;
            Ok(Claim::Done(Answer { status, body, replayed: true }))
        }
        _ => Err(AppError::conflict(
            "同じ Idempotency-Key のリクエストを処理中です。少し待ってから同じキーでもう一度送ってください。",
            "A request with this Idempotency-Key is still being processed. Wait a moment and send it again with the same key.",
        )),
    }
}

/// Stores the answer of a claimed key (same transaction as the claim).
pub fn complete(conn: &mut DbConn, user_id: &str, key: &str, answer: &Answer) -> AppResult<()> {
    diesel::update(idempotency_keys::table.find((user_id, key)))
        .set((
            idempotency_keys::status_code.eq(Some(i32::from(answer.status.as_u16()))),
            idempotency_keys::response_body.eq(Some(&answer.body)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Gives a claimed key back, for work that failed but whose transaction still commits (a refused
/// request whose audit record is kept): the key must not stay "in flight" for ever.
pub fn release(conn: &mut DbConn, user_id: &str, key: &str) -> AppResult<()> {
    diesel::delete(idempotency_keys::table.find((user_id, key))).execute(conn)?;
    Ok(())
}

/// Does `work` once per key: without a key it simply runs; with a new key it runs and its answer
/// is stored; with a key already done the stored answer comes back (`replayed`) and `work` does
/// not run.
pub fn once(
    conn: &mut DbConn,
    user_id: &str,
    key: Option<&str>,
    fingerprint: &str,
    work: impl FnOnce(&mut DbConn) -> AppResult<Answer>,
) -> AppResult<Answer> {
    let Some(key) = key else { return work(conn) };
    if let Claim::Done(answer) = claim(conn, user_id, key, fingerprint)? {
        return Ok(answer);
    }
    match work(conn) {
        Ok(answer) => {
            complete(conn, user_id, key, &answer)?;
            Ok(answer)
        }
        Err(e) => {
            if e.keeps_changes() {
                release(conn, user_id, key)?;
            }
            Err(e)
        }
    }
}

/// Forgets the user's keys older than the retention period.
fn forget_expired(conn: &mut DbConn, user_id: &str) -> AppResult<()> {
    let cutoff = now() - Duration::days(RETENTION_DAYS);
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::user_id.eq(user_id))
            .filter(idempotency_keys::created_at.lt(cutoff)),
    )
    .execute(conn)?;
    Ok(())
}

/// Forgets every key older than the retention period (for a periodic clean-up).
pub fn purge_expired(conn: &mut DbConn) -> AppResult<usize> {
    let cutoff = now() - Duration::days(RETENTION_DAYS);
    Ok(diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(cutoff))).execute(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_depend_on_method_path_and_body() {
        #[derive(Serialize, serde::Deserialize)]
        struct Body {
            kind: String,
            text: String,
        }
        // Handlers fingerprint the typed body, so the order of the members sent does not matter.
        let sent_one_way: Body = serde_json::from_str(r#"{"text": "訪問", "kind": "visit"}"#).unwrap();
        let sent_another: Body = serde_json::from_str(r#"{"kind":"visit","text":"訪問"}"#).unwrap();
        let a = fingerprint("POST", "/api/v1/patients/1/notes", &sent_one_way);
        assert_eq!(a, fingerprint("POST", "/api/v1/patients/1/notes", &sent_another));
        assert_ne!(a, fingerprint("POST", "/api/v1/patients/2/notes", &sent_one_way));
        let changed = Body { kind: "visit".into(), text: "訪問!".into() };
        assert_ne!(a, fingerprint("POST", "/api/v1/patients/1/notes", &changed));
    }

    #[test]
    fn answer_id_reads_the_body() {
        let a = Answer::json(StatusCode::CREATED, &serde_json::json!({"id": "abc", "x": 1})).unwrap();
        assert_eq!(a.id().as_deref(), Some("abc"));
    }
}
