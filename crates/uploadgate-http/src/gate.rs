//! What the router needs to know about the gate: [`GateConfig`], already
//! validated. Reading and checking settings is the application layer's job
//! (`uploadgate-app`); this crate only takes the result.

use std::str::FromStr;

use http::{HeaderName, HeaderValue};
use uploadgate_core::Policy;

use crate::token::JwtConfig;

/// Where the user id comes from.
#[derive(Debug, Clone)]
pub enum IdentityMode {
    /// A verified bearer JWT.
    Jwt(Box<JwtConfig>),
    /// A header set by a trusted upstream.
    Header(HeaderName),
    /// `userId` in the JSON body (the original design; unsafe).
    Body,
    /// No user at all (public upload forms): only `ip` limits apply.
    Anonymous,
}

/// Where the `ip` subject comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIpSource {
    /// The connection's peer address.
    Peer,
    /// The `CloudFront-Viewer-Address` header.
    CloudFront,
}

/// Which browser origins may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers.
    None,
    /// Any origin.
    Any,
    /// These origins.
    List(Vec<HeaderValue>),
}

impl FromStr for CorsOrigins {
    type Err = String;

    /// Comma-separated origins (`https://app.example.com`: scheme and host,
    /// no path), `*` alone for any, or nothing for none.
    fn from_str(raw: &str) -> Result<Self, String> {
        let origins: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if origins.is_empty() {
            return Ok(CorsOrigins::None);
        }
        if origins == ["*"] {
            return Ok(CorsOrigins::Any);
        }
        origins
            .into_iter()
            .map(|o| {
                let valid = (o.starts_with("http://") || o.starts_with("https://"))
                    && !o.ends_with('/')
                    && o.parse::<http::Uri>()
                        .is_ok_and(|u| u.path() == "/" && u.query().is_none());
                HeaderValue::from_str(o).ok().filter(|_| valid).ok_or_else(|| {
                    format!("`{o}` is not an origin like https://app.example.com (scheme and host, no path), or `*` alone")
                })
            })
            .collect::<Result<_, _>>()
            .map(CorsOrigins::List)
    }
}

/// A shared secret the origin in front of the gate (CloudFront) adds to
/// every request. At least 16 visible characters; never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct OriginSecret(String);

impl OriginSecret {
    /// The secret's bytes, for a constant-time comparison.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for OriginSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OriginSecret(***)")
    }
}

impl FromStr for OriginSecret {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.len() < 16 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be at least 16 visible ASCII characters (a random token)".into());
        }
        Ok(OriginSecret(s.to_owned()))
    }
}

/// The gate's behaviour, as the router needs it.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// The limits.
    pub policy: Policy,
    /// Largest upload, bytes.
    pub max_object_bytes: u64,
    /// Allowed content types, lower case.
    pub content_types: Vec<String>,
    /// Object key prefix.
    pub key_prefix: String,
    /// Identity source.
    pub identity: IdentityMode,
    /// Client address source.
    pub client_ip: ClientIpSource,
    /// CORS origins.
    pub cors: CorsOrigins,
    /// The secret every request must carry in `x-origin-verify` (the
    /// origin in front, CloudFront, adds it), if set.
    pub origin_secret: Option<OriginSecret>,
    /// Admit when the store fails.
    pub fail_open: bool,
    /// Write EMF metric lines to stdout.
    pub emf_metrics: bool,
    /// Compute, log and meter decisions, but never enforce them.
    pub shadow: bool,
    /// Refuse uploads that do not bind a SHA-256 (`checksumSha256`).
    pub require_checksum: bool,
    /// Named policies, chosen by a token claim (`jwt` identity).
    pub tiers: Vec<(String, Policy)>,
    /// When uploads are paid for: `None` when granted (grant mode, the
    /// default); `Some(grace)` in upload mode (`UPLOADGATE_CHARGE=upload`),
    /// where a grant is a reservation, settled when its object lands and
    /// released if nothing landed by its URL's expiry plus `grace`.
    pub settlement: Option<std::time::Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_secrets_are_long_and_never_printed() {
        assert!("short".parse::<OriginSecret>().is_err());
        assert!("has a space in it!!".parse::<OriginSecret>().is_err());
        let s: OriginSecret = "0123456789abcdef-origin".parse().unwrap();
        assert_eq!(format!("{s:?}"), "OriginSecret(***)");
        assert_eq!(s.expose(), b"0123456789abcdef-origin");
    }

    #[test]
    fn cors_origins() {
        assert_eq!("".parse(), Ok(CorsOrigins::None));
        assert_eq!(" * ".parse(), Ok(CorsOrigins::Any));
        assert_eq!(
            "https://a.example.com, http://127.0.0.1:3000".parse(),
            Ok(CorsOrigins::List(vec![
                HeaderValue::from_static("https://a.example.com"),
                HeaderValue::from_static("http://127.0.0.1:3000")
            ]))
        );
        for bad in [
            "https://a.example.com/path",
            "a.example.com",
            "*,https://a.example.com",
        ] {
            assert!(bad.parse::<CorsOrigins>().is_err(), "{bad}");
        }
    }
}
