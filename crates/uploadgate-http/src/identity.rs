//! Who is asking: the caller (by the configured [`IdentityMode`]) and the
//! client address (by the configured [`ClientIpSource`]).
//!
//! Identity is one async function of the request parts and the raw body,
//! so every mode (a verified token, a trusted header, the body, nobody)
//! is one arm here and no handler knows which is configured.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use http::HeaderName;
use http::request::Parts;
use serde::Deserialize;
use uploadgate_core::{Clock, UserId};

use crate::error::ApiError;
use crate::gate::{ClientIpSource, IdentityMode};
use crate::request::parse;
use crate::token::{JwtVerifier, TokenError};

/// The client address, inserted as a request extension by runners that do
/// not provide axum's `ConnectInfo` (the Lambda runner, from the event's
/// request context).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The header CloudFront puts the viewer's `ip:port` in.
pub const CLOUDFRONT_VIEWER_ADDRESS: &str = "cloudfront-viewer-address";

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user; `None` in anonymous mode.
    pub user: Option<UserId>,
    /// Values of the token's tier claim, in order (empty otherwise).
    pub tiers: Vec<String>,
}

/// The identity mode, ready to use (a token verifier built once).
#[derive(Debug)]
pub(crate) enum Identity {
    Jwt(Arc<JwtVerifier>),
    Header(HeaderName),
    Body,
    Anonymous,
}

impl Identity {
    pub(crate) fn new(mode: &IdentityMode, clock: Arc<dyn Clock>) -> Self {
        match mode {
            IdentityMode::Jwt(config) => {
                Identity::Jwt(Arc::new(JwtVerifier::new((**config).clone(), clock)))
            }
            IdentityMode::Header(h) => Identity::Header(h.clone()),
            IdentityMode::Body => Identity::Body,
            IdentityMode::Anonymous => Identity::Anonymous,
        }
    }

    /// The header a browser sends the identity in, if any (for CORS).
    pub(crate) fn header(&self) -> Option<&HeaderName> {
        match self {
            Identity::Jwt(v) => Some(v.header()),
            Identity::Header(h) => Some(h),
            Identity::Body | Identity::Anonymous => None,
        }
    }

    /// Fetches what identification needs before the first request.
    pub(crate) async fn warm_up(&self) {
        if let Identity::Jwt(v) = self {
            v.warm_up().await;
        }
    }

    /// The caller. `body` is the request's JSON body, if any; for a `GET`
    /// in body mode the id comes from the `userId` query parameter.
    pub(crate) async fn caller(
        &self,
        parts: &Parts,
        body: Option<&[u8]>,
    ) -> Result<Caller, ApiError> {
        let raw: String = match self {
            Identity::Anonymous => {
                return Ok(Caller {
                    user: None,
                    tiers: Vec::new(),
                });
            }
            Identity::Jwt(verifier) => {
                let token = verifier.token(&parts.headers).map_err(token_error)?;
                let verified = verifier.verify(token).await.map_err(token_error)?;
                return Ok(Caller {
                    user: Some(verified.user),
                    tiers: verified.tiers,
                });
            }
            Identity::Header(name) => {
                let mut values = parts.headers.get_all(name).iter();
                let Some(v) = values.next() else {
                    return Err(ApiError::Unauthenticated(format!(
                        "send your user id in the `{name}` header"
                    )));
                };
                // An upstream that appends its header must not lose to the
                // client's: two values are refused, not picked from.
                if values.next().is_some() {
                    return Err(ApiError::BadRequest(format!(
                        "the `{name}` header is repeated"
                    )));
                }
                v.to_str()
                    .map_err(|_| {
                        ApiError::BadRequest(format!("the `{name}` header is not valid text"))
                    })?
                    .trim()
                    .to_owned()
            }
            Identity::Body => match body {
                Some(bytes) => parse::<BodyIdentity>(bytes)?.user_id.ok_or_else(|| {
                    ApiError::Unauthenticated(
                        "send your user id as `userId` in the JSON body".into(),
                    )
                })?,
                None => query_param(parts, "userId").ok_or_else(|| {
                    ApiError::Unauthenticated(
                        "send your user id as the `userId` query parameter".into(),
                    )
                })?,
            },
        };
        let user = UserId::parse(&raw).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(Caller {
            user: Some(user),
            tiers: Vec::new(),
        })
    }
}

/// A repeated token header is a malformed request; every other token
/// failure is 401.
fn token_error(e: TokenError) -> ApiError {
    match e {
        TokenError::Repeated(_) => ApiError::BadRequest(e.to_string()),
        e => ApiError::InvalidToken(e),
    }
}

/// The identity part of a body in `body` mode.
#[derive(Deserialize)]
struct BodyIdentity {
    #[serde(default, rename = "userId")]
    user_id: Option<String>,
}

fn query_param(parts: &Parts, name: &str) -> Option<String> {
    form_urlencoded::parse(parts.uri.query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The client's address. Behind CloudFront it is the viewer address from
/// `CloudFront-Viewer-Address` (`ip:port`, IPv6 unbracketed, so split on the
/// last `:`); the leftmost `X-Forwarded-For` is client-controlled and never
/// used. Otherwise it is the connection's peer.
pub fn client_ip(source: ClientIpSource, parts: &Parts) -> Option<IpAddr> {
    if source == ClientIpSource::CloudFront
        && let Some(ip) = parts
            .headers
            .get(CLOUDFRONT_VIEWER_ADDRESS)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_viewer_address)
    {
        return Some(ip);
    }
    parts
        .extensions
        .get::<ClientAddr>()
        .map(|a| a.0)
        .or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
}

/// Parses CloudFront's `ip:port`.
pub fn parse_viewer_address(v: &str) -> Option<IpAddr> {
    let (ip, port) = v.trim().rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewer_addresses() {
        assert_eq!(
            parse_viewer_address("203.0.113.7:46532"),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            parse_viewer_address("2001:db8:1:2:3:4:5:6:443"),
            Some("2001:db8:1:2:3:4:5:6".parse().unwrap())
        );
        assert_eq!(parse_viewer_address("203.0.113.7"), None);
        assert_eq!(parse_viewer_address("nonsense:80"), None);
    }

    #[test]
    fn query_parameters_are_percent_decoded() {
        let parts = |uri: &str| http::Request::get(uri).body(()).unwrap().into_parts().0;
        assert_eq!(
            query_param(&parts("/v1/quota?a=1&userId=a%40b.c"), "userId"),
            Some("a@b.c".into())
        );
        assert_eq!(
            query_param(&parts("/v1/quota?userId=50%"), "userId"),
            Some("50%".into())
        );
        assert_eq!(query_param(&parts("/v1/quota?user=x"), "userId"), None);
        assert_eq!(query_param(&parts("/v1/quota"), "userId"), None);
    }
}
