//! Presigned `PUT` URLs, signed with `aws-sigv4` directly.
//!
//! aws-sdk-s3's `presigned()` runs the whole request orchestrator (config
//! bag, interceptors, endpoint rules, identity cache) for every URL; that
//! was most of the server's CPU per upload. Signing is the only part that
//! changes per URL, so [`Presigner::presign`] does exactly what the SDK's
//! signer does (same `aws-sigv4` crate, S3's settings) and keeps the rest
//! fixed. By concern:
//!
//! * [`direct`]: the signing itself, on the request the SDK's serializer
//!   would build.
//! * [`probe`]: where the bucket lives (path style or virtual host, custom
//!   endpoint, FIPS, dual-stack, signing region), learnt from one SDK presign
//!   and confirmed by signing the same probe directly. Any configuration the
//!   direct signer does not reproduce exactly (say an S3 Express bucket)
//!   stays on the SDK for every call.
//! * [`credentials`]: the SDK's own lazy identity cache, set so that a URL
//!   never outlives the credentials that signed it.
//!
//! [`Presigner::presign_via_sdk`] is the SDK path, kept as the oracle:
//! tests check that both produce the identical URL and headers.

mod credentials;
mod direct;
mod probe;
mod spec;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_s3::config::{RequestChecksumCalculation, SharedAsyncSleep};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_smithy_runtime_api::client::identity::Identity;
use uploadgate_core::ObjectKey;

#[cfg(feature = "local")]
use crate::LocalCredentials;
use credentials::SigningCredentials;
use direct::Endpoint;
pub use spec::{ChecksumSha256, InvalidChecksum, PutSpec};

/// Why a URL could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PresignError {
    /// The presigning configuration was refused (e.g. a lifetime over a week).
    #[error("invalid presigning configuration")]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No credentials to sign with: none are configured, the provider
    /// failed, or the ones it gave have expired.
    #[error("no usable AWS credentials to sign the upload URL")]
    Credentials(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Signing failed (e.g. a header value is not valid in HTTP).
    #[error("could not sign the upload URL")]
    Sign(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl PresignError {
    /// Whether the same request may succeed later: credential providers
    /// recover, while a bad configuration or header value does not.
    pub fn is_transient(&self) -> bool {
        matches!(self, PresignError::Credentials(_))
    }
}

/// A signed, single-use upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresignedUpload {
    /// The presigned URL.
    pub url: String,
    /// Headers the client must send exactly (lower-case names).
    pub headers: Vec<(String, String)>,
    /// When the URL stops working: the configured lifetime after the start
    /// time, or earlier if the signing credentials expire first.
    pub expires_at: SystemTime,
}

/// Signs upload URLs for one bucket. Build it once at start-up; signing is
/// local computation with cached credentials. Clones share the cache.
#[derive(Clone, Debug)]
pub struct Presigner {
    client: aws_sdk_s3::Client,
    bucket: String,
    ttl: Duration,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    credentials: SigningCredentials,
    route: tokio::sync::OnceCell<Route>,
}

/// How URLs are signed, decided by the probe on the first call.
#[derive(Debug)]
enum Route {
    /// Here, with `aws-sigv4`.
    Direct(Endpoint),
    /// Through the SDK's `presigned()`: the probe found a configuration this
    /// module does not reproduce exactly.
    Sdk,
}

impl Presigner {
    /// Signs with the standard AWS configuration: region, credentials chain,
    /// and endpoint (`AWS_ENDPOINT_URL_S3`) as aws-config loads them.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, bucket: String, ttl: Duration) -> Self {
        Self::build(
            aws_sdk_s3::config::Builder::from(sdk),
            sdk.credentials_provider(),
            sdk.sleep_impl(),
            bucket,
            ttl,
        )
    }

    /// Signs for the embedded local bucket at `endpoint` (path-style).
    #[cfg(feature = "local")]
    pub fn for_local(
        endpoint: &str,
        creds: &LocalCredentials,
        bucket: String,
        ttl: Duration,
    ) -> Self {
        let provider = SharedCredentialsProvider::new(aws_sdk_s3::config::Credentials::new(
            creds.access_key.clone(),
            creds.secret_key.clone(),
            None,
            None,
            "uploadgate-local",
        ));
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(LocalCredentials::REGION))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .credentials_provider(provider.clone());
        Self::build(conf, Some(provider), None, bucket, ttl)
    }

    /// `provider` is the one `conf` holds (the built config does not hand it
    /// back): the direct path resolves credentials from it, through the
    /// identity cache both paths share.
    fn build(
        conf: aws_sdk_s3::config::Builder,
        provider: Option<SharedCredentialsProvider>,
        sleep: Option<SharedAsyncSleep>,
        bucket: String,
        ttl: Duration,
    ) -> Self {
        let credentials = SigningCredentials::new(provider, ttl, sleep);
        let conf = conf
            .identity_cache(credentials.cache())
            // Some SDK releases add default checksums to presigned PUTs,
            // which browsers cannot satisfy (BadDigest).
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .build();
        Presigner {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket,
            ttl,
            shared: Arc::new(Shared {
                credentials,
                route: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// The bucket URLs are signed for.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// How long a URL lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs a `PUT` of exactly `size` bytes of `content_type` to `key`,
    /// valid from `now` for the configured lifetime, and only if the object
    /// does not exist yet: [`presign`](Self::presign) with neither a
    /// checksum nor a `Content-Disposition`.
    pub async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        size: u64,
        now: SystemTime,
    ) -> Result<PresignedUpload, PresignError> {
        self.presign(&PutSpec::new(key, content_type, size), now)
            .await
    }

    /// Signs the `PUT` `spec` describes, valid from `now` for the configured
    /// lifetime (or until the signing credentials expire, if sooner), and
    /// only if the object does not exist yet (`If-None-Match: *`). Every
    /// part of `spec` is a signed header the client must send as listed in
    /// [`PresignedUpload::headers`].
    pub async fn presign(
        &self,
        spec: &PutSpec<'_>,
        now: SystemTime,
    ) -> Result<PresignedUpload, PresignError> {
        let lifetime = self.presigning_config(now)?.expires();
        let (identity, route) = self.ready(now).await?;
        match route {
            Route::Direct(endpoint) => {
                let lifetime = credentials::url_lifetime(&identity, now, lifetime)?;
                direct::sign_put(endpoint, &identity, spec, now, lifetime)
            }
            // Boxed like the probe: the SDK's future is several KiB.
            Route::Sdk => Box::pin(self.presign_via_sdk(spec, now)).await,
        }
    }

    /// The credentials for signing at `now`, and the route (learnt by the
    /// one-time probe on first use).
    async fn ready(&self, now: SystemTime) -> Result<(Identity, &Route), PresignError> {
        let identity = self.shared.credentials.identity(now).await?;
        // The probe runs the SDK's presigning orchestrator, whose future is
        // several KiB; boxed, so that the hot path's future (and every
        // request future that awaits it) stays small.
        let route = self
            .shared
            .route
            .get_or_try_init(|| Box::pin(self.probe(&identity, now)))
            .await?;
        Ok((identity, route))
    }

    /// Does the one-time work of the first [`presign`](Self::presign) now
    /// (resolve credentials, learn the URL shape from one SDK presign), so
    /// it lands in start-up (Lambda's init phase), not in a request. A
    /// failure is only logged: the first request retries it and answers
    /// with the error if it persists.
    pub async fn warm_up(&self) {
        if let Err(e) = self.ready(SystemTime::now()).await {
            tracing::warn!(error = %e, bucket = %self.bucket, "presigner not ready at start-up; retrying on first use");
        }
    }

    /// This presigner, but its [`presign`](Self::presign) always goes
    /// through aws-sdk-s3's `presigned()`, as it did before the direct
    /// signer: for benchmarks that compare both in one run.
    #[doc(hidden)]
    pub fn always_via_sdk(self) -> Self {
        Presigner {
            shared: Arc::new(Shared {
                credentials: self.shared.credentials.share(),
                route: tokio::sync::OnceCell::new_with(Some(Route::Sdk)),
            }),
            ..self
        }
    }

    /// [`presign`](Self::presign) through aws-sdk-s3's `presigned()`: the
    /// reference the direct signer is tested against. Slow (the whole SDK
    /// orchestrator per URL); not for the request path.
    #[doc(hidden)]
    pub async fn presign_via_sdk(
        &self,
        spec: &PutSpec<'_>,
        now: SystemTime,
    ) -> Result<PresignedUpload, PresignError> {
        self.sdk_presign(&self.client, spec, now).await
    }

    fn presigning_config(&self, now: SystemTime) -> Result<PresigningConfig, PresignError> {
        PresigningConfig::builder()
            .start_time(now)
            .expires_in(self.ttl)
            .build()
            .map_err(|e| PresignError::Config(Box::new(e)))
    }

    async fn sdk_presign(
        &self,
        client: &aws_sdk_s3::Client,
        spec: &PutSpec<'_>,
        now: SystemTime,
    ) -> Result<PresignedUpload, PresignError> {
        let req = client
            .put_object()
            .bucket(&self.bucket)
            .key(spec.key.as_str())
            .content_type(spec.content_type)
            .content_length(direct::content_length(spec.size))
            .set_checksum_sha256(spec.checksum_sha256.map(|c| c.as_str().to_owned()))
            .set_content_disposition(spec.content_disposition.map(str::to_owned))
            .if_none_match("*")
            .presigned(self.presigning_config(now)?)
            .await
            .map_err(|e| PresignError::Sign(Box::new(e)))?;
        let headers: Vec<(String, String)> = req
            .headers()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .filter(|(k, _)| k != "host")
            .collect();
        // aws-sdk-s3 keeps the checksum a header today. Other SDKs hoist
        // `x-amz-*` headers into the query, where S3 ignores the checksum:
        // should this one start to, refuse rather than sign an unbound URL.
        if let Some(checksum) = spec.checksum_sha256
            && !headers
                .iter()
                .any(|(k, v)| k == "x-amz-checksum-sha256" && v == checksum.as_str())
        {
            return Err(PresignError::Sign(
                "aws-sdk-s3 did not sign x-amz-checksum-sha256 as a header".into(),
            ));
        }
        Ok(PresignedUpload {
            url: req.uri().to_owned(),
            headers,
            expires_at: now + self.ttl,
        })
    }
}
