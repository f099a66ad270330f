//! Who is asking: the user id (by the configured [`IdentityMode`]) and the
//! client address (by the configured [`ClientIpSource`]).
//!
//! Identity is one function of the request parts and the parsed body, so a
//! verified-token mode slots in as another arm without touching handlers.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::request::Parts;
use serde::Deserialize;
use uploadgate_core::UserId;

use crate::error::ApiError;
use crate::gate::{ClientIpSource, IdentityMode};
use crate::request::parse;

/// The client address, inserted as a request extension by runners that do
/// not provide axum's `ConnectInfo` (the Lambda runner, from the event's
/// request context).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The header CloudFront puts the viewer's `ip:port` in.
pub const CLOUDFRONT_VIEWER_ADDRESS: &str = "cloudfront-viewer-address";

/// The caller's user id. `body` is the request's JSON body, if any; for a
/// `GET` in body mode the id comes from the `userId` query parameter.
pub fn user_id(
    mode: &IdentityMode,
    parts: &Parts,
    body: Option<&[u8]>,
) -> Result<UserId, ApiError> {
    let raw: String = match mode {
        IdentityMode::Header(name) => {
            let Some(v) = parts.headers.get(name) else {
                return Err(ApiError::Unauthenticated(format!(
                    "send your user id in the `{name}` header"
                )));
            };
            v.to_str()
                .map_err(|_| {
                    ApiError::BadRequest(format!("the `{name}` header is not valid text"))
                })?
                .trim()
                .to_owned()
        }
        IdentityMode::Body => match body {
            Some(bytes) => parse::<BodyIdentity>(bytes)?.user_id.ok_or_else(|| {
                ApiError::Unauthenticated("send your user id as `userId` in the JSON body".into())
            })?,
            None => query_param(parts, "userId").ok_or_else(|| {
                ApiError::Unauthenticated(
                    "send your user id as the `userId` query parameter".into(),
                )
            })?,
        },
    };
    UserId::parse(&raw).map_err(|e| ApiError::BadRequest(e.to_string()))
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
