use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use md5::{Digest, Md5};
use s3s::auth::SimpleAuth;
use s3s::dto::{
    ETag, GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, PutObjectInput,
    PutObjectOutput, StreamingBlob,
};
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::cors::{Any, CorsLayer};

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

/// An S3-compatible bucket on loopback, storing objects as files under
/// `<data-dir>/objects/<bucket>/<key>` (metadata beside them under
/// `objects-meta/`). s3s parses the S3 protocol and checks every signature;
/// this type implements PutObject, GetObject and HeadObject for one bucket.
#[derive(Clone, Debug)]
pub struct LocalBucket {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bucket: String,
    objects: PathBuf,
    meta: PathBuf,
    tmp: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    content_type: Option<String>,
    etag: String,
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
            }),
        })
    }

    /// Where an object's bytes live.
    pub fn object_path(&self, key: &str) -> Option<PathBuf> {
        safe_relative(key).map(|rel| self.inner.objects.join(rel))
    }

    /// Serves the bucket on `listener` until `shutdown` resolves. Accepts only
    /// requests signed with `creds`; answers CORS for any origin, since every
    /// write still needs a valid signature.
    pub async fn serve(
        self,
        listener: TcpListener,
        creds: LocalCredentials,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let mut builder = S3ServiceBuilder::new(self);
        builder.set_auth(SimpleAuth::from_single(creds.access_key, creds.secret_key));
        let s3 = builder.build();
        let cors = CorsLayer::new()
            .allow_origin(Any)
            .allow_methods([http::Method::PUT, http::Method::GET, http::Method::HEAD])
            .allow_headers(Any)
            .expose_headers([http::header::ETAG])
            .max_age(std::time::Duration::from_secs(600));
        let svc = ServiceBuilder::new().layer(cors).service(s3);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer): (_, SocketAddr) = tokio::select! {
                () = &mut shutdown => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "local bucket: accept failed");
                        continue;
                    }
                },
            };
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                if let Err(e) = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "local bucket: connection ended");
                }
            });
        }
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

    async fn read_meta(path: &Path) -> Option<Meta> {
        let raw = tokio::fs::read(path).await.ok()?;
        serde_json::from_slice(&raw).ok()
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

#[async_trait::async_trait]
impl S3 for LocalBucket {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        let (path, meta_path) = self.paths(&input.key)?;
        let Some(mut body) = input.body else {
            return Err(s3_error!(IncompleteBody));
        };
        let exclusive = input.if_none_match.as_ref().is_some_and(|c| c.is_any());
        if exclusive && path.exists() {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
        let mut tmp = tempfile::NamedTempFile::new_in(&self.inner.tmp).map_err(io_err)?;
        let mut hasher = Md5::new();
        let mut len: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk: Bytes = chunk.map_err(|e| s3_error!(IncompleteBody, "{e}"))?;
            hasher.update(&chunk);
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
        tmp.as_file().sync_all().map_err(io_err)?;
        let etag = hex::encode(hasher.finalize());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        if let Some(parent) = meta_path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let meta = serde_json::to_vec(&Meta {
            content_type: input.content_type.clone(),
            etag: etag.clone(),
        })
        .map_err(s3s::S3Error::internal_error)?;
        std::fs::write(&meta_path, meta).map_err(io_err)?;
        if exclusive {
            // Atomic create: of two concurrent PUTs exactly one wins.
            tmp.persist_noclobber(&path).map_err(|e| {
                if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    s3_error!(
                        PreconditionFailed,
                        "At least one of the pre-conditions you specified did not hold"
                    )
                } else {
                    io_err(e.error)
                }
            })?;
        } else {
            tmp.persist(&path).map_err(|e| io_err(e.error))?;
        }
        tracing::debug!(key = %input.key, bytes = len, "local bucket: stored object");
        let output = PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
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
        let data = match tokio::fs::read(&path).await {
            Ok(d) => Bytes::from(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(s3_error!(NoSuchKey)),
            Err(e) => return Err(io_err(e)),
        };
        let meta = Self::read_meta(&meta_path).await;
        let len = data.len() as i64;
        let body = futures::stream::once(async move { Ok::<_, Infallible>(data) });
        let output = GetObjectOutput {
            body: Some(StreamingBlob::wrap(body)),
            content_length: Some(len),
            content_type: meta.as_ref().and_then(|m| m.content_type.clone()),
            e_tag: meta.map(|m| ETag::Strong(m.etag)),
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
        let md = match tokio::fs::metadata(&path).await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(s3_error!(NoSuchKey)),
            Err(e) => return Err(io_err(e)),
        };
        let meta = Self::read_meta(&meta_path).await;
        let output = HeadObjectOutput {
            content_length: Some(md.len() as i64),
            content_type: meta.as_ref().and_then(|m| m.content_type.clone()),
            e_tag: meta.map(|m| ETag::Strong(m.etag)),
            ..Default::default()
        };
        Ok(S3Response::new(output))
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
