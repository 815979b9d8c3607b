//! The one error type. Every error leaves the service as RFC 9457 `application/problem+json`
//! with a stable `type`; the `detail` a person reads is Japanese, or English when the request's
//! `Accept-Language` prefers it. Internal causes go to the log, never to the client.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// A message a person reads, in both product languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub ja: String,
    pub en: String,
}

impl Text {
    pub fn new(ja: impl Into<String>, en: impl Into<String>) -> Text {
        Text { ja: ja.into(), en: en.into() }
    }
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Ja => &self.ja,
            Lang::En => &self.en,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    /// Japanese unless the `Accept-Language` header ranks English above Japanese.
    pub fn from_accept_language(value: Option<&str>) -> Lang {
        let Some(value) = value else { return Lang::Ja };
        let (mut ja, mut en) = (-1.0f32, -1.0f32);
        for part in value.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = pieces.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
            if tag == "ja" || tag.starts_with("ja-") {
                ja = ja.max(q);
            } else if tag == "en" || tag.starts_with("en-") {
                en = en.max(q);
            }
        }
        if en > ja {
            Lang::En
        } else {
            Lang::Ja
        }
    }
}

/// One field at fault in a request body or query.
#[derive(Debug, Clone)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: Text,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, ja: impl Into<String>, en: impl Into<String>) -> Self {
        FieldError { field: field.into(), code, message: Text::new(ja, en) }
    }
}

/// The one error type; boxed so that `Result<T, AppError>` stays small.
#[derive(Debug)]
pub struct AppError(Box<Details>);

#[derive(Debug)]
pub struct Details {
    status: StatusCode,
    slug: &'static str,
    title: Text,
    detail: Text,
    errors: Vec<FieldError>,
    headers: Vec<(header::HeaderName, String)>,
    /// Logged, never sent.
    internal: Option<String>,
    /// The transaction commits despite the error (the audit record of a refused request).
    keep_changes: bool,
    /// Extension members of the problem (RFC 9457 §3.2), e.g. the current version of what a
    /// stale `If-Match` named.
    members: Vec<(&'static str, serde_json::Value)>,
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.slug, self.detail.en)?;
        if let Some(cause) = &self.internal {
            write!(f, " ({cause})")?;
        }
        Ok(())
    }
}

impl std::error::Error for AppError {}

impl std::ops::Deref for AppError {
    type Target = Details;
    fn deref(&self) -> &Details {
        &self.0
    }
}

impl std::ops::DerefMut for AppError {
    fn deref_mut(&mut self) -> &mut Details {
        &mut self.0
    }
}

/// The problem types this service answers with; the `type` member is `/problems/{slug}`.
pub const PROBLEM_SLUGS: &[&str] = &[
    "bad-request",
    "validation",
    "unauthorized",
    "invalid-token",
    "forbidden",
    "two-factor-required",
    "not-found",
    "method-not-allowed",
    "conflict",
    "precondition-failed",
    "payload-too-large",
    "unsupported-media-type",
    "precondition-required",
    "too-many-requests",
    "internal",
    "unavailable",
];

impl AppError {
    fn new(status: StatusCode, slug: &'static str, title: Text, detail: Text) -> AppError {
        debug_assert!(PROBLEM_SLUGS.contains(&slug));
        AppError(Box::new(Details {
            status,
            slug,
            title,
            detail,
            errors: Vec::new(),
            headers: Vec::new(),
            internal: None,
            keep_changes: false,
            members: Vec::new(),
        }))
    }

    pub fn bad_request(ja: impl Into<String>, en: impl Into<String>) -> AppError {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            Text::new("不正なリクエスト", "Bad request"),
            Text::new(ja, en),
        )
    }

    pub fn validation(errors: Vec<FieldError>) -> AppError {
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let list = fields.join(", ");
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            Text::new("入力内容に誤りがあります", "Invalid input"),
            Text::new(format!("次の項目を確認してください: {list}"), format!("Check these fields: {list}")),
        );
        e.errors = errors;
        e
    }

    pub fn field(field: &str, code: &'static str, ja: impl Into<String>, en: impl Into<String>) -> AppError {
        Self::validation(vec![FieldError::new(field, code, ja, en)])
    }

    /// A failed sign-in: the same answer for an unknown address and a wrong password.
    pub fn invalid_credentials() -> AppError {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            Text::new("認証に失敗しました", "Sign-in failed"),
            Text::new(
                "メールアドレス、パスワードまたは確認コードが正しくありません。",
                "The e-mail address, password or verification code is not correct.",
            ),
        )
    }

    /// A missing, malformed, expired or revoked bearer token (RFC 6750).
    pub fn invalid_token() -> AppError {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid-token",
            Text::new("認証が必要です", "Authentication required"),
            Text::new(
                "アクセストークンが無効か期限切れです。もう一度サインインしてください。",
                "The access token is invalid or has expired. Please sign in again.",
            ),
        );
        e.headers.push((header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#.into()));
        e
    }

    pub fn forbidden(ja: impl Into<String>, en: impl Into<String>) -> AppError {
        Self::new(StatusCode::FORBIDDEN, "forbidden", Text::new("権限がありません", "Forbidden"), Text::new(ja, en))
    }

    pub fn two_factor_required() -> AppError {
        Self::new(
            StatusCode::FORBIDDEN,
            "two-factor-required",
            Text::new("二要素認証が必要です", "Two-factor authentication required"),
            Text::new(
                "システム管理者は二要素認証(TOTP)を登録してから操作してください: POST /api/v1/me/totp",
                "System administrators must enrol two-factor authentication (TOTP) first: POST /api/v1/me/totp",
            ),
        )
    }

    /// Not found — and, identically, found but outside the caller's scope.
    pub fn not_found() -> AppError {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            Text::new("見つかりません", "Not found"),
            Text::new("指定されたリソースは見つかりません。", "The requested resource was not found."),
        )
    }

    /// The answer to a request for a patient outside the caller's scope: exactly the 404 of a
    /// patient that does not exist, but the transaction still commits so the denied attempt
    /// stays in the audit trail.
    pub fn hidden() -> AppError {
        let mut e = Self::not_found();
        e.keep_changes = true;
        e
    }

    /// Keeps the transaction's writes although the request fails.
    pub fn keeping_changes(mut self) -> AppError {
        self.keep_changes = true;
        self
    }

    pub fn keeps_changes(&self) -> bool {
        self.keep_changes
    }

    pub fn method_not_allowed(allow: &str) -> AppError {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            Text::new("許可されていないメソッドです", "Method not allowed"),
            Text::new(format!("このURLで使えるメソッド: {allow}"), format!("Methods allowed here: {allow}")),
        );
        e.headers.push((header::ALLOW, allow.to_string()));
        e
    }

    pub fn conflict(ja: impl Into<String>, en: impl Into<String>) -> AppError {
        Self::new(StatusCode::CONFLICT, "conflict", Text::new("競合しています", "Conflict"), Text::new(ja, en))
    }

    pub fn precondition_failed() -> AppError {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition-failed",
            Text::new("他の人が先に更新しました", "Changed by someone else"),
            Text::new(
                "このデータは読み込んだ後に更新されています。最新の内容を読み込んでからやり直してください。",
                "This record changed since you read it. Reload it and try again.",
            ),
        )
    }

    /// Adds a header to the answer (e.g. the `ETag` of the current version).
    pub fn with_header(mut self, name: header::HeaderName, value: String) -> AppError {
        self.headers.push((name, value));
        self
    }

    /// Adds an extension member to the problem document.
    pub fn with_member(mut self, name: &'static str, value: serde_json::Value) -> AppError {
        self.members.push((name, value));
        self
    }

    pub fn precondition_required() -> AppError {
        Self::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition-required",
            Text::new("If-Match ヘッダーが必要です", "If-Match required"),
            Text::new(
                "更新するには、読み込んだときの ETag を If-Match ヘッダーで送ってください。",
                "Send the ETag you read in an If-Match header to update this record.",
            ),
        )
    }

    pub fn payload_too_large(limit: usize) -> AppError {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            Text::new("リクエストが大きすぎます", "Payload too large"),
            Text::new(
                format!("リクエスト本文は {limit} バイト以内にしてください。"),
                format!("The request body must be at most {limit} bytes."),
            ),
        )
    }

    pub fn unsupported_media_type() -> AppError {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            Text::new("対応していない形式です", "Unsupported media type"),
            Text::new(
                "リクエスト本文は Content-Type: application/json で送ってください。",
                "Send the request body as Content-Type: application/json.",
            ),
        )
    }

    /// An upload that is not `multipart/form-data`.
    pub fn not_multipart() -> AppError {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            Text::new("対応していない形式です", "Unsupported media type"),
            Text::new(
                "ファイルは Content-Type: multipart/form-data で、file という項目に入れて送ってください。",
                "Send the file as Content-Type: multipart/form-data, in a part named file.",
            ),
        )
    }

    /// A file whose content (not its name or claimed type) is none of the accepted kinds.
    pub fn unsupported_file_type() -> AppError {
        let mut e = Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            Text::new("対応していないファイル形式です", "Unsupported file type"),
            Text::new(
                "添付できるのは JPEG・PNG・HEIC/HEIF の画像と PDF だけです。ファイルの中身から形式を判定しています。",
                "Only JPEG, PNG and HEIC/HEIF images and PDF documents can be attached. The type is read from the file's content.",
            ),
        );
        e.errors.push(FieldError::new(
            "file",
            "unsupported_type",
            "JPEG・PNG・HEIC/HEIF・PDF のいずれかを選んでください。",
            "Choose a JPEG, PNG, HEIC/HEIF or PDF file.",
        ));
        e
    }

    /// The object store (attachments) cannot be reached.
    pub fn storage_unavailable() -> AppError {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            Text::new("一時的に利用できません", "Service unavailable"),
            Text::new(
                "ファイルの保存先に接続できません。しばらくしてからもう一度お試しください。",
                "The file storage cannot be reached. Please try again shortly.",
            ),
        );
        e.headers.push((header::RETRY_AFTER, "5".into()));
        e
    }

    /// The malware scanner (clamd) cannot scan an upload: nothing is stored.
    pub fn scanner_unavailable() -> AppError {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            Text::new("一時的に利用できません", "Service unavailable"),
            Text::new(
                "ウイルス検査を実行できないため、ファイルを受け付けられませんでした。しばらくしてからもう一度お試しください。",
                "The file could not be scanned for malware, so it was not accepted. Please try again shortly.",
            ),
        );
        e.headers.push((header::RETRY_AFTER, "5".into()));
        e
    }

    pub fn too_many_requests(retry_after_secs: u64) -> AppError {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            Text::new("しばらくしてからお試しください", "Too many attempts"),
            Text::new(
                format!("失敗が続いたため一時的に受け付けを停止しています。{retry_after_secs} 秒後にもう一度お試しください。"),
                format!("Too many failed attempts. Try again in {retry_after_secs} seconds."),
            ),
        );
        e.headers.push((header::RETRY_AFTER, retry_after_secs.to_string()));
        e
    }

    pub fn unavailable() -> AppError {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            Text::new("一時的に利用できません", "Service unavailable"),
            Text::new(
                "データベースに接続できません。しばらくしてからもう一度お試しください。",
                "The database cannot be reached. Please try again shortly.",
            ),
        );
        e.headers.push((header::RETRY_AFTER, "5".into()));
        e
    }

    /// Every live-update stream this instance (or this person) may hold is open.
    pub fn streams_exhausted() -> AppError {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            Text::new("一時的に利用できません", "Service unavailable"),
            Text::new(
                "ライブ更新の接続数が上限に達しています。ほかの接続を閉じるか、しばらくしてからもう一度お試しください。",
                "Too many live update streams are open. Close another one, or try again shortly.",
            ),
        );
        e.headers.push((header::RETRY_AFTER, "5".into()));
        e
    }

    pub fn internal(cause: impl Into<String>) -> AppError {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            Text::new("サーバー内部エラー", "Internal server error"),
            Text::new(
                "サーバーで問題が発生しました。時間をおいてもう一度お試しください。",
                "Something went wrong on the server. Please try again later.",
            ),
        );
        e.internal = Some(cause.into());
        e
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn slug(&self) -> &'static str {
        self.slug
    }

    pub fn field_errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// What a person reads about the error, in their language (for the console's pages).
    pub fn detail_for(&self, lang: Lang) -> &str {
        self.detail.get(lang)
    }

    /// The problem document in the given language.
    pub fn render(&self, lang: Lang) -> String {
        #[derive(Serialize)]
        struct Field<'a> {
            field: &'a str,
            code: &'a str,
            detail: &'a str,
        }
        #[derive(Serialize)]
        struct Problem<'a> {
            #[serde(rename = "type")]
            kind: String,
            title: &'a str,
            status: u16,
            detail: &'a str,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            errors: Vec<Field<'a>>,
            #[serde(flatten)]
            members: std::collections::BTreeMap<&'a str, &'a serde_json::Value>,
        }
        let body = Problem {
            kind: format!("/problems/{}", self.slug),
            title: self.title.get(lang),
            status: self.status.as_u16(),
            detail: self.detail.get(lang),
            errors: self
                .errors
                .iter()
                .map(|f| Field { field: &f.field, code: f.code, detail: f.message.get(lang) })
                .collect(),
            members: self.members.iter().map(|(k, v)| (*k, v)).collect(),
        };
        serde_json::to_string(&body).unwrap_or_else(|_| String::from("{}"))
    }

    pub fn response(&self, lang: Lang) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json")));
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                res.insert_header((name.clone(), v));
            }
        }
        res.body(self.render(lang))
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    /// Japanese by default; the language middleware re-renders for English readers.
    fn error_response(&self) -> HttpResponse {
        if let Some(cause) = &self.internal {
            tracing::error!(cause = %cause, "internal error");
        }
        self.response(Lang::Ja)
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> AppError {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => AppError::not_found(),
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => AppError::conflict(
                "同じ内容のデータがすでに登録されています。",
                "A record with the same unique value already exists.",
            ),
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => AppError::unavailable(),
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => AppError::unavailable(),
            // SQLite's single writer was busy for longer than the busy timeout: the request can be
            // retried, so it is a 503 with Retry-After, not a fault of the service.
            Error::DatabaseError(_, info) if info.message() == "database is locked" => {
                tracing::warn!("SQLite stayed locked past the busy timeout");
                AppError::unavailable()
            }
            other => AppError::internal(format!("database: {other}")),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_sqlite_database_is_a_retryable_503() {
        use diesel::result::{DatabaseErrorKind, Error};
        let busy = Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new("database is locked".to_string()));
        assert_eq!(AppError::from(busy).status, StatusCode::SERVICE_UNAVAILABLE);
        let other = Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new("no such table: x".to_string()));
        assert_eq!(AppError::from(other).status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn language_follows_accept_language() {
        assert_eq!(Lang::from_accept_language(None), Lang::Ja);
        assert_eq!(Lang::from_accept_language(Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("ja,en;q=0.8")), Lang::Ja);
        assert_eq!(Lang::from_accept_language(Some("en;q=0.5,ja;q=0.9")), Lang::Ja);
        assert_eq!(Lang::from_accept_language(Some("fr")), Lang::Ja);
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = AppError::internal("SELECT * FROM users failed at db.rs:42");
        let body = e.render(Lang::En);
        assert!(!body.contains("SELECT"));
        assert!(body.contains("/problems/internal"));
    }
}
