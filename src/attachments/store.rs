//! Where attachment bytes live: an object store through the `object_store` crate — the local
//! filesystem under `RENKEI_DATA_DIR/objects` by default, S3-compatible storage with
//! `RENKEI_STORAGE_URL=s3://bucket`.
//!
//! Keys are minted here (`attachments/<random UUID>`, `thumbnails/<random UUID>`); no part of a
//! key ever comes from a client. An object is written completely (a multipart upload that is
//! finished, or aborted on any error) before the database row that names it is recorded, so a
//! row always names a whole object; an object without a row (the server stopped between the two)
//! is an orphan that [`Store::orphans`] finds and `renkei attachments sweep` removes.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::path::Path as Key;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::config::{Config, Storage};
use crate::error::{AppError, AppResult};

/// The folder of a content object's key.
pub const CONTENT_PREFIX: &str = "attachments";
/// The folder of a thumbnail's key.
pub const THUMBNAIL_PREFIX: &str = "thumbnails";
/// Parts of a multipart upload to S3, which needs at least 5 MiB per part but the last.
const S3_PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts written to the local folder, which takes any size: small, because every upload in
/// flight holds up to three parts in memory (benches/upload.sh measured about 5 MiB of server
/// memory per concurrent 20 MiB upload with 5 MiB parts).
const LOCAL_PART_BYTES: usize = 256 * 1024;

#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    part_bytes: usize,
}

/// A stored object's bytes, or a range of them.
pub struct Object {
    pub stream: BoxStream<'static, object_store::Result<Bytes>>,
    /// The bytes this answer carries.
    pub range: Range<u64>,
}

fn unavailable(what: &str, e: object_store::Error) -> AppError {
    tracing::warn!(error = %e, "object store: {what} failed");
    AppError::storage_unavailable()
}

impl Store {
    /// The store the configuration names. The local folder is created when missing.
    pub fn new(config: &Config) -> Result<Store, String> {
        let (inner, part_bytes) = match &config.storage {
            Storage::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| format!("cannot use {} for attachments: {e}", dir.display()))?;
                (Arc::new(fs) as Arc<dyn ObjectStore>, LOCAL_PART_BYTES)
            }
            Storage::S3 { url, options } => {
                // TLS through rustls with the ring provider (the one lettre uses too).
                let _ = rustls::crypto::ring::default_provider().install_default();
                let mut builder = object_store::aws::AmazonS3Builder::new().with_url(url);
                for (name, value) in options {
                    let key = name
                        .to_ascii_lowercase()
                        .parse::<object_store::aws::AmazonS3ConfigKey>()
                        .map_err(|e| format!("{name}: {e}"))?;
                    builder = builder.with_config(key, value);
                }
                (
                    Arc::new(builder.build().map_err(|e| format!("RENKEI_STORAGE_URL: {e}"))?) as Arc<dyn ObjectStore>,
                    S3_PART_BYTES,
                )
            }
        };
        Ok(Store { inner, part_bytes })
    }

    /// A fresh random key under `prefix`.
    pub fn new_key(prefix: &str) -> String {
        format!("{prefix}/{}", uuid::Uuid::new_v4())
    }

    /// Writes the file at `path` to `key`, streaming it part by part; on any failure the
    /// upload is aborted and nothing stays under `key`.
    pub async fn put_file(&self, key: &str, path: &Path) -> AppResult<()> {
        let mut file =
            tokio::fs::File::open(path).await.map_err(|e| AppError::internal(format!("open spooled upload: {e}")))?;
        let location = Key::from(key);
        let upload = self.inner.put_multipart(&location).await.map_err(|e| unavailable("put", e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_bytes);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let read = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(AppError::internal(format!("read spooled upload: {e}")));
                }
            };
            if read == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(2).await {
                return Err(unavailable("put part", e));
            }
            writer.write(&buf[..read]);
        }
        writer.finish().await.map_err(|e| unavailable("finish put", e))?;
        Ok(())
    }

    /// Writes a small object (a thumbnail) at once.
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> AppResult<()> {
        self.inner.put(&Key::from(key), bytes.into()).await.map_err(|e| unavailable("put", e))?;
        Ok(())
    }

    /// The object at `key`, or the part of it `range` names (already checked against its size).
    pub async fn get(&self, key: &str, range: Option<Range<u64>>) -> AppResult<Object> {
        let options = GetOptions { range: range.map(GetRange::Bounded), ..GetOptions::default() };
        let result = self.inner.get_opts(&Key::from(key), options).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                AppError::internal(format!("object {key} named by an attachment is missing"))
            }
            e => unavailable("get", e),
        })?;
        let range = result.range.clone();
        Ok(Object { stream: result.into_stream(), range })
    }

    /// Removes the object at `key` (an upload that was refused or repeated after the object was
    /// written, or an orphan). A failure is logged: the sweep finds what is left.
    pub async fn discard(&self, key: &str) {
        if let Err(e) = self.inner.delete(&Key::from(key)).await {
            tracing::warn!(error = %e, key, "object store: could not remove an unrecorded object; the sweep will");
        }
    }

    /// The keys of objects last written before `before`, under both prefixes.
    pub async fn written_before(&self, before: chrono::DateTime<chrono::Utc>) -> AppResult<Vec<String>> {
        let mut keys = Vec::new();
        for prefix in [CONTENT_PREFIX, THUMBNAIL_PREFIX] {
            let prefix = Key::from(prefix);
            let mut listing = self.inner.list(Some(&prefix));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(|e| unavailable("list", e))?;
                if meta.last_modified < before {
                    keys.push(meta.location.to_string());
                }
            }
        }
        Ok(keys)
    }
}
