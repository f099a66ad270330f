//! A URL never outlives the credentials that signed it, with the SDK's
//! identity cache doing the caching: an expiring provider, URLs signed at
//! every point of several credential lifetimes, each checked against the
//! expiry of the very credentials in its `X-Amz-Credential`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_credential_types::provider::{
    ProvideCredentials, error::CredentialsError, future::ProvideCredentials as Provided,
};

use super::*;

/// Numbered credentials: `AKID{n}`, expiring `lifetime` after the provider's
/// clock, or at `fixed_expiry` when set. Records what it handed out.
#[derive(Debug, Default)]
struct Provider {
    clock: Mutex<Option<SystemTime>>,
    lifetime: Option<Duration>,
    fixed_expiry: Mutex<Option<SystemTime>>,
    fail: AtomicBool,
    issued: Mutex<HashMap<String, Option<SystemTime>>>,
}

#[derive(Debug)]
struct Handle(Arc<Provider>);

impl ProvideCredentials for Handle {
    fn provide_credentials<'a>(&'a self) -> Provided<'a>
    where
        Self: 'a,
    {
        let p = &self.0;
        if p.fail.load(Ordering::SeqCst) {
            return Provided::ready(Err(CredentialsError::not_loaded("down")));
        }
        let mut issued = p.issued.lock().unwrap();
        let akid = format!("AKID{}", issued.len() + 1);
        let now = p.clock.lock().unwrap().unwrap_or_else(t0);
        let expiry = p
            .fixed_expiry
            .lock()
            .unwrap()
            .or(p.lifetime.map(|l| now + l));
        issued.insert(akid.clone(), expiry);
        Provided::ready(Ok(Credentials::new(
            akid,
            "secret",
            Some("token".to_owned()),
            expiry,
            "test",
        )))
    }
}

const TTL: Duration = Duration::from_secs(300);

fn presigner(provider: &Arc<Provider>) -> Presigner {
    let shared = SharedCredentialsProvider::new(Handle(Arc::clone(provider)));
    Presigner::from_sdk_config(
        &sdk_config("eu-west-1", None, shared),
        "acme-uploads".into(),
        TTL,
    )
}

impl Provider {
    fn expiring(lifetime: Option<Duration>) -> Arc<Self> {
        Arc::new(Provider {
            lifetime,
            ..Default::default()
        })
    }

    fn calls(&self) -> usize {
        self.issued.lock().unwrap().len()
    }

    /// The access key a URL was signed with, and when those credentials
    /// expire.
    fn signer_of(&self, url: &str) -> (String, Option<SystemTime>) {
        let credential = param(url, "X-Amz-Credential").unwrap();
        let akid = credential.split('/').next().unwrap().to_owned();
        let expiry = self.issued.lock().unwrap()[&akid];
        (akid, expiry)
    }
}

fn whole_secs(d: Duration) -> String {
    d.as_secs().to_string()
}

#[tokio::test]
async fn a_url_never_outlives_the_credentials_that_signed_it() {
    let provider = Provider::expiring(Some(Duration::from_secs(3600)));
    let p = presigner(&provider);
    let key = key("uploads/", "u1", "a.pdf");
    let spec = PutSpec::new(&key, "application/pdf", 1);
    let mut signers = vec![];
    // Four credential lifetimes, at a step that is prime to everything.
    for step in 0..=(4 * 3600 / 7) {
        let now = t0() + Duration::from_secs(step * 7);
        *provider.clock.lock().unwrap() = Some(now);
        let up = p.presign(&spec, now).await.unwrap();
        let (akid, expiry) = provider.signer_of(&up.url);
        let expiry = expiry.unwrap();
        assert!(
            up.expires_at <= expiry,
            "{akid} expires at {expiry:?}, its URL at {:?}",
            up.expires_at
        );
        // Renewed in time, so never cut short.
        assert_eq!(up.expires_at, now + TTL);
        assert_eq!(param(&up.url, "X-Amz-Expires"), Some(whole_secs(TTL)));
        if signers.last() != Some(&akid) {
            signers.push(akid);
        }
        // The SDK's presigner shares the cache, and the guarantee.
        if step % 50 == 0 {
            let sdk = p.presign_via_sdk(&spec, now).await.unwrap();
            let (sdk_akid, sdk_expiry) = provider.signer_of(&sdk.url);
            assert_eq!(sdk_akid, signers[signers.len() - 1]);
            assert!(sdk.expires_at <= sdk_expiry.unwrap());
        }
    }
    assert!(is_direct(&p));
    // Cached: one provider call per renewal, not per URL. A renewal comes
    // between one and two URL lifetimes before expiry (the cache's jitter),
    // so 4 hours of 1-hour credentials take 5 sets.
    assert_eq!(provider.calls(), 5, "{signers:?}");
    assert_eq!(signers.len(), 5, "{signers:?}");
}

#[tokio::test]
async fn credentials_near_expiry_sign_shorter_urls_and_expired_ones_none() {
    // A provider that keeps handing out credentials about to expire.
    let provider = Provider::expiring(None);
    let expiry = t0() + Duration::from_secs(100);
    *provider.fixed_expiry.lock().unwrap() = Some(expiry);
    let p = presigner(&provider);
    let key = key("uploads/", "u1", "a.pdf");
    let spec = PutSpec::new(&key, "application/pdf", 1);

    let up = p.presign(&spec, t0()).await.unwrap();
    assert_eq!(up.expires_at, expiry);
    assert_eq!(param(&up.url, "X-Amz-Expires").as_deref(), Some("100"));
    // X-Amz-Expires counts whole seconds, so the cut is rounded down.
    let later = t0() + Duration::from_millis(60_500);
    let up = p.presign(&spec, later).await.unwrap();
    assert_eq!(param(&up.url, "X-Amz-Expires").as_deref(), Some("39"));
    assert_eq!(up.expires_at, later + Duration::from_secs(39));
    assert!(up.expires_at <= expiry);

    // Under a second left, or expired: no URL.
    for at in [
        expiry - Duration::from_millis(500),
        expiry,
        expiry + Duration::from_secs(1),
    ] {
        let err = p.presign(&spec, at).await.unwrap_err();
        assert!(matches!(err, PresignError::Credentials(_)), "{err:?}");
        assert!(err.is_transient());
    }
    // Renewed credentials sign full-length URLs again.
    *provider.fixed_expiry.lock().unwrap() = Some(t0() + Duration::from_secs(7200));
    let up = p.presign(&spec, expiry).await.unwrap();
    assert_eq!(up.expires_at, expiry + TTL);
}

#[tokio::test]
async fn a_failed_renewal_is_an_error_not_the_old_credentials() {
    let provider = Provider::expiring(Some(Duration::from_secs(3600)));
    let p = presigner(&provider);
    let key = key("uploads/", "u1", "a.pdf");
    let spec = PutSpec::new(&key, "application/pdf", 1);
    *provider.clock.lock().unwrap() = Some(t0());
    assert!(p.presign(&spec, t0()).await.is_ok());
    provider.fail.store(true, Ordering::SeqCst);
    // Far from expiry: served from the cache, the provider is not asked.
    let early = t0() + Duration::from_secs(3600 - 2 * 300 - 1);
    let up = p.presign(&spec, early).await.unwrap();
    assert_eq!(provider.signer_of(&up.url).0, "AKID1");
    // Within one URL lifetime of expiry: the cache must renew, and the
    // provider is down.
    let late = t0() + Duration::from_secs(3600 - 300);
    let err = p.presign(&spec, late).await.unwrap_err();
    assert!(matches!(err, PresignError::Credentials(_)), "{err:?}");
    assert_eq!(provider.calls(), 1);
    // Back up: fresh credentials.
    provider.fail.store(false, Ordering::SeqCst);
    *provider.clock.lock().unwrap() = Some(late);
    let up = p.presign(&spec, late).await.unwrap();
    assert_eq!(provider.signer_of(&up.url).0, "AKID2");
}

#[tokio::test]
async fn credentials_without_expiry_are_resolved_once_for_both_paths() {
    let provider = Provider::expiring(None);
    let p = presigner(&provider);
    let key = key("uploads/", "u1", "a.pdf");
    let spec = PutSpec::new(&key, "application/pdf", 1);
    for i in 0..10 {
        let at = t0() + Duration::from_secs(i * 60);
        let direct = p.presign(&spec, at).await.unwrap();
        let sdk = p.presign_via_sdk(&spec, at).await.unwrap();
        assert_eq!(direct, sdk);
        assert_eq!(direct.expires_at, at + TTL);
    }
    assert_eq!(provider.calls(), 1);
}

#[tokio::test]
async fn the_caches_answer_is_reused_within_a_second_only_while_it_outlives_a_url() {
    // Credentials that outlive a URL signed at t0 by half a second: inside
    // the cache's buffer, so the cache alone asks the provider every time.
    let provider = Provider::expiring(None);
    let expiry = t0() + TTL + Duration::from_millis(500);
    *provider.fixed_expiry.lock().unwrap() = Some(expiry);
    let p = presigner(&provider);
    let key = key("uploads/", "u1", "a.pdf");
    let spec = PutSpec::new(&key, "application/pdf", 1);
    p.presign(&spec, t0()).await.unwrap();
    let asked = provider.calls();
    // Still outlives a URL: reused, the provider is not asked.
    let soon = t0() + Duration::from_millis(200);
    let up = p.presign(&spec, soon).await.unwrap();
    assert_eq!(provider.calls(), asked);
    assert_eq!(up.expires_at, soon + TTL);
    // No longer outlives one: asked again (and the URL is cut to it).
    let later = t0() + Duration::from_millis(600);
    let up = p.presign(&spec, later).await.unwrap();
    assert_eq!(provider.calls(), asked + 1);
    assert!(up.expires_at <= expiry);
    // Signing time never runs backwards into a reused answer.
    p.presign(&spec, t0()).await.unwrap();
    assert_eq!(provider.calls(), asked + 2);
}

#[tokio::test]
async fn no_credentials_provider_is_a_credentials_error() {
    let conf = SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .build();
    let p = Presigner::from_sdk_config(&conf, "acme-uploads".into(), TTL);
    let key = key("uploads/", "u1", "a.pdf");
    let err = p
        .presign(&PutSpec::new(&key, "application/pdf", 1), t0())
        .await
        .unwrap_err();
    assert!(matches!(err, PresignError::Credentials(_)), "{err:?}");
}
