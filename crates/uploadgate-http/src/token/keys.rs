//! The issuer's public keys: a fixed PEM key, or a JWKS fetched over HTTPS
//! and cached.
//!
//! A token whose `kid` is not in the cache triggers one refresh, and refreshes
//! happen at most once per [`MIN_REFRESH`], whatever the traffic: a flood of
//! tokens with made-up `kid`s costs the issuer one request per 30 s. A failed
//! refresh keeps the keys already known, so an issuer outage only affects
//! keys the gate has never seen (those tokens get 401, never a 5xx). Only
//! RS256, ES256 (P-256) and EdDSA (Ed25519) keys are taken; symmetric keys in
//! a JWKS are ignored, so an HS256 token can never verify.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use uploadgate_core::{Clock, Timestamp};

/// The least time between two JWKS fetches.
pub const MIN_REFRESH: Duration = Duration::from_secs(30);
/// How old a fetched key set may get before the next request refreshes it
/// in the background (so removed keys stop working).
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// Connect and total time limits of one JWKS fetch.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest JWKS document read.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// A verification key and the one algorithm it verifies.
#[derive(Clone)]
pub struct PublicKey {
    /// The key.
    pub key: DecodingKey,
    /// Its algorithm.
    pub algorithm: Algorithm,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Reads a PEM public key: RSA (RS256), EC P-256 (ES256) or Ed25519
    /// (EdDSA).
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(pem).map_err(|_| "the key file is not PEM text")?;
        if text.contains("PRIVATE KEY") {
            return Err("the key file holds a private key; give the public key".into());
        }
        let attempts = [
            (DecodingKey::from_rsa_pem(pem), Algorithm::RS256),
            (DecodingKey::from_ec_pem(pem), Algorithm::ES256),
            (DecodingKey::from_ed_pem(pem), Algorithm::EdDSA),
        ];
        attempts
            .into_iter()
            .find_map(|(key, algorithm)| key.ok().map(|key| PublicKey { key, algorithm }))
            .ok_or_else(|| "not a PEM RSA, EC P-256 or Ed25519 public key".into())
    }

    /// The key of a JWK, if it is a signature key of a supported algorithm.
    fn from_jwk(jwk: &Jwk) -> Option<Self> {
        let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256))
                if p.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            (AlgorithmParameters::OctetKeyPair(p), None | Some(KeyAlgorithm::EdDSA))
                if p.curve == EllipticCurve::Ed25519 =>
            {
                Algorithm::EdDSA
            }
            _ => return None,
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some(PublicKey { key, algorithm })
    }
}

/// Where the keys come from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// One fixed key (`UPLOADGATE_JWT_PUBLIC_KEY`).
    Static(PublicKey),
    /// A JWKS document at this URL (`UPLOADGATE_JWKS_URL`).
    Jwks(String),
}

/// Why a key was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// No key has this id (after a refresh, or within the refresh bound).
    UnknownKid,
    /// The token names no `kid` and the issuer has more than one key.
    NoKid,
}

#[derive(Default)]
struct Cached {
    keys: HashMap<String, PublicKey>,
    /// When the keys were last fetched successfully.
    fetched: Option<Timestamp>,
    /// When a fetch was last started, successful or not.
    attempted: Option<Timestamp>,
}

/// The keys, with refreshes bounded in rate.
pub struct KeyCache {
    source: KeySource,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    cached: RwLock<Cached>,
    /// One fetch at a time; the others wait for its result.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    /// A cache over `source`, timing refreshes with `clock`.
    pub fn new(source: KeySource, clock: Arc<dyn Clock>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            .build()
            // Only TLS back-end initialisation can fail here; a client
            // without settings is the same client with default timeouts
            // bounded by the per-request timeout below.
            .unwrap_or_default();
        KeyCache {
            source,
            clock,
            http,
            cached: RwLock::new(Cached::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cached> {
        self.cached
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fetches the JWKS now (start-up), so the first request does not wait.
    pub async fn warm_up(&self) {
        if let KeySource::Jwks(_) = self.source {
            let _ = self.refresh(true).await;
        }
    }

    /// The key for a token's `kid`.
    pub async fn get(self: &Arc<Self>, kid: Option<&str>) -> Result<PublicKey, Missing> {
        if let KeySource::Static(key) = &self.source {
            return Ok(key.clone());
        }
        if let Some(found) = self.lookup(kid)? {
            self.refresh_if_old();
            return Ok(found);
        }
        if self.refresh(false).await
            && let Some(found) = self.lookup(kid)?
        {
            return Ok(found);
        }
        Err(Missing::UnknownKid)
    }

    fn lookup(&self, kid: Option<&str>) -> Result<Option<PublicKey>, Missing> {
        let cached = self.read();
        match kid {
            Some(kid) => Ok(cached.keys.get(kid).cloned()),
            None => match cached.keys.len() {
                0 => Ok(None),
                1 => Ok(cached.keys.values().next().cloned()),
                _ => Err(Missing::NoKid),
            },
        }
    }

    fn due(&self, since: Option<Timestamp>, interval: Duration) -> bool {
        let now = self.clock.now().as_millis();
        since.is_none_or(|t| now.saturating_sub(t.as_millis()) >= interval.as_millis() as u64)
    }

    /// Refreshes the keys in the background when the set is older than
    /// [`MAX_AGE`] (within the refresh rate bound), so keys the issuer has
    /// removed stop working; the request goes on with the current keys.
    fn refresh_if_old(self: &Arc<Self>) {
        let old = {
            let c = self.read();
            self.due(c.fetched, MAX_AGE) && self.due(c.attempted, MIN_REFRESH)
        };
        if old && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let this = Arc::clone(self);
            runtime.spawn(async move {
                this.refresh(false).await;
            });
        }
    }

    /// Fetches the JWKS unless one was fetched within [`MIN_REFRESH`]
    /// (`force` skips that bound, for start-up). Returns whether the keys
    /// were replaced.
    async fn refresh(&self, force: bool) -> bool {
        let KeySource::Jwks(url) = &self.source else {
            return false;
        };
        let before = self.read().attempted;
        let _one = self.fetching.lock().await;
        {
            let c = self.read();
            // Another caller fetched while this one waited.
            if c.attempted != before {
                return c.fetched == c.attempted;
            }
            if !force && !self.due(c.attempted, MIN_REFRESH) {
                return false;
            }
        }
        let started = self.clock.now();
        self.cached
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .attempted = Some(started);
        match fetch(&self.http, url).await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), url = %url, "fetched the issuer's keys");
                let mut c = self
                    .cached
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                c.keys = keys;
                c.fetched = Some(started);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, url = %url, "cannot fetch the issuer's keys; keeping the known ones");
                false
            }
        }
    }
}

/// Downloads and parses a JWKS: the supported signature keys by `kid`.
async fn fetch(http: &reqwest::Client, url: &str) -> Result<HashMap<String, PublicKey>, String> {
    let mut res = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if !res.status().is_success() {
        return Err(format!("answered {}", res.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| format!("read failed: {e}"))? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("the key set is larger than {MAX_JWKS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    let set: JwkSet =
        serde_json::from_slice(&body).map_err(|e| format!("not a JWKS document: {e}"))?;
    Ok(set
        .keys
        .iter()
        .filter_map(|jwk| {
            Some((
                jwk.common.key_id.clone().unwrap_or_default(),
                PublicKey::from_jwk(jwk)?,
            ))
        })
        .collect())
}
