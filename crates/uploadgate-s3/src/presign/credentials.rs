//! Credentials for signing: aws-smithy-runtime's lazy identity cache (the
//! one every SDK client uses), set so that a URL never outlives the
//! credentials that signed it.
//!
//! A presigned URL dies when its credentials expire, so credentials must be
//! renewed while they still have more than one URL lifetime left. The SDK's
//! `IdentityCache::lazy().buffer_time(b)` renews them once they are within
//! `b` of expiry, with one detail that decides the setting: it adds a random
//! jitter of up to half the buffer to the expiry it stores
//! (aws-smithy-runtime 1.16, `cache/lazy.rs`: `expiration + buffer_time *
//! [0, 0.5)`; the fraction is only settable in its own tests). So the
//! buffer actually applied is between `b/2` and `b`, and this module sets
//! `b = 2 × URL lifetime`: cached credentials are handed out only while
//! `now + lifetime < expiry`. No hand-written cache is needed.
//!
//! How it is wired, and why:
//!
//! * **One cache for both paths.** The same cache is the S3 client's
//!   identity cache, and the cache is partitioned by credentials provider:
//!   the direct signer and the SDK's `presigned()` share one entry.
//! * **The signing time is the cache's clock.** The cache reads its time
//!   source once per lookup. Each lookup gets a `StaticTimeSource` at the
//!   URL's start time, as the SDK's presigner does
//!   (`SigV4PresigningRuntimePlugin`), so "expires before the URL" is judged
//!   in the URL's own time, even under a fake clock.
//! * **Runtime components.** `ResolveCachedIdentity` takes the orchestrator's
//!   `RuntimeComponents`; the lazy cache only reads the time source and the
//!   sleep implementation (for its load timeout) from them, but building them
//!   requires an auth scheme, endpoint resolver and retry strategy, so those
//!   get inert stand-ins.
//! * **The last word is a check, not a cache.** [`url_lifetime`] cuts a
//!   URL's lifetime to what is left of its credentials. It only matters when
//!   a provider hands out credentials that already expire within one
//!   lifetime (the cache then asks the provider again on every call, as the
//!   SDK does in its last buffer seconds; the hand-written cache asked at
//!   most every 10 s). Such URLs live shorter, never longer. The SDK
//!   fallback route shares the cache's renewal but not this cut.
//! * **A failed renewal fails the URL.** When the provider fails inside the
//!   buffer, the cache returns the error rather than the old credentials
//!   (the hand-written cache kept signing with them, which could hand out
//!   URLs outliving them).
//! * Credentials without an expiry (static keys, Lambda's environment) are
//!   re-read from the provider every `default_expiration - b`, at least
//!   15 minutes.
//! * **Cost.** A lookup builds the per-call components and, inside the
//!   cache, a Tokio sleep for its load timeout (so, like any SDK call, it
//!   needs a runtime with timers): roughly 1 to 2 µs, against about 50 µs
//!   for the SDK's `presigned()`. So the last answer is reused for up to
//!   [`REUSE`] of signing time, and only while it still outlives a URL
//!   signed now, the cache's own rule; within that second a renewal the
//!   cache would have started waits for the next lookup.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_s3::config::{ConfigBag, IdentityCache};
use aws_smithy_async::rt::sleep::{SharedAsyncSleep, TokioSleep};
use aws_smithy_async::time::StaticTimeSource;
use aws_smithy_runtime::client::auth::no_auth::{NO_AUTH_SCHEME_ID, NoAuthScheme};
use aws_smithy_runtime::client::orchestrator::endpoints::StaticUriEndpointResolver;
use aws_smithy_runtime::client::retries::strategy::NeverRetryStrategy;
use aws_smithy_runtime_api::client::auth::static_resolver::StaticAuthSchemeOptionResolver;
use aws_smithy_runtime_api::client::identity::{
    Identity, ResolveCachedIdentity, SharedIdentityCache, SharedIdentityResolver,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;

use super::PresignError;

/// The longest lifetime S3 (and the SDK) accepts for a presigned URL.
const MAX_URL_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The SDK's floor for `default_expiration`.
const MIN_DEFAULT_EXPIRATION: Duration = Duration::from_secs(15 * 60);

/// How long, in signing time, the cache's last answer is reused without
/// asking it again.
const REUSE: Duration = Duration::from_secs(1);

/// The lazy identity cache and what it needs to resolve through it.
#[derive(Debug)]
pub(super) struct SigningCredentials {
    cache: SharedIdentityCache,
    /// `None` when no credentials provider is configured.
    resolver: Option<SharedIdentityResolver>,
    /// Everything but the time source, which is set per lookup.
    components: RuntimeComponentsBuilder,
    /// The URL lifetime the cache is set for.
    url_lifetime: Duration,
    /// The cache's last answer, and the signing time it was asked at.
    last: Mutex<Option<(Identity, SystemTime)>>,
}

impl SigningCredentials {
    /// Credentials from `provider`, renewed while they still outlive a URL
    /// of `url_lifetime`.
    pub(super) fn new(
        provider: Option<SharedCredentialsProvider>,
        url_lifetime: Duration,
        sleep: Option<SharedAsyncSleep>,
    ) -> Self {
        let buffer = url_lifetime.min(MAX_URL_LIFETIME) * 2;
        let cache = IdentityCache::lazy()
            .buffer_time(buffer)
            .default_expiration(buffer + MIN_DEFAULT_EXPIRATION)
            .build();
        let sleep = sleep.unwrap_or_else(|| SharedAsyncSleep::new(TokioSleep::new()));
        let components = RuntimeComponentsBuilder::new("uploadgate presigner credentials")
            .with_identity_cache(Some(cache.clone()))
            .with_sleep_impl(Some(sleep))
            // Required by `build()`, never used by the cache.
            .with_auth_scheme_option_resolver(Some(StaticAuthSchemeOptionResolver::new(vec![
                NO_AUTH_SCHEME_ID,
            ])))
            .with_auth_scheme(NoAuthScheme::new())
            .with_endpoint_resolver(Some(StaticUriEndpointResolver::uri("http://unused")))
            .with_retry_strategy(Some(NeverRetryStrategy::new()));
        let (resolver, components) = match provider {
            Some(p) => {
                let resolver = SharedIdentityResolver::new(p);
                let components =
                    components.with_identity_resolver(NO_AUTH_SCHEME_ID, resolver.clone());
                (Some(resolver), components)
            }
            None => (None, components),
        };
        SigningCredentials {
            cache,
            resolver,
            components,
            url_lifetime: url_lifetime.min(MAX_URL_LIFETIME),
            last: Mutex::new(None),
        }
    }

    /// These credentials through the same cache (the reused answer is
    /// copied, not shared).
    pub(super) fn share(&self) -> Self {
        SigningCredentials {
            cache: self.cache.clone(),
            resolver: self.resolver.clone(),
            components: self.components.clone(),
            url_lifetime: self.url_lifetime,
            last: Mutex::new(self.lock().clone()),
        }
    }

    /// The cache, for the S3 client's config.
    pub(super) fn cache(&self) -> SharedIdentityCache {
        self.cache.clone()
    }

    /// Credentials for a URL starting at `now`: cached ones while they
    /// outlive a URL, otherwise fresh ones from the provider.
    pub(super) async fn identity(&self, now: SystemTime) -> Result<Identity, PresignError> {
        if let Some(identity) = self.reusable(now) {
            return Ok(identity);
        }
        let identity = self.resolve(now).await?;
        *self.lock() = Some((identity.clone(), now));
        Ok(identity)
    }

    /// The cache's last answer, if it was given less than [`REUSE`] ago (in
    /// signing time, never ahead of `now`) and still outlives a URL signed
    /// at `now`.
    fn reusable(&self, now: SystemTime) -> Option<Identity> {
        let last = self.lock();
        let (identity, asked) = last.as_ref()?;
        let age = now.duration_since(*asked).ok()?;
        let outlives = identity
            .expiration()
            .is_none_or(|expiry| now + self.url_lifetime < expiry);
        (age < REUSE && outlives).then(|| identity.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Identity, SystemTime)>> {
        // Replaced whole under the lock: a poisoned value is still valid.
        self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the cache for credentials for a URL starting at `now`.
    async fn resolve(&self, now: SystemTime) -> Result<Identity, PresignError> {
        let resolver = self.resolver.clone().ok_or_else(|| {
            PresignError::Credentials("no AWS credentials provider is configured".into())
        })?;
        let components = self
            .components
            .clone()
            .with_time_source(Some(StaticTimeSource::new(now)))
            .build()
            .map_err(|e| PresignError::Credentials(Box::new(e)))?;
        let config = ConfigBag::base();
        self.cache
            .resolve_cached_identity(resolver, &components, &config)
            .await
            .map_err(PresignError::Credentials)
    }
}

/// How long a URL signed at `now` with `identity` may live: `lifetime`, cut
/// to the whole seconds left before the credentials expire (`X-Amz-Expires`
/// counts whole seconds). Credentials with less than a second left sign
/// nothing.
pub(super) fn url_lifetime(
    identity: &Identity,
    now: SystemTime,
    lifetime: Duration,
) -> Result<Duration, PresignError> {
    let Some(expiry) = identity.expiration() else {
        return Ok(lifetime);
    };
    let left = expiry.duration_since(now).unwrap_or_default();
    let left = Duration::from_secs(left.as_secs());
    if left.is_zero() {
        return Err(PresignError::Credentials(
            "the AWS credentials have expired".into(),
        ));
    }
    Ok(lifetime.min(left))
}
