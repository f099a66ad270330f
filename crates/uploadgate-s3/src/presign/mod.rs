//! Presigned `PUT` URLs, signed with `aws-sigv4` directly.
//!
//! aws-sdk-s3's `presigned()` runs the whole request orchestrator (config
//! bag, interceptors, endpoint rules, identity cache) for every URL; that
//! was most of the server's CPU per upload. Signing is the only part that
//! changes per URL, so [`Presigner::presign_put`] does exactly what the SDK's
//! signer does (same `aws-sigv4` crate, S3's settings) and keeps the rest
//! fixed:
//!
//! * **Where the bucket lives** (path style or virtual host, custom endpoint,
//!   FIPS, dual-stack, signing region) is learnt from the SDK itself: the
//!   first call presigns a probe key with the SDK, takes everything before
//!   the key as the URL base, signs the same probe here, and uses the direct
//!   path only if both URLs are identical. Otherwise (say an S3 Express
//!   bucket, which the SDK signs differently) every call goes through the SDK.
//! * **Credentials** are resolved once and cached, and renewed when they
//!   would expire within one URL lifetime (role credentials are session
//!   credentials; a URL dies with them).
//!
//! [`Presigner::presign_put_via_sdk`] is the SDK path, kept as the oracle:
//! tests check that both produce the identical URL and headers.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::config::{Credentials, RequestChecksumCalculation};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SessionTokenMode, SignableBody, SignableRequest,
    SignatureLocation, SigningParams, SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_http::label::EncodingStrategy;
use aws_smithy_runtime_api::client::identity::Identity;
use uploadgate_core::ObjectKey;

#[cfg(feature = "local")]
use crate::LocalCredentials;

/// Why a URL could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PresignError {
    /// The presigning configuration was refused (e.g. a lifetime over a week).
    #[error("invalid presigning configuration")]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Signing failed (e.g. no credentials could be loaded, or a header value
    /// is not valid in HTTP).
    #[error("could not sign the upload URL")]
    Sign(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A signed, single-use upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresignedUpload {
    /// The presigned URL.
    pub url: String,
    /// Headers the client must send exactly (lower-case names).
    pub headers: Vec<(String, String)>,
    /// When the URL stops working.
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
    credentials: CredentialsCache,
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

/// What the SDK's endpoint resolution produced for the bucket.
#[derive(Debug)]
struct Endpoint {
    /// Everything before `/{key}`: `scheme://host[:port]` for a virtual-host
    /// bucket, `scheme://host[:port]/bucket` for path style.
    base: String,
    /// Signing region and name, as the SDK signed them.
    region: String,
    service: String,
}

/// The key the probe signs: unreserved characters only, so its encoding is
/// itself and the URL base is what precedes it.
const PROBE_KEY: &str = "uploadgate-endpoint-probe";
const PROBE_CONTENT_TYPE: &str = "application/octet-stream";

impl Presigner {
    /// Signs with the standard AWS configuration: region, credentials chain,
    /// and endpoint (`AWS_ENDPOINT_URL_S3`) as aws-config loads them.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, bucket: String, ttl: Duration) -> Self {
        Self::build(
            aws_sdk_s3::config::Builder::from(sdk),
            sdk.credentials_provider(),
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
        let provider = SharedCredentialsProvider::new(Credentials::new(
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
        Self::build(conf, Some(provider), bucket, ttl)
    }

    /// `provider` is the one `conf` holds (the built config does not hand it
    /// back): the direct path resolves and caches credentials from it.
    fn build(
        conf: aws_sdk_s3::config::Builder,
        provider: Option<SharedCredentialsProvider>,
        bucket: String,
        ttl: Duration,
    ) -> Self {
        let conf = conf
            // Some SDK releases add default checksums to presigned PUTs,
            // which browsers cannot satisfy (BadDigest).
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .build();
        let credentials = CredentialsCache::new(provider, ttl);
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
    /// does not exist yet.
    pub async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        size: u64,
        now: SystemTime,
    ) -> Result<PresignedUpload, PresignError> {
        let expires_in = self.presigning_config(now)?.expires();
        let (identity, route) = self.ready(now).await?;
        match route {
            Route::Direct(endpoint) => sign_put(
                endpoint,
                &identity,
                key.as_str(),
                content_type,
                size,
                now,
                expires_in,
            ),
            // Boxed like the probe: the SDK's future is several KiB.
            Route::Sdk => Box::pin(self.presign_put_via_sdk(key, content_type, size, now)).await,
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

    /// Does the one-time work of the first [`presign_put`](Self::presign_put)
    /// now (resolve credentials, learn the URL shape from one SDK presign),
    /// so it lands in start-up (Lambda's init phase), not in a request. A
    /// failure is only logged: the first request retries it and answers
    /// with the error if it persists.
    pub async fn warm_up(&self) {
        if let Err(e) = self.ready(SystemTime::now()).await {
            tracing::warn!(error = %e, bucket = %self.bucket, "presigner not ready at start-up; retrying on first use");
        }
    }

    /// This presigner, but its [`presign_put`](Self::presign_put) always
    /// goes through aws-sdk-s3's `presigned()`, as it did before the direct
    /// signer: for benchmarks that compare both in one run.
    #[doc(hidden)]
    pub fn always_via_sdk(self) -> Self {
        let credentials = CredentialsCache::new(
            self.shared.credentials.provider.clone(),
            self.shared.credentials.renew_before,
        );
        Presigner {
            shared: Arc::new(Shared {
                credentials,
                route: tokio::sync::OnceCell::new_with(Some(Route::Sdk)),
            }),
            ..self
        }
    }

    /// [`presign_put`](Self::presign_put) through aws-sdk-s3's `presigned()`:
    /// the reference the direct signer is tested against. Slow (the whole
    /// SDK orchestrator per URL); not for the request path.
    #[doc(hidden)]
    pub async fn presign_put_via_sdk(
        &self,
        key: &ObjectKey,
        content_type: &str,
        size: u64,
        now: SystemTime,
    ) -> Result<PresignedUpload, PresignError> {
        self.sdk_presign(&self.client, key.as_str(), content_type, size, now)
            .await
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
        key: &str,
        content_type: &str,
        size: u64,
        now: SystemTime,
    ) -> Result<PresignedUpload, PresignError> {
        let req = client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(content_length(size))
            .if_none_match("*")
            .presigned(self.presigning_config(now)?)
            .await
            .map_err(|e| PresignError::Sign(Box::new(e)))?;
        let headers = req
            .headers()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .filter(|(k, _)| k != "host")
            .collect();
        Ok(PresignedUpload {
            url: req.uri().to_owned(),
            headers,
            expires_at: now + self.ttl,
        })
    }

    /// Learns the URL base and signing scope from one SDK presign of
    /// [`PROBE_KEY`], then checks that signing the probe here gives the very
    /// same URL. Both sides use the same credentials and time.
    async fn probe(&self, identity: &Identity, now: SystemTime) -> Result<Route, PresignError> {
        let creds = identity
            .data::<Credentials>()
            .cloned()
            .ok_or_else(|| PresignError::Sign("the identity is not AWS credentials".into()))?;
        let client = aws_sdk_s3::Client::from_conf(
            self.client
                .config()
                .to_builder()
                .credentials_provider(creds)
                .build(),
        );
        let expected = self
            .sdk_presign(&client, PROBE_KEY, PROBE_CONTENT_TYPE, 1, now)
            .await?;
        let Some(endpoint) = endpoint_from_probe(&expected.url) else {
            tracing::warn!(
                bucket = %self.bucket,
                "presigning through aws-sdk-s3 (slow path): its URL does not have the expected shape"
            );
            return Ok(Route::Sdk);
        };
        let ours = sign_put(
            &endpoint,
            identity,
            PROBE_KEY,
            PROBE_CONTENT_TYPE,
            1,
            now,
            self.presigning_config(now)?.expires(),
        )?;
        if ours.url == expected.url {
            tracing::debug!(base = %endpoint.base, region = %endpoint.region, "presigning with aws-sigv4 directly");
            Ok(Route::Direct(endpoint))
        } else {
            tracing::warn!(
                bucket = %self.bucket,
                "presigning through aws-sdk-s3 (slow path): the direct signature differs from the SDK's"
            );
            Ok(Route::Sdk)
        }
    }
}

/// The SDK's `content_length` is an `i64`.
fn content_length(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// `scheme://host[/bucket]`, region and signing name from a presigned URL of
/// [`PROBE_KEY`]; `None` if the URL is not a plain SigV4 query signature of
/// `{base}/{key}?x-id=PutObject&...`.
fn endpoint_from_probe(url: &str) -> Option<Endpoint> {
    let (path, query) = url.split_once('?')?;
    let base = path.strip_suffix(PROBE_KEY)?.strip_suffix('/')?;
    let mut params = query.split('&');
    if params.next()? != "x-id=PutObject" {
        return None;
    }
    let mut credential = None;
    for kv in params {
        match kv.split_once('=')? {
            ("X-Amz-Algorithm", alg) if alg != "AWS4-HMAC-SHA256" => return None,
            ("X-Amz-Credential", c) => credential = Some(c),
            _ => {}
        }
    }
    // `AKID/yyyymmdd/region/service/aws4_request`, with `/` encoded.
    let mut scope = credential?.rsplit("%2F");
    if scope.next()? != "aws4_request" {
        return None;
    }
    let service = scope.next()?;
    let region = scope.next()?;
    Some(Endpoint {
        base: base.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
    })
}

/// What aws-sdk-s3's signer does for a presigned `PutObject`, on the request
/// its serializer builds: `PUT {base}/{key}?x-id=PutObject` with
/// `Content-Length`, `Content-Type`, `If-None-Match` (in that order).
fn sign_put(
    endpoint: &Endpoint,
    identity: &Identity,
    key: &str,
    content_type: &str,
    size: u64,
    now: SystemTime,
    expires_in: Duration,
) -> Result<PresignedUpload, PresignError> {
    // The SDK refuses an empty key and header values HTTP does not allow.
    if key.trim().is_empty() {
        return Err(PresignError::Sign("the object key is empty".into()));
    }
    http::HeaderValue::from_str(content_type).map_err(|e| PresignError::Sign(Box::new(e)))?;
    let length = content_length(size).to_string();
    let headers = [
        ("content-length", length.as_str()),
        ("content-type", content_type),
        ("if-none-match", "*"),
    ];

    // `{Key+}`: a greedy label, so `/` stays; then the operation's query.
    let encoded_key = aws_smithy_http::label::fmt_string(key, EncodingStrategy::Greedy);
    let mut url = String::with_capacity(endpoint.base.len() + encoded_key.len() + 512);
    url.push_str(&endpoint.base);
    url.push('/');
    url.push_str(&encoded_key);
    url.push_str("?x-id=PutObject");

    // S3's operation signing options (aws-sdk-s3 `PutObject`) as aws-runtime
    // maps them, plus what its presigning interceptor sets.
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.session_token_mode = SessionTokenMode::Include;
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires_in);
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region(&endpoint.region)
        .name(&endpoint.service)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| PresignError::Sign(Box::new(e)))?;
    let params = SigningParams::V4(params);
    let request = SignableRequest::new(
        "PUT",
        url.as_str(),
        headers.iter().copied(),
        SignableBody::UnsignedPayload,
    )
    .map_err(|e| PresignError::Sign(Box::new(e)))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| PresignError::Sign(Box::new(e)))?
        .into_parts();
    // Appended as the SDK's `QueryWriter` does: each name and value
    // percent-encoded, in the signer's order.
    let (_, query) = instructions.into_parts();
    for (name, value) in query {
        url.push('&');
        url.push_str(&aws_smithy_http::query::fmt_string(name));
        url.push('=');
        url.push_str(&aws_smithy_http::query::fmt_string(&value));
    }
    Ok(PresignedUpload {
        url,
        headers: headers
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        expires_at: now + expires_in,
    })
}

/// Credentials from the configured provider, resolved once and renewed when
/// they would expire within `renew_before` of the signing time.
#[derive(Debug)]
struct CredentialsCache {
    provider: Option<SharedCredentialsProvider>,
    renew_before: Duration,
    current: RwLock<Option<Cached>>,
    /// One renewal at a time; the others wait for its result.
    renewing: tokio::sync::Mutex<()>,
}

#[derive(Clone, Debug)]
struct Cached {
    identity: Identity,
    fetched_at: SystemTime,
}

/// While credentials are within `renew_before` of expiry (but not expired),
/// the provider is asked again at most this often: it may keep handing out
/// the same credentials until shortly before they expire.
const RENEW_RETRY: Duration = Duration::from_secs(10);

impl Cached {
    fn usable(&self, now: SystemTime, renew_before: Duration) -> bool {
        match self.identity.expiration() {
            None => true,
            Some(exp) => {
                exp > now + renew_before || (exp > now && now < self.fetched_at + RENEW_RETRY)
            }
        }
    }

    fn expired(&self, now: SystemTime) -> bool {
        self.identity.expiration().is_some_and(|exp| exp <= now)
    }
}

impl CredentialsCache {
    fn new(provider: Option<SharedCredentialsProvider>, renew_before: Duration) -> Self {
        CredentialsCache {
            provider,
            renew_before,
            current: RwLock::new(None),
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> Option<Cached> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn store(&self, c: Cached) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(c);
    }

    async fn identity(&self, now: SystemTime) -> Result<Identity, PresignError> {
        if let Some(c) = self.cached()
            && c.usable(now, self.renew_before)
        {
            return Ok(c.identity);
        }
        let _one = self.renewing.lock().await;
        let stale = self.cached();
        if let Some(c) = &stale
            && c.usable(now, self.renew_before)
        {
            return Ok(c.identity.clone());
        }
        let provider = self.provider.as_ref().ok_or_else(|| {
            PresignError::Sign("no AWS credentials provider is configured".into())
        })?;
        match provider.provide_credentials().await {
            Ok(creds) => {
                let c = Cached {
                    identity: creds.into(),
                    fetched_at: now,
                };
                self.store(c.clone());
                Ok(c.identity)
            }
            Err(e) => match stale {
                Some(c) if !c.expired(now) => {
                    tracing::warn!(error = %e, "could not renew AWS credentials; signing with the current ones");
                    let identity = c.identity.clone();
                    self.store(Cached {
                        fetched_at: now,
                        ..c
                    });
                    Ok(identity)
                }
                _ => Err(PresignError::Sign(Box::new(e))),
            },
        }
    }
}

#[cfg(test)]
#[cfg(feature = "local")]
mod tests {
    use super::*;
    use aws_sdk_s3::config::Region;

    #[tokio::test]
    async fn signs_length_type_and_if_none_match() {
        let creds = LocalCredentials {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        };
        let p = Presigner::for_local(
            "http://127.0.0.1:9000",
            &creds,
            "uploads".into(),
            Duration::from_secs(300),
        );
        let key = ObjectKey::for_upload(
            "uploads/",
            &uploadgate_core::UserId::parse("alice").unwrap(),
            "u1",
            "a b.pdf",
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let up = p
            .presign_put(&key, "application/pdf", 12345, now)
            .await
            .unwrap();
        assert!(
            up.url
                .starts_with("http://127.0.0.1:9000/uploads/uploads/alice/u1/a_b.pdf?"),
            "{}",
            up.url
        );
        assert!(up.url.contains("X-Amz-Expires=300"), "{}", up.url);
        let signed = up
            .url
            .split("X-Amz-SignedHeaders=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        assert_eq!(
            signed,
            "content-length%3Bcontent-type%3Bhost%3Bif-none-match"
        );
        let mut h = up.headers.clone();
        h.sort();
        assert_eq!(
            h,
            vec![
                ("content-length".into(), "12345".into()),
                ("content-type".into(), "application/pdf".into()),
                ("if-none-match".into(), "*".into()),
            ]
        );
        assert_eq!(up.expires_at, now + Duration::from_secs(300));
        // Same inputs, same time: the same URL (signing is deterministic).
        assert_eq!(
            p.presign_put(&key, "application/pdf", 12345, now)
                .await
                .unwrap()
                .url,
            up.url
        );
        assert!(matches!(
            p.shared.route.get(),
            Some(Route::Direct(Endpoint { base, .. })) if base == "http://127.0.0.1:9000/uploads"
        ));
    }

    mod oracle {
        //! The direct signer against aws-sdk-s3's `presigned()`: the same
        //! inputs, credentials and time must give the identical URL and
        //! headers, for every addressing style the SDK picks.

        use super::*;
        use aws_config::SdkConfig;
        use uploadgate_core::UserId;

        const AKID: &str = "AKIDEXAMPLE";
        const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        /// Session tokens are base64: `+`, `/` and `=` must be encoded.
        const TOKEN: &str = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+abc/def==";

        fn sdk_config(region: &str, endpoint: Option<&str>, token: Option<&str>) -> SdkConfig {
            let mut b = SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(Region::new(region.to_owned()))
                .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                    AKID,
                    SECRET,
                    token.map(str::to_owned),
                    None,
                    "test",
                )));
            if let Some(e) = endpoint {
                b = b.endpoint_url(e);
            }
            b.build()
        }

        /// (what it is, presigner, expected URL base)
        fn presigners() -> Vec<(&'static str, Presigner, &'static str)> {
            let ttl = Duration::from_secs(900);
            let local = LocalCredentials {
                access_key: AKID.into(),
                secret_key: SECRET.into(),
            };
            let sdk = |region, endpoint, token, bucket: &str| {
                Presigner::from_sdk_config(
                    &sdk_config(region, endpoint, token),
                    bucket.to_owned(),
                    ttl,
                )
            };
            vec![
                (
                    "local, path style",
                    Presigner::for_local("http://127.0.0.1:9000", &local, "uploads".into(), ttl),
                    "http://127.0.0.1:9000/uploads/",
                ),
                (
                    "custom IP endpoint, session token",
                    sdk(
                        "us-east-1",
                        Some("http://127.0.0.1:4566"),
                        Some(TOKEN),
                        "uploads",
                    ),
                    "http://127.0.0.1:4566/uploads/",
                ),
                (
                    "custom host endpoint (virtual host)",
                    sdk("us-east-1", Some("http://localhost:4566"), None, "uploads"),
                    "http://uploads.localhost:4566/",
                ),
                (
                    "real S3, eu-west-1",
                    sdk("eu-west-1", None, None, "acme-uploads"),
                    "https://acme-uploads.s3.eu-west-1.amazonaws.com/",
                ),
                (
                    "real S3, eu-west-1, session token",
                    sdk("eu-west-1", None, Some(TOKEN), "acme-uploads"),
                    "https://acme-uploads.s3.eu-west-1.amazonaws.com/",
                ),
                (
                    "real S3, us-east-1, session token",
                    sdk("us-east-1", None, Some(TOKEN), "acme-uploads"),
                    "https://acme-uploads.s3.us-east-1.amazonaws.com/",
                ),
                (
                    "real S3, bucket with dots (path style)",
                    sdk("eu-west-1", None, None, "uploads.acme.example"),
                    "https://s3.eu-west-1.amazonaws.com/uploads.acme.example/",
                ),
            ]
        }

        fn keys() -> Vec<ObjectKey> {
            let alice = UserId::parse("alice").unwrap();
            // The prefix and the unique part reach the key verbatim.
            [
                (
                    "uploads/",
                    "0b7e2a43-6f0c-4d7e-9a55-2b1f3f0c9d11",
                    "report.pdf",
                ),
                ("with space/", "u 1", "a b.pdf"),
                (
                    "unicode/\u{e9}t\u{e9}/",
                    "\u{1f600}\u{4e2d}",
                    "r\u{e9}sum\u{e9}.pdf",
                ),
                ("plus+sign/", "1+1=2", "x+y.txt"),
                ("percent%/", "100%25done%2F", "p%.txt"),
                ("tilde~/", "~home", "~x.txt"),
                ("", "semi;colon&amp=eq?q#h", "file"),
                ("double//slash/", "dot.", "..x"),
            ]
            .into_iter()
            .map(|(p, u, f)| ObjectKey::for_upload(p, &alice, u, f))
            .collect()
        }

        const CONTENT_TYPES: &[&str] = &[
            "application/pdf",
            "text/plain; charset=utf-8",
            "multipart/form-data; boundary=\"a b\"",
            "image/svg+xml",
            "Text/Plain;  Charset=UTF-8 ",
        ];

        #[tokio::test]
        async fn direct_urls_and_headers_are_identical_to_the_sdk() {
            let times = [
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_123_456),
                SystemTime::now(),
            ];
            let mut compared = 0;
            for (what, p, base) in presigners() {
                for key in keys() {
                    for (i, ct) in CONTENT_TYPES.iter().enumerate() {
                        let size = [1, 12_345, 5 << 30, u64::MAX, 7][i];
                        let now = times[compared % times.len()];
                        let direct = p.presign_put(&key, ct, size, now).await.unwrap();
                        let sdk = p.presign_put_via_sdk(&key, ct, size, now).await.unwrap();
                        assert_eq!(direct, sdk, "{what}: key {key:?}, type {ct:?}");
                        assert!(direct.url.starts_with(base), "{what}: {}", direct.url);
                        compared += 1;
                    }
                }
                // Equal only counts if the direct signer signed.
                assert!(
                    matches!(p.shared.route.get(), Some(Route::Direct(_))),
                    "{what}: fell back to the SDK"
                );
                let url = p
                    .presign_put(&keys()[0], "application/pdf", 1, times[0])
                    .await
                    .unwrap()
                    .url;
                assert_eq!(
                    url.contains(&format!(
                        "X-Amz-Security-Token={}",
                        aws_smithy_http::query::fmt_string(TOKEN)
                    )),
                    what.contains("session token"),
                    "{what}: {url}"
                );
            }
            assert_eq!(compared, 7 * 8 * 5);
        }

        #[tokio::test]
        async fn both_refuse_what_the_sdk_refuses() {
            let key = &keys()[0];
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
            let (_, p, _) = presigners().remove(0);
            for ct in ["text/plain\r\nx-evil: 1", "a\u{7f}b"] {
                assert!(matches!(
                    p.presign_put(key, ct, 1, now).await,
                    Err(PresignError::Sign(_))
                ));
                assert!(matches!(
                    p.presign_put_via_sdk(key, ct, 1, now).await,
                    Err(PresignError::Sign(_))
                ));
            }
            let local = LocalCredentials {
                access_key: AKID.into(),
                secret_key: SECRET.into(),
            };
            let too_long = Duration::from_secs(7 * 86_400 + 1);
            let p = Presigner::for_local("http://127.0.0.1:9000", &local, "b".into(), too_long);
            assert!(matches!(
                p.presign_put(key, "application/pdf", 1, now).await,
                Err(PresignError::Config(_))
            ));
            assert!(matches!(
                p.presign_put_via_sdk(key, "application/pdf", 1, now).await,
                Err(PresignError::Config(_))
            ));
        }
    }

    #[test]
    fn the_probe_url_gives_base_region_and_name() {
        let e = endpoint_from_probe(
            "https://b.s3.eu-west-1.amazonaws.com/uploadgate-endpoint-probe?x-id=PutObject\
             &X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20270115%2Feu-west-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20270115T080000Z",
        )
        .unwrap();
        assert_eq!(
            (e.base.as_str(), e.region.as_str(), e.service.as_str()),
            ("https://b.s3.eu-west-1.amazonaws.com", "eu-west-1", "s3")
        );
        // Another algorithm (SigV4a, S3 Express) or shape: not ours to sign.
        assert!(
            endpoint_from_probe(
                "https://b/uploadgate-endpoint-probe?x-id=PutObject&X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256\
                 &X-Amz-Credential=AKID%2F20270115%2Fs3%2Faws4_request"
            )
            .is_none()
        );
        assert!(endpoint_from_probe("https://b/other?x-id=PutObject").is_none());
        assert!(
            endpoint_from_probe(
                "https://b/uploadgate-endpoint-probe?X-Amz-Credential=A%2F1%2Fr%2Fs3%2Faws4_request"
            )
            .is_none()
        );
    }

    /// Hands out numbered credentials with the expiry currently set.
    #[derive(Debug)]
    struct Numbered {
        calls: std::sync::atomic::AtomicU32,
        expiry: std::sync::Mutex<Option<SystemTime>>,
        fail: std::sync::atomic::AtomicBool,
    }

    #[derive(Debug)]
    struct Shared(Arc<Numbered>);

    impl ProvideCredentials for Shared {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            use std::sync::atomic::Ordering;
            let this = &self.0;
            let n = this.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if this.fail.load(Ordering::SeqCst) {
                return aws_credential_types::provider::future::ProvideCredentials::ready(Err(
                    aws_credential_types::provider::error::CredentialsError::not_loaded("down"),
                ));
            }
            let expiry = *this.expiry.lock().unwrap();
            aws_credential_types::provider::future::ProvideCredentials::ready(Ok(Credentials::new(
                format!("AKID{n}"),
                "secret",
                Some(format!("token{n}")),
                expiry,
                "t",
            )))
        }
    }

    fn akid(i: &Identity) -> String {
        i.data::<Credentials>().unwrap().access_key_id().to_owned()
    }

    #[tokio::test]
    async fn credentials_are_cached_and_renewed_before_a_url_could_outlive_them() {
        use std::sync::atomic::Ordering;
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ttl = Duration::from_secs(300);
        let provider = Arc::new(Numbered {
            calls: 0.into(),
            expiry: Some(t0 + Duration::from_secs(3600)).into(),
            fail: false.into(),
        });
        let cache = CredentialsCache::new(
            Some(SharedCredentialsProvider::new(Shared(Arc::clone(
                &provider,
            )))),
            ttl,
        );
        // Resolved once, then served from the cache.
        assert_eq!(akid(&cache.identity(t0).await.unwrap()), "AKID1");
        let before_renewal = t0 + Duration::from_secs(3600 - 301);
        assert_eq!(
            akid(&cache.identity(before_renewal).await.unwrap()),
            "AKID1"
        );
        assert_eq!(provider.calls.load(Ordering::SeqCst), 1);

        // A URL signed now would outlive the credentials: renew.
        *provider.expiry.lock().unwrap() = Some(t0 + Duration::from_secs(7200));
        let renewal = t0 + Duration::from_secs(3600 - 299);
        assert_eq!(akid(&cache.identity(renewal).await.unwrap()), "AKID2");
        assert_eq!(provider.calls.load(Ordering::SeqCst), 2);

        // The provider still hands out credentials close to expiry: ask
        // again at most every RENEW_RETRY, not on every call.
        let near = t0 + Duration::from_secs(7200 - 100);
        *provider.expiry.lock().unwrap() = Some(t0 + Duration::from_secs(7200));
        assert_eq!(akid(&cache.identity(near).await.unwrap()), "AKID3");
        assert_eq!(
            akid(&cache.identity(near + Duration::from_secs(5)).await.unwrap()),
            "AKID3"
        );
        assert_eq!(provider.calls.load(Ordering::SeqCst), 3);
        assert_eq!(
            akid(
                &cache
                    .identity(near + Duration::from_secs(11))
                    .await
                    .unwrap()
            ),
            "AKID4"
        );

        // The provider fails: keep the current credentials while they last,
        // fail once they have expired.
        provider.fail.store(true, Ordering::SeqCst);
        let later = near + Duration::from_secs(30);
        assert_eq!(akid(&cache.identity(later).await.unwrap()), "AKID4");
        let expired = t0 + Duration::from_secs(7200);
        assert!(matches!(
            cache.identity(expired).await,
            Err(PresignError::Sign(_))
        ));
    }

    #[tokio::test]
    async fn credentials_without_expiry_are_resolved_once() {
        let provider = Arc::new(Numbered {
            calls: 0.into(),
            expiry: None.into(),
            fail: false.into(),
        });
        let cache = CredentialsCache::new(
            Some(SharedCredentialsProvider::new(Shared(Arc::clone(
                &provider,
            )))),
            Duration::from_secs(300),
        );
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for i in 0..5 {
            let at = t0 + Duration::from_secs(i * 86_400);
            assert_eq!(akid(&cache.identity(at).await.unwrap()), "AKID1");
        }
        assert_eq!(provider.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
