//! What a request asks the limiter: its quota tier (from the token's tier
//! claim), its idempotency key (the `Idempotency-Key` header) and, in
//! upload mode, the reservation of what its URL binds, turned into a core
//! [`Charge`].
//!
//! The idempotency record lives in the quota state of the key the request
//! charges (the user's; in anonymous mode the client address's), written in
//! the same compare-and-swap as the charge, so a request without the header
//! costs nothing more, and one with it costs no extra round trip.

use std::collections::HashSet;
use std::sync::Mutex;

use http::HeaderName;
use http::request::Parts;
use uploadgate_core::{Charge, Grant, GrantRequest, ReservationRequest, Subject, Timestamp};

use crate::AppState;
use crate::error::ApiError;
use crate::identity::Caller;
use crate::routes::UploadSpec;

/// The header that makes a request idempotent.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// How many distinct unknown tier values are logged (once each).
const LOGGED_FALLBACKS: usize = 1024;

/// Remembers which unknown tier values were logged, so each is logged once.
#[derive(Debug, Default)]
pub(crate) struct Fallbacks(Mutex<HashSet<String>>);

impl Fallbacks {
    fn first_time(&self, value: &str) -> bool {
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.len() < LOGGED_FALLBACKS && seen.insert(value.to_owned())
    }
}

/// The caller's tier: the first value of the token's tier claim that names
/// a tier. No value, or none that names one, is the default policy (logged
/// once per value, so a misnamed tier shows up without flooding the log).
pub(crate) fn tier(st: &AppState, caller: &Caller) -> Option<String> {
    if st.inner.gate.tiers.is_empty() {
        return None;
    }
    if let Some(t) = caller.tiers.iter().find(|t| st.inner.meter.has_tier(t)) {
        return Some(t.clone());
    }
    let key = if caller.tiers.is_empty() {
        "(no claim)".to_owned()
    } else {
        caller.tiers.join(",")
    };
    if st.inner.fallbacks.first_time(&key) {
        tracing::info!(claim = %key, "no quota tier named by the token; using UPLOADGATE_LIMITS");
    }
    None
}

/// The request's `Idempotency-Key`, if it sent one: 1-64 visible ASCII
/// characters, sent once.
pub(crate) fn idempotency_key(parts: &Parts) -> Result<Option<String>, ApiError> {
    let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(
            "the `Idempotency-Key` header is repeated".into(),
        ));
    }
    let key = v.as_bytes();
    if key.is_empty() || key.len() > Grant::MAX_KEY_LEN || !key.iter().all(u8::is_ascii_graphic) {
        return Err(ApiError::BadRequest(format!(
            "`Idempotency-Key` must be 1-{} visible ASCII characters",
            Grant::MAX_KEY_LEN
        )));
    }
    Ok(Some(String::from_utf8_lossy(key).into_owned()))
}

/// What the route asks of the limiter for an upload (`spec`; a check
/// without one charges count limits only, size 0) at `now`: the tier, the
/// grant to record under the idempotency key (its fingerprint is the route
/// and the upload's description, so a retry must describe the same upload;
/// `unique` is the object key this request would get), and in upload mode
/// the reservation of what the URL binds, which expires with the URL.
pub(crate) fn charge(
    st: &AppState,
    parts: &Parts,
    caller: &Caller,
    route: &str,
    spec: Option<&UploadSpec>,
    unique: [u8; 16],
    now: Timestamp,
) -> Result<Charge, ApiError> {
    let ttl = st.inner.presigner.ttl();
    // The URL is signed at `now` for `ttl`: it expires then at the latest
    // (SigV4 counts from the whole second).
    let expires_at = Timestamp(
        now.as_millis()
            .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
    );
    let size = spec.map_or(0, |s| s.size);
    let grant = match idempotency_key(parts)? {
        None => None,
        Some(key) => {
            let upload: Vec<&str> = match spec {
                Some(s) => vec![
                    &s.filename,
                    &s.content_type,
                    s.checksum.as_ref().map_or("", |c| c.as_str()),
                ],
                None => Vec::new(),
            };
            Some(GrantRequest {
                key,
                fingerprint: fingerprint(route, &upload, size),
                unique,
                expires_at,
                holder: if caller.user.is_some() {
                    Subject::User
                } else {
                    Subject::Ip
                },
            })
        }
    };
    let reservation = match (st.inner.gate.settlement, spec) {
        (Some(_), Some(s)) => Some(ReservationRequest {
            unique,
            expires_at,
            content_type: s.content_type.clone(),
            checksum: s.checksum.as_ref().map(|c| *c.digest()),
        }),
        _ => None,
    };
    Ok(Charge {
        size,
        tier: tier(st, caller),
        grant,
        reservation,
    })
}

/// The first 16 bytes of the SHA-256 of the route and the upload's fields.
fn fingerprint(route: &str, upload: &[&str], size: u64) -> [u8; 16] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in std::iter::once(route).chain(upload.iter().copied()) {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    ctx.update(&size.to_be_bytes());
    let digest = ctx.finish();
    let mut out = [0; 16];
    out.copy_from_slice(&digest.as_ref()[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_uploads_apart() {
        let f = fingerprint("uploads", &["a.pdf", "application/pdf"], 10);
        assert_eq!(f, fingerprint("uploads", &["a.pdf", "application/pdf"], 10));
        assert_ne!(f, fingerprint("uploads", &["a.pdf", "application/pdf"], 11));
        assert_ne!(f, fingerprint("uploads", &["b.pdf", "application/pdf"], 10));
        assert_ne!(
            f,
            fingerprint("upload-check", &["a.pdf", "application/pdf"], 10)
        );
        // Lengths are hashed, so fields cannot run into each other.
        assert_ne!(
            fingerprint("uploads", &["ab", "c"], 1),
            fingerprint("uploads", &["a", "bc"], 1)
        );
    }

    #[test]
    fn idempotency_keys_are_short_visible_and_single() {
        let parts = |values: &[&str]| {
            let mut b = http::Request::post("/v1/uploads");
            for v in values {
                b = b.header("idempotency-key", *v);
            }
            b.body(()).unwrap().into_parts().0
        };
        assert_eq!(idempotency_key(&parts(&[])).unwrap(), None);
        assert_eq!(
            idempotency_key(&parts(&["7f3a-retry"])).unwrap(),
            Some("7f3a-retry".into())
        );
        for bad in [vec!["a b"], vec![""], vec!["a", "b"]] {
            assert!(idempotency_key(&parts(&bad)).is_err(), "{bad:?}");
        }
        let long = "x".repeat(65);
        assert!(idempotency_key(&parts(&[&long])).is_err());
    }
}
