//! Receiving one file from a `multipart/form-data` request without holding it in memory: the
//! part named `file` is written chunk by chunk to a temporary file under the data folder while
//! it is hashed (SHA-256) and its size counted; its type is read from its first bytes, never
//! from the name or the `Content-Type` the client gave. A file too large, of a type not
//! accepted, or a request cut off midway leaves nothing behind: the temporary file is removed
//! when it is dropped.

use std::path::Path;

use actix_multipart::{Field, Multipart, MultipartError};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{AppError, AppResult};
use crate::vocab::AttachmentType;

/// Longest file name kept, in characters.
pub const FILE_NAME_MAX_CHARS: usize = 200;
/// How many leading bytes the type is read from.
const SNIFF_BYTES: usize = 64;

/// A file received whole, waiting in a temporary file.
pub struct Spooled {
    pub file: tempfile::TempPath,
    pub file_name: String,
    pub content_type: AttachmentType,
    pub byte_size: u64,
    pub sha256: String,
    /// SHA-1, hex (FHIR's Attachment.hash).
    pub sha1: String,
}

/// The type of a file from its first bytes: JPEG, PNG, HEIC/HEIF or PDF, or `None`.
pub fn sniff(head: &[u8]) -> Option<AttachmentType> {
    let kind = infer::get(head)?;
    match kind.mime_type() {
        "image/jpeg" => Some(AttachmentType::Jpeg),
        "image/png" => Some(AttachmentType::Png),
        "application/pdf" => Some(AttachmentType::Pdf),
        // HEIF's `ftyp` box names the major brand: `heic`/`heix` (and their sequences) are
        // HEVC-coded HEIC, anything else HEIF.
        "image/heif" => Some(match head.get(8..12) {
            Some(b"heic" | b"heix" | b"hevc" | b"hevx") => AttachmentType::Heic,
            _ => AttachmentType::Heif,
        }),
        _ => None,
    }
}

fn malformed(e: &MultipartError) -> AppError {
    match e {
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible
        | MultipartError::BoundaryMissing => AppError::not_multipart(),
        other => AppError::field(
            "file",
            "malformed",
            format!("multipart/form-data の本文を読み取れませんでした({other})。送り直してください。"),
            format!("The multipart/form-data body could not be read ({other}). Send it again."),
        ),
    }
}

fn field_error(code: &'static str, ja: &str, en: &str) -> AppError {
    AppError::field("file", code, ja, en)
}

/// The file's name as the client gave it, without any folder part; refused when empty, too
/// long or carrying control or invisible formatting characters.
fn file_name(field: &Field) -> AppResult<String> {
    let disposition = field.content_disposition();
    let given = disposition
        .and_then(|d| d.get_filename_ext())
        .and_then(|ext| String::from_utf8(ext.value.clone()).ok())
        .or_else(|| disposition.and_then(|d| d.get_filename()).map(str::to_string))
        .unwrap_or_default();
    let name = given.rsplit(['/', '\\']).next().unwrap_or_default().trim().to_string();
    if name.is_empty() {
        return Err(field_error(
            "file_name_required",
            "ファイル名がありません。file の項目にファイル名(filename)を付けて送ってください。",
            "The file has no name. Send the file part with a filename.",
        ));
    }
    if name.chars().count() > FILE_NAME_MAX_CHARS
        || name.chars().any(|c| c.is_control() || crate::api::is_invisible_format(c))
    {
        return Err(field_error(
            "file_name_invalid",
            &format!("ファイル名は制御文字を含まない {FILE_NAME_MAX_CHARS} 文字以内にしてください。"),
            &format!("The file name must be at most {FILE_NAME_MAX_CHARS} characters without control characters."),
        ));
    }
    Ok(name)
}

/// Reads the request's one `file` part into a temporary file in `tmp_dir`: 413 past
/// `max_bytes`, 415 for a type not accepted, 422 for a body without exactly one file part.
pub async fn spool(mut multipart: Multipart, tmp_dir: &Path, max_bytes: u64) -> AppResult<Spooled> {
    let mut spooled: Option<Spooled> = None;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|e| malformed(&e))?;
        if field.name() != Some("file") {
            let name = field.name().unwrap_or_default().chars().take(40).collect::<String>();
            return Err(field_error(
                "unknown_part",
                &format!("知らない項目「{name}」があります。送れるのは file だけです。"),
                &format!("Unknown part `{name}`: only `file` is accepted."),
            ));
        }
        if spooled.is_some() {
            return Err(field_error("one_file", "一度に送れるファイルは 1 つです。", "Send one file per request."));
        }
        let file_name = file_name(&field)?;
        spooled = Some(receive(&mut field, file_name, tmp_dir, max_bytes).await?);
    }
    spooled.ok_or_else(|| {
        field_error("required", "file の項目にファイルを入れて送ってください。", "Send the file in a part named file.")
    })
}

async fn receive(field: &mut Field, file_name: String, tmp_dir: &Path, max_bytes: u64) -> AppResult<Spooled> {
    let io = |e: std::io::Error| AppError::internal(format!("spool upload: {e}"));
    tokio::fs::create_dir_all(tmp_dir).await.map_err(io)?;
    let temp = tempfile::Builder::new().prefix("upload-").tempfile_in(tmp_dir).map_err(io)?;
    let (std_file, path) = temp.into_parts();
    let mut out = tokio::fs::File::from_std(std_file);
    let mut hasher = Sha256::new();
    let mut sha1 = sha1::Sha1::new();
    let mut size: u64 = 0;
    let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
    let mut content_type = None;
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| malformed(&e))?;
        size += chunk.len() as u64;
        if size > max_bytes {
            return Err(AppError::payload_too_large(usize::try_from(max_bytes).unwrap_or(usize::MAX)));
        }
        if content_type.is_none() {
            let take = (SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
            if head.len() == SNIFF_BYTES {
                content_type = Some(sniff(&head).ok_or_else(AppError::unsupported_file_type)?);
            }
        }
        hasher.update(&chunk);
        sha1.update(&chunk);
        out.write_all(&chunk).await.map_err(io)?;
    }
    let content_type = match content_type {
        Some(t) => t,
        None => sniff(&head).ok_or_else(AppError::unsupported_file_type)?,
    };
    out.flush().await.map_err(io)?;
    out.sync_all().await.map_err(io)?;
    Ok(Spooled {
        file: path,
        file_name,
        content_type,
        byte_size: size,
        sha256: hex::encode(hasher.finalize()),
        sha1: hex::encode(sha1.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_first_bytes() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0\0\x10JFIF\0"), Some(AttachmentType::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some(AttachmentType::Png));
        assert_eq!(sniff(b"%PDF-1.7\n"), Some(AttachmentType::Pdf));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"), Some(AttachmentType::Heic));
        assert_eq!(sniff(b"\0\0\0\x18ftypmif1\0\0\0\0mif1heic"), Some(AttachmentType::Heif));
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b"<html><script>"), None);
        assert_eq!(sniff(b"MZ\x90\0"), None);
    }
}
