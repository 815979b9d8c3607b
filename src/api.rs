//! Conventions shared by every route (docs/architecture.md): RFC 3339 UTC times, cursor pagination,
//! `ETag`/`If-Match` versions and the checks on text a person typed.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use base64::Engine;
use chrono::NaiveDateTime;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{AppError, AppResult, FieldError};

/// The largest request body accepted (413 above it).
pub const BODY_LIMIT: usize = 256 * 1024;

/// A JSON request body, as `web::Json` reads it, except that a value that does not fit names its
/// field by path (`vitals.pulse`, `items[2].title`) and says, in Japanese first, what was
/// expected: the format of a date or a time, the allowed values of a vocabulary, a number.
/// serde's own words (`premature end of input`) are no help to the person who typed the value.
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Json<T>, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = req.content_type().to_ascii_lowercase();
        let is_json = content_type == "application/json"
            || (content_type.starts_with("application/") && content_type.ends_with("+json"));
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !is_json {
                return Err(AppError::unsupported_media_type());
            }
            if declared.is_some_and(|n| n > BODY_LIMIT) {
                return Err(AppError::payload_too_large(BODY_LIMIT));
            }
            let mut body = Vec::with_capacity(declared.unwrap_or(0));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| {
                    AppError::bad_request(
                        "リクエスト本文を読み取れませんでした。",
                        "The request body could not be read.",
                    )
                })?;
                if body.len() + chunk.len() > BODY_LIMIT {
                    return Err(AppError::payload_too_large(BODY_LIMIT));
                }
                body.extend_from_slice(&chunk);
            }
            parse_body(&body).map(Json)
        })
    }
}

/// Reads a JSON body into `T`; see [`Json`].
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> AppResult<T> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| body_error(&e.path().to_string(), e.inner()))?;
    de.end().map_err(|_| not_json())?;
    // Every body of this API is an object; serde would also read a struct from an array of its
    // fields in order (`["visit", "…"]`), which the contract does not allow.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AppError::validation(vec![FieldError::new(
            "body",
            "invalid_value",
            "body の値が正しくありません。オブジェクトで指定してください。",
            "body is not valid: send an object.",
        )]));
    }
    Ok(value)
}

/// A query string read into `T`, like actix's `web::Query`, except that a parameter that does not
/// fit is named (`scope`, `limit`) with what it expects, as body fields are.
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(Query))
    }
}

/// Reads a query string into `T`; see [`Query`].
pub fn parse_query<T: DeserializeOwned>(query: &str) -> AppResult<T> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let message = e.inner().to_string();
        let quoted = message.split('`').nth(1).unwrap_or_default().to_string();
        let path = e.path().to_string();
        let field = if message.starts_with("unknown field") || message.starts_with("missing field") {
            quoted
        } else if path.is_empty() || path == "." {
            "query".to_string()
        } else {
            path
        };
        let (ja, en) = expected(&field, &message);
        AppError::validation(vec![FieldError::new(
            field.clone(),
            "invalid_query",
            format!("検索条件 {field} が正しくありません。{ja}"),
            format!("The query parameter {field} is not valid: {en}"),
        )])
    })
}

fn not_json() -> AppError {
    AppError::bad_request("リクエスト本文が正しい JSON ではありません。", "The request body is not valid JSON.")
}

/// A value that does not fit its field, named by its path in the body.
fn body_error(path: &str, error: &serde_json::Error) -> AppError {
    if !error.is_data() {
        return not_json();
    }
    let message = error.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message).to_string();
    let quoted = message.split('`').nth(1).unwrap_or_default().to_string();
    let at_root = path.is_empty() || path == ".";
    let inside = |name: &str| if at_root { name.to_string() } else { format!("{path}.{name}") };
    let (field, code, ja, en) = if message.starts_with("unknown field") {
        let field = if !at_root && (path == quoted || path.ends_with(&format!(".{quoted}"))) {
            path.to_string()
        } else {
            inside(&quoted)
        };
        let (ja, en) =
            (format!("{field} という項目は受け付けていません。"), format!("The field {field} is not accepted here."));
        (field, "unknown_field", ja, en)
    } else if message.starts_with("missing field") {
        let field = inside(&quoted);
        let (ja, en) = (format!("{field} を入力してください。"), format!("{field} is required."));
        (field, "required", ja, en)
    } else {
        let field = if at_root { "body".to_string() } else { path.to_string() };
        let name = field.rsplit('.').next().unwrap_or(&field).split('[').next().unwrap_or_default();
        let (ja, en) = expected(name, &message);
        (
            field.clone(),
            "invalid_value",
            format!("{field} の値が正しくありません。{ja}"),
            format!("{field} is not valid: {en}"),
        )
    };
    AppError::validation(vec![FieldError::new(field, code, ja, en)])
}

/// What a field expects, from serde's message and the field's name: dates are `…_on`, `…_date`,
/// times `…_at` throughout the contract.
fn expected(name: &str, message: &str) -> (String, String) {
    if let Some(list) = message.split("expected one of ").nth(1) {
        // serde lists the Japanese words a vocabulary also takes; the codes are what to use.
        let list = list.replace('`', "");
        let list = list.split(", ").filter(|v| v.is_ascii()).collect::<Vec<_>>().join(", ");
        return (format!("次のいずれかを指定してください: {list}"), format!("use one of: {list}"));
    }
    if message.starts_with("unknown variant") {
        // Two values come as "`a` or `b`"; a list reads the same in both languages.
        let only = message.split("expected ").nth(1).unwrap_or_default().replace('`', "").replace(" or ", ", ");
        return (format!("次の値を指定してください: {only}"), format!("use: {only}"));
    }
    let wrong_type = message.starts_with("invalid type");
    let is_date = name.ends_with("_on") || name.ends_with("_date") || name == "date";
    if is_date && (!wrong_type || message.contains("expected a string") || message.contains("formatted date")) {
        return (
            "日付は YYYY-MM-DD 形式で入力してください(例: 1938-03-15)。".into(),
            "write the date as YYYY-MM-DD, e.g. 1938-03-15.".into(),
        );
    }
    if name.ends_with("_at") {
        return (
            "日時は時差付きの RFC 3339 形式で入力してください(例: 2026-12-01T09:30:00+09:00)。".into(),
            "write the time as RFC 3339 with its offset, e.g. 2026-12-01T09:30:00+09:00.".into(),
        );
    }
    let wants = message.split("expected ").last().unwrap_or_default();
    let numbers = ["f32", "f64", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "usize", "isize"];
    // A query string's number fails in the integer parser, which names no type.
    let unparsed = message.starts_with("invalid digit") || message.contains("number too large");
    if unparsed || numbers.contains(&wants) || wants.contains("integer") || wants.contains("number") {
        return ("数値で入力してください。".into(), "write a number.".into());
    }
    if wants.contains("boolean") {
        return ("true か false を指定してください。".into(), "use true or false.".into());
    }
    if wants.contains("a string") {
        return ("文字列で入力してください。".into(), "write a string.".into());
    }
    if wants.contains("sequence") {
        return ("配列で指定してください。".into(), "send a list.".into());
    }
    if wants.contains("struct") || wants.contains("map") {
        return ("オブジェクトで指定してください。".into(), "send an object.".into());
    }
    ("値の形式を確かめてください。".into(), message.to_string())
}

/// Serialises a stored UTC time as RFC 3339 with a `Z`.
pub fn utc<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_utc(t))
}

pub fn utc_opt<S: Serializer>(t: &Option<NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_utc(t)),
        None => s.serialize_none(),
    }
}

pub fn format_utc(t: &NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// An id as a client sends it, in a path (`/patients/{id}`), a body (`"patient_id"`) or a query,
/// parsed as a UUID at the edge so that no malformed id reaches SQL (PostgreSQL cannot even
/// compare text holding a NUL). A well-formed id is kept in its canonical lower-case hyphenated
/// form. A malformed one stands for the nil UUID, which names nothing (every id is a UUIDv7):
/// in a path it therefore takes exactly the way of a well-formed id that names nothing (the
/// same 404, the same audited miss); in a body or query `Check::id` refuses it first, naming
/// the field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id {
    canonical: String,
    well_formed: bool,
}

impl Id {
    pub fn parse(raw: &str) -> Id {
        // Only the hyphenated form of the contract: `uuid` would also take braces, `urn:uuid:`
        // and the simple form.
        match uuid::Uuid::try_parse(raw).ok().filter(|_| raw.len() == 36) {
            Some(u) => Id { canonical: u.hyphenated().to_string(), well_formed: true },
            None => Id { canonical: uuid::Uuid::nil().hyphenated().to_string(), well_formed: false },
        }
    }

    pub fn is_well_formed(&self) -> bool {
        self.well_formed
    }

    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    pub fn into_string(self) -> String {
        self.canonical
    }
}

impl std::ops::Deref for Id {
    type Target = str;
    fn deref(&self) -> &str {
        &self.canonical
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.canonical
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl PartialEq<str> for Id {
    fn eq(&self, other: &str) -> bool {
        self.canonical == other
    }
}

impl PartialEq<String> for Id {
    fn eq(&self, other: &String) -> bool {
        &self.canonical == other
    }
}

impl PartialEq<Id> for String {
    fn eq(&self, other: &Id) -> bool {
        self == &other.canonical
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        // Any string is taken here and judged by `Check::id`, which can name the field; serde's
        // own error could not.
        let raw = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Id::parse(&raw))
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.canonical)
    }
}

/// A page of a list: `{ "items": [...], "next_cursor": "…" | null }`.
#[derive(Debug, Serialize)]
pub struct Page<T: Serialize> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// `limit` and `cursor` query parameters.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> AppResult<i64> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(AppError::field(
                "limit",
                "out_of_range",
                format!("limit は 1 から {MAX_LIMIT} の間で指定してください。"),
                format!("limit must be between 1 and {MAX_LIMIT}."),
            )),
        }
    }

    /// The position after which the page starts, decoded from the opaque cursor.
    pub fn after(&self) -> AppResult<Option<String>> {
        match &self.cursor {
            None => Ok(None),
            Some(c) => decode_cursor(c).map(Some).ok_or_else(invalid_cursor),
        }
    }
}

/// The answer to a cursor no page of this list handed out (422 naming `cursor`).
pub fn invalid_cursor() -> AppError {
    AppError::field(
        "cursor",
        "invalid",
        "cursor が不正です。前のページの next_cursor をそのまま指定してください。",
        "The cursor is not valid. Pass next_cursor from the previous page unchanged.",
    )
}

pub fn encode_cursor(position: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(position.as_bytes())
}

/// Longest cursor accepted: the base64url form of 511 bytes.
const MAX_CURSOR_CHARS: usize = 682;

/// Any base64url text without padding is a cursor (the contract's pattern): the position it
/// holds only bounds a comparison, so bytes no server-issued cursor holds cannot reach past the
/// caller's scope. They are made text the databases store (PostgreSQL refuses NUL).
fn decode_cursor(cursor: &str) -> Option<String> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    );
    if cursor.len() > MAX_CURSOR_CHARS {
        return None;
    }
    let bytes = LENIENT.decode(cursor.as_bytes()).ok().filter(|b| !b.is_empty())?;
    Some(String::from_utf8_lossy(&bytes).replace(char::is_control, "\u{FFFD}"))
}

/// Cuts a fetched `limit + 1` rows to a page, with the cursor of its last item.
pub fn page<T: Serialize>(mut rows: Vec<T>, limit: i64, position: impl Fn(&T) -> String) -> Page<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|r| encode_cursor(&position(r))) } else { None };
    Page { items: rows, next_cursor }
}

/// The `ETag` of a record at a version.
pub fn etag(version: i32) -> String {
    format!("\"{version}\"")
}

/// An answer carrying a versioned record, with its `ETag`.
pub fn versioned<T: Serialize>(status: actix_web::http::StatusCode, version: i32, body: &T) -> actix_web::HttpResponse {
    actix_web::HttpResponse::build(status).insert_header((header::ETAG, etag(version))).json(body)
}

/// A whole (unpaged) list: `{"items": [...]}`.
#[derive(Debug, Serialize)]
pub struct Items<T: Serialize> {
    pub items: Vec<T>,
}

impl<T: Serialize> Items<T> {
    pub fn of(items: Vec<T>) -> Items<T> {
        Items { items }
    }
}

/// The version named by `If-Match`: `None` when the header is absent.
pub fn if_match(req: &HttpRequest) -> AppResult<Option<i32>> {
    let Some(value) = req.headers().get(header::IF_MATCH) else { return Ok(None) };
    let v = value.to_str().unwrap_or_default().trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    v.trim_matches('"').parse::<i32>().map(Some).map_err(|_| AppError::precondition_failed())
}

/// The version named by `If-Match`, which must be present (428 otherwise).
pub fn require_if_match(req: &HttpRequest) -> AppResult<i32> {
    if_match(req)?.ok_or_else(AppError::precondition_required)
}

/// U+200D joins emoji sequences (👨‍👩‍👧) in free text, where it cannot disguise anything that
/// matters; names and one-line fields refuse it with every other format character.
const ZERO_WIDTH_JOINER: char = '\u{200D}';

/// Unicode general category Cf: bidirectional overrides and isolates (U+202A–202E, U+2066–2069),
/// zero-width characters (U+200B–200F, U+FEFF), soft hyphens, tags and the like. None is visible,
/// so in a name they let one string pass for another ("Trojan Source", spoofed display names).
/// Japanese text, full-width and half-width forms are letters, marks or punctuation, never Cf.
pub fn is_invisible_format(c: char) -> bool {
    unicode_general_category::get_general_category(c) == unicode_general_category::GeneralCategory::Format
}

/// Collects field errors while checking a request, then fails once with all of them.
#[derive(Default)]
pub struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    pub fn new() -> Check {
        Check::default()
    }

    pub fn push(&mut self, field: &str, code: &'static str, ja: impl Into<String>, en: impl Into<String>) {
        self.errors.push(FieldError::new(field, code, ja, en));
    }

    /// Text a person typed: trimmed length within bounds, no control characters. Japanese text
    /// is kept exactly as sent (no normalisation), so it round-trips byte for byte.
    pub fn text(&mut self, field: &str, value: &str, max_chars: usize) {
        if value.trim().is_empty() {
            self.push(field, "required", format!("{field} を入力してください。"), format!("{field} is required."));
        } else {
            self.optional_text(field, Some(value), max_chars);
        }
    }

    pub fn optional_text(&mut self, field: &str, value: Option<&str>, max_chars: usize) {
        self.checked_text(field, value, max_chars, true);
    }

    fn checked_text(&mut self, field: &str, value: Option<&str>, max_chars: usize, multi_line: bool) {
        let Some(value) = value else { return };
        if value.chars().count() > max_chars {
            self.push(
                field,
                "too_long",
                format!("{field} は{max_chars}文字以内にしてください。"),
                format!("{field} must be at most {max_chars} characters."),
            );
        } else if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
            self.push(
                field,
                "control_character",
                format!("{field} に制御文字は使えません。"),
                format!("{field} must not contain control characters."),
            );
        } else if value.chars().any(|c| is_invisible_format(c) && !(multi_line && c == ZERO_WIDTH_JOINER)) {
            self.push(
                field,
                "format_character",
                format!("{field} に書式制御文字(双方向制御・ゼロ幅文字など)は使えません。"),
                format!("{field} must not contain invisible format characters (bidirectional controls, zero-width characters)."),
            );
        }
    }

    /// A required single-line value (a name).
    pub fn required_line(&mut self, field: &str, value: &str, max_chars: usize) {
        if value.trim().is_empty() {
            self.push(field, "required", format!("{field} を入力してください。"), format!("{field} is required."));
        } else {
            self.line(field, Some(value), max_chars);
        }
    }

    /// A name reading: katakana, hiragana or half-width katakana (see `vocab::normalize_kana`).
    pub fn kana(&mut self, field: &str, value: Option<&str>, max_chars: usize) {
        let Some(v) = value else { return };
        if v.chars().count() > max_chars || !crate::vocab::is_kana_name(v) {
            self.push(
                field,
                "not_katakana",
                format!("{field} はカタカナかひらがなで入力してください(例: ヤマダ)。"),
                format!("{field} must be written in katakana or hiragana (e.g. ヤマダ)."),
            );
        }
    }

    /// A single-line value: no line breaks either (names, phone numbers, addresses).
    pub fn line(&mut self, field: &str, value: Option<&str>, max_chars: usize) {
        if let Some(v) = value {
            if v.contains(['\r', '\n']) {
                self.push(
                    field,
                    "line_break",
                    format!("{field} に改行は使えません。"),
                    format!("{field} must be a single line."),
                );
                return;
            }
        }
        self.checked_text(field, value, max_chars, false);
    }

    /// An id of a body or query: a UUID (422 `invalid_id` otherwise).
    pub fn id(&mut self, field: &str, value: &Id) {
        if !value.is_well_formed() {
            self.push(
                field,
                "invalid_id",
                format!("{field} は UUID で指定してください。"),
                format!("{field} must be a UUID."),
            );
        }
    }

    pub fn optional_id(&mut self, field: &str, value: Option<&Id>) {
        if let Some(v) = value {
            self.id(field, v);
        }
    }

    pub fn email(&mut self, field: &str, value: &str) {
        let ok = value.len() <= 254
            && value.split('@').count() == 2
            && value.split('@').all(|p| !p.is_empty())
            && value.rsplit('@').next().is_some_and(|d| d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
            && !value.chars().any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii());
        if !ok {
            self.push(
                field,
                "invalid_email",
                "メールアドレスの形式が正しくありません。",
                "This is not a valid e-mail address.",
            );
        }
    }

    pub fn phone(&mut self, field: &str, value: Option<&str>) {
        let Some(v) = value else { return };
        let ok = !v.trim().is_empty()
            && v.chars().count() <= 30
            && v.chars().all(|c| {
                c.is_ascii_digit() || "+-() ".contains(c) || ('０'..='９').contains(&c) || c == 'ー' || c == '－'
            });
        if !ok {
            self.push(
                field,
                "invalid_phone",
                "電話番号の形式が正しくありません。",
                "This is not a valid phone number.",
            );
        }
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn finish(self) -> AppResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(AppError::validation(self.errors))
        }
    }
}

/// Normalises an e-mail address for storage and look-up.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// For PATCH bodies: tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(cursor: &str) -> AppResult<Option<String>> {
        PageQuery { limit: None, cursor: Some(cursor.to_string()) }.after()
    }

    #[test]
    fn cursors_round_trip_and_any_base64url_is_accepted() {
        let position = "0193a3f2-7c4e-7d2a-9b1f-3c5d7e9f1a2b";
        assert_eq!(after(&encode_cursor(position)).ok().flatten().as_deref(), Some(position));
        // Not UTF-8, a NUL byte, trailing bits: a position nothing matches, never an error.
        for cursor in ["_w", "AA", "AB", "AAAB", &"A".repeat(MAX_CURSOR_CHARS)] {
            let decoded = after(cursor).ok().flatten().unwrap_or_default();
            assert!(!decoded.is_empty() && !decoded.contains(char::is_control), "{cursor}");
        }
        for cursor in ["", "A", "AAAAA", "a+b/", "AA==", "not a cursor", &"A".repeat(MAX_CURSOR_CHARS + 2)] {
            assert!(after(cursor).is_err(), "{cursor}");
        }
    }

    fn codes(f: impl FnOnce(&mut Check)) -> Vec<String> {
        let mut check = Check::new();
        f(&mut check);
        check.errors.iter().map(|e| format!("{}:{}", e.field, e.code)).collect()
    }

    #[test]
    fn format_characters_are_refused_and_japanese_text_round_trips() {
        for spoof in
            ["山田\u{202E}子花", "a\u{200B}b", "\u{2066}x\u{2069}", "\u{FEFF}名前", "soft\u{00AD}hyphen", "\u{E0041}"]
        {
            assert_eq!(codes(|c| c.required_line("name", spoof, 100)), ["name:format_character"], "{spoof:?}");
            assert_eq!(codes(|c| c.optional_text("body", Some(spoof), 100)), ["body:format_character"], "{spoof:?}");
        }
        // Japanese, full-width and half-width forms, kana marks and emoji are not format characters.
        for fine in ["山田 花子", "ＡＢＣ１２３（株）", "ｶﾜｻｷ ﾊﾅｺ", "ヴァ゛ー〜・", "髙﨑", "お大事に😊"]
        {
            assert!(codes(|c| c.required_line("name", fine, 100)).is_empty(), "{fine:?}");
        }
        let family = "家族👨\u{200D}👩\u{200D}👧";
        assert!(codes(|c| c.optional_text("body", Some(family), 100)).is_empty());
        assert_eq!(codes(|c| c.required_line("name", family, 100)), ["name:format_character"]);
    }
}
