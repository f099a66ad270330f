//! The local upload target: an S3-compatible bucket on loopback, on s3s.
//!
//! s3s parses the S3 protocol and verifies SigV4 (presigned query
//! signatures, expiry, every signed header, `x-amz-content-sha256`). What it
//! leaves to the implementation, and this module adds for `PutObject`:
//!
//! * **Unsigned headers.** s3s checks the headers a signature lists and
//!   ignores the rest, so a presigned `PUT` could add `x-amz-meta-*`,
//!   `x-amz-tagging`, `Content-Disposition`... Real S3 refuses unsigned
//!   `x-amz-*` headers on presigned requests (403); this bucket also refuses
//!   unsigned standard headers that would change the stored object (S3
//!   accepts those), so a URL stores exactly what it signed.
//! * **`x-amz-checksum-sha256`.** s3s parses it into the input but verifies
//!   nothing. The body is hashed while it streams; a mismatch is 400
//!   `BadDigest` and stores nothing.
//! * **Atomic creation.** `If-None-Match: *` is an exclusive create of the
//!   object file; the metadata is written only by the PUT that won it, and
//!   readers see bytes and metadata that belong together.
//! * **Landings and quarantine** (module `landing`): each stored object is
//!   reported to the gate, which settles it in-process, and an object the
//!   gate refuses is marked with the tag `uploadgate-quarantine`.

use std::convert::Infallible;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use futures::StreamExt;
use s3s::auth::SimpleAuth;
use s3s::crypto::{Checksum as _, Md5, Sha256};
use s3s::dto::{
    ETag, GetObjectInput, GetObjectOutput, GetObjectTaggingInput, GetObjectTaggingOutput,
    HeadObjectInput, HeadObjectOutput, PutObjectInput, PutObjectOutput, StreamingBlob,
};
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use tokio::io::AsyncReadExt as _;
use tower::ServiceBuilder;
use tower_http::cors::{Any, CorsLayer};

use crate::ChecksumSha256;
use unsigned::refuse_unsigned_headers;

pub use landing::{Landings, QUARANTINE_TAG};

mod landing;
mod unsigned;

/// Credentials the local bucket accepts, generated at start-up.
#[derive(Clone)]
pub struct LocalCredentials {
    /// Access key id.
    pub access_key: String,
    /// Secret key; never printed.
    pub secret_key: String,
}

impl std::fmt::Debug for LocalCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl LocalCredentials {
    /// The region the local bucket signs in.
    pub const REGION: &'static str = "us-east-1";

    /// Fresh random credentials. URLs signed with them die with the process.
    pub fn generate() -> Self {
        let a = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
        let s = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        LocalCredentials {
            access_key: format!("UGLOCAL{}", &a[..13]),
            secret_key: s,
        }
    }
}

/// Why the local bucket could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalServeError {
    /// The object directory could not be created.
    #[error("cannot create object directory {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The local bucket's service: s3s behind CORS.
pub type LocalService = tower_http::cors::Cors<s3s::service::S3Service>;

/// An S3-compatible bucket on loopback, storing objects as files under
/// `<data-dir>/objects/<bucket>/<key>` (metadata beside them under
/// `objects-meta/`). s3s parses the S3 protocol and checks every signature;
/// this type implements PutObject, GetObject and HeadObject for one bucket.
#[derive(Clone, Debug)]
pub struct LocalBucket {
    inner: Arc<Inner>,
}

struct Inner {
    bucket: String,
    objects: PathBuf,
    meta: PathBuf,
    tmp: PathBuf,
    /// Held while an object's bytes and metadata are put in place, and
    /// while a reader opens both: a reader never pairs one PUT's bytes with
    /// another's metadata. Renames and opens only; no I/O on bodies.
    commit: Mutex<()>,
    /// Told of every stored object (`uploadgate serve` in upload mode).
    landings: OnceLock<Arc<dyn Landings>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("bucket", &self.bucket)
            .field("objects", &self.objects)
            .field("landings", &self.landings.get().is_some())
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_disposition: Option<String>,
    etag: String,
    /// Why the gate quarantined the object, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quarantine: Option<String>,
}

impl LocalBucket {
    /// A bucket named `bucket` storing under `data_dir`.
    pub fn open(data_dir: &Path, bucket: &str) -> Result<Self, LocalServeError> {
        let objects = data_dir.join("objects").join(bucket);
        let meta = data_dir.join("objects-meta").join(bucket);
        let tmp = data_dir.join("objects-tmp");
        for d in [&objects, &meta, &tmp] {
            std::fs::create_dir_all(d).map_err(|source| LocalServeError::Dir {
                path: d.clone(),
                source,
            })?;
        }
        Ok(LocalBucket {
            inner: Arc::new(Inner {
                bucket: bucket.to_owned(),
                objects,
                meta,
                tmp,
                commit: Mutex::new(()),
                landings: OnceLock::new(),
            }),
        })
    }

    /// Where an object's bytes live.
    pub fn object_path(&self, key: &str) -> Option<PathBuf> {
        safe_relative(key).map(|rel| self.inner.objects.join(rel))
    }

    /// The bucket as a tower service: s3s checks every request's signature
    /// against `creds`; CORS is answered for any origin, since every write
    /// still needs a valid signature. The server that runs it (timeouts,
    /// connection cap) is the caller's: `uploadgate serve` runs it like the
    /// API.
    pub fn service(self, creds: LocalCredentials) -> LocalService {
        let mut builder = S3ServiceBuilder::new(self);
        builder.set_auth(SimpleAuth::from_single(creds.access_key, creds.secret_key));
        let cors = CorsLayer::new()
            .allow_origin(Any)
            .allow_methods([http::Method::PUT, http::Method::GET, http::Method::HEAD])
            .allow_headers(Any)
            .expose_headers([
                http::header::ETAG,
                s3s::header::X_AMZ_TAGGING_COUNT,
                http::HeaderName::from_static("x-amz-meta-uploadgate-quarantine"),
            ])
            .max_age(std::time::Duration::from_secs(600));
        ServiceBuilder::new().layer(cors).service(builder.build())
    }

    fn check_bucket(&self, bucket: &str) -> S3Result<()> {
        if bucket == self.inner.bucket {
            Ok(())
        } else {
            Err(s3_error!(NoSuchBucket))
        }
    }

    fn paths(&self, key: &str) -> S3Result<(PathBuf, PathBuf)> {
        let rel = safe_relative(key).ok_or_else(|| s3_error!(InvalidArgument, "invalid key"))?;
        let mut meta = self.inner.meta.join(&rel).into_os_string();
        meta.push(".json");
        Ok((self.inner.objects.join(rel), PathBuf::from(meta)))
    }

    fn commit_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .commit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The object's bytes (opened) and metadata, as one PUT left them.
    fn open_object(
        &self,
        path: &Path,
        meta_path: &Path,
    ) -> S3Result<(std::fs::File, Option<Meta>)> {
        let _commit = self.commit_lock();
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(s3_error!(NoSuchKey)),
            Err(e) => return Err(io_err(e)),
        };
        let meta = std::fs::read(meta_path)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok());
        Ok((file, meta))
    }

    /// Puts a finished upload in place: the bytes (an exclusive create when
    /// `exclusive`), then, only if that succeeded, the metadata.
    fn commit(
        &self,
        bytes: tempfile::NamedTempFile,
        meta: tempfile::NamedTempFile,
        path: &Path,
        meta_path: &Path,
        exclusive: bool,
    ) -> S3Result<()> {
        for p in [path, meta_path] {
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(io_err)?;
            }
        }
        let _commit = self.commit_lock();
        if exclusive {
            // Atomic create: of two concurrent PUTs exactly one wins, even
            // across processes sharing the directory.
            bytes.persist_noclobber(path).map_err(|e| {
                if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    precondition_failed()
                } else {
                    io_err(e.error)
                }
            })?;
        } else {
            bytes.persist(path).map_err(|e| io_err(e.error))?;
        }
        if let Err(e) = meta.persist(meta_path) {
            if exclusive {
                // Undo the create: a failed PUT stores nothing.
                let _ = std::fs::remove_file(path);
            }
            return Err(io_err(e.error));
        }
        Ok(())
    }
}

/// A key as a relative path that cannot leave the bucket directory.
fn safe_relative(key: &str) -> Option<PathBuf> {
    let segments_ok = !key.is_empty()
        && key.split('/').all(|s| {
            !s.is_empty() && s != "." && s != ".." && !s.contains('\\') && !s.contains('\0')
        });
    let p = Path::new(key);
    let ok = segments_ok && p.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then(|| p.to_owned())
}

fn io_err(e: std::io::Error) -> s3s::S3Error {
    s3s::S3Error::internal_error(e)
}

fn precondition_failed() -> s3s::S3Error {
    s3_error!(
        PreconditionFailed,
        "At least one of the pre-conditions you specified did not hold"
    )
}

#[async_trait::async_trait]
impl S3 for LocalBucket {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        refuse_unsigned_headers(&req.uri, &req.headers)?;
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        let (path, meta_path) = self.paths(&input.key)?;
        let expected_sha256 = input
            .checksum_sha256
            .as_deref()
            .map(ChecksumSha256::parse)
            .transpose()
            .map_err(|_| {
                s3_error!(
                    InvalidRequest,
                    "Value for x-amz-checksum-sha256 header is invalid."
                )
            })?;
        let Some(mut body) = input.body else {
            return Err(s3_error!(IncompleteBody));
        };
        let exclusive = input.if_none_match.as_ref().is_some_and(|c| c.is_any());
        if exclusive && path.exists() {
            return Err(precondition_failed());
        }
        let mut tmp = tempfile::NamedTempFile::new_in(&self.inner.tmp).map_err(io_err)?;
        let mut md5 = Md5::new();
        let mut sha256 = expected_sha256.as_ref().map(|_| Sha256::new());
        let mut len: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk: Bytes = chunk.map_err(|e| s3_error!(IncompleteBody, "{e}"))?;
            md5.update(&chunk);
            if let Some(h) = &mut sha256 {
                h.update(&chunk);
            }
            len += chunk.len() as u64;
            tmp.write_all(&chunk).map_err(io_err)?;
        }
        if let Some(declared) = input.content_length
            && u64::try_from(declared).ok() != Some(len)
        {
            return Err(s3_error!(
                IncompleteBody,
                "body length does not match Content-Length"
            ));
        }
        if let (Some(expected), Some(h)) = (&expected_sha256, sha256)
            && h.finalize() != *expected.digest()
        {
            return Err(s3_error!(
                BadDigest,
                "The SHA256 you specified did not match the calculated checksum."
            ));
        }
        tmp.as_file().sync_all().map_err(io_err)?;
        let etag = hex::encode(md5.finalize());
        let mut meta = tempfile::NamedTempFile::new_in(&self.inner.tmp).map_err(io_err)?;
        serde_json::to_writer(
            &mut meta,
            &Meta {
                content_type: input.content_type.clone(),
                content_disposition: input.content_disposition,
                etag: etag.clone(),
                quarantine: None,
            },
        )
        .map_err(s3s::S3Error::internal_error)?;
        meta.as_file().sync_all().map_err(io_err)?;
        self.commit(tmp, meta, &path, &meta_path, exclusive)?;
        tracing::debug!(key = %input.key, bytes = len, "local bucket: stored object");
        // Stored: the one PUT that created it reports it (a losing racer
        // was refused above).
        let checksum = expected_sha256.as_ref().map(|c| *c.digest());
        self.report(&input.key, len, input.content_type, checksum);
        let output = PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            checksum_sha256: expected_sha256.map(|c| c.as_str().to_owned()),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.check_bucket(&req.input.bucket)?;
        let (path, meta_path) = self.paths(&req.input.key)?;
        let (file, meta) = self.open_object(&path, &meta_path)?;
        let mut data = Vec::new();
        tokio::fs::File::from_std(file)
            .read_to_end(&mut data)
            .await
            .map_err(io_err)?;
        let data = Bytes::from(data);
        let len = data.len() as i64;
        let body = futures::stream::once(async move { Ok::<_, Infallible>(data) });
        let metadata = landing::metadata(meta.as_ref());
        let tag_count = i32::try_from(landing::tags(meta.as_ref()).len())
            .ok()
            .filter(|n| *n > 0);
        let (content_type, content_disposition, e_tag) = meta.map_or((None, None, None), |m| {
            (
                m.content_type,
                m.content_disposition,
                Some(ETag::Strong(m.etag)),
            )
        });
        let output = GetObjectOutput {
            body: Some(StreamingBlob::wrap(body)),
            content_length: Some(len),
            content_type,
            content_disposition,
            e_tag,
            metadata,
            tag_count,
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.check_bucket(&req.input.bucket)?;
        let (path, meta_path) = self.paths(&req.input.key)?;
        let (file, meta) = self.open_object(&path, &meta_path)?;
        let len = file.metadata().map_err(io_err)?.len();
        let metadata = landing::metadata(meta.as_ref());
        let (content_type, content_disposition, e_tag) = meta.map_or((None, None, None), |m| {
            (
                m.content_type,
                m.content_disposition,
                Some(ETag::Strong(m.etag)),
            )
        });
        let output = HeadObjectOutput {
            content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
            content_type,
            content_disposition,
            e_tag,
            metadata,
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        self.check_bucket(&req.input.bucket)?;
        let (path, meta_path) = self.paths(&req.input.key)?;
        let (_, meta) = self.open_object(&path, &meta_path)?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: landing::tags(meta.as_ref()),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_bucket() {
        assert_eq!(
            safe_relative("uploads/a/b.pdf"),
            Some(PathBuf::from("uploads/a/b.pdf"))
        );
        for bad in ["", "../x", "a/../../x", "/etc/passwd", "a/./b", "dir/"] {
            assert_eq!(safe_relative(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn credentials_do_not_print_the_secret() {
        let c = LocalCredentials::generate();
        assert!(!format!("{c:?}").contains(&c.secret_key));
        assert_ne!(c.secret_key, LocalCredentials::generate().secret_key);
    }
}
