//! Refusing headers a `PUT` carries but its signature does not cover.
//!
//! s3s verifies the headers a signature lists and ignores every other one,
//! so on its own a presigned URL would store whatever metadata the client
//! adds. Real S3 refuses unsigned `x-amz-*` headers on presigned requests
//! (403 "headers present in the request which were not signed") but accepts
//! unsigned standard ones such as `Content-Encoding`; this bucket refuses
//! both when they would change the stored object, so a URL stores exactly
//! what it signed.

use s3s::{S3Result, s3_error};

/// Request headers that never change the stored object, so a `PUT` may
/// carry them unsigned: the payload hash (s3s checks the body against it),
/// the SDK user agent (which SigV4 never signs in a presigned URL) and the
/// header-auth date and token.
const HARMLESS_AMZ_HEADERS: &[&str] = &[
    "x-amz-content-sha256",
    "x-amz-user-agent",
    "x-amz-date",
    "x-amz-security-token",
];

/// Standard request headers S3 stores with the object. Not `Cache-Control`:
/// browsers and Node's fetch add `Cache-Control: no-cache` (and `Pragma`) to
/// every request that carries `If-None-Match`, as the Fetch standard says,
/// so refusing it would refuse every browser upload; this bucket does not
/// store it, so it changes nothing here.
const OBJECT_HEADERS: &[&str] = &[
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-type",
    "expires",
];

/// The headers the request's signature covers, lower-case: from
/// `X-Amz-SignedHeaders` in a presigned URL, or `SignedHeaders=` in an
/// `Authorization` header. Empty if neither is there.
fn signed_headers(uri: &http::Uri, headers: &http::HeaderMap) -> Vec<String> {
    let from_query = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "X-Amz-SignedHeaders")
            .map(|(_, v)| v.into_owned())
    });
    let from_header = || {
        let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let (_, rest) = auth.split_once("SignedHeaders=")?;
        Some(rest.split([',', ' ']).next().unwrap_or_default().to_owned())
    };
    from_query
        .or_else(from_header)
        .map(|list| {
            list.split(';')
                .map(|h| h.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

/// Refuses a `PUT` carrying a header that would change the stored object
/// but is not signed, as S3 does for `x-amz-*` on presigned requests.
pub(super) fn refuse_unsigned_headers(uri: &http::Uri, headers: &http::HeaderMap) -> S3Result<()> {
    let signed = signed_headers(uri, headers);
    let mut unsigned: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|name| {
            let changes_object = OBJECT_HEADERS.contains(name)
                || (name.starts_with("x-amz-") && !HARMLESS_AMZ_HEADERS.contains(name));
            changes_object && !signed.iter().any(|s| s == name)
        })
        .collect();
    if unsigned.is_empty() {
        return Ok(());
    }
    unsigned.sort_unstable();
    Err(s3_error!(
        AccessDenied,
        "There were headers present in the request which were not signed: {}",
        unsigned.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|&(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    http::HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn signed_headers_come_from_the_query_or_the_authorization_header() {
        let presigned: http::Uri = "/b/k?x-id=PutObject&X-Amz-SignedHeaders=content-length%3Bhost%3Bx-amz-meta-a&X-Amz-Signature=00"
            .parse()
            .unwrap();
        assert_eq!(
            signed_headers(&presigned, &http::HeaderMap::new()),
            ["content-length", "host", "x-amz-meta-a"]
        );
        let auth = headers(&[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20270115/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-tagging, Signature=00",
        )]);
        let plain: http::Uri = "/b/k?x-id=PutObject".parse().unwrap();
        assert_eq!(
            signed_headers(&plain, &auth),
            [
                "host",
                "x-amz-content-sha256",
                "x-amz-date",
                "x-amz-tagging"
            ]
        );
        assert!(signed_headers(&plain, &http::HeaderMap::new()).is_empty());
    }

    #[test]
    fn only_unsigned_headers_that_change_the_object_are_refused() {
        let uri: http::Uri = "/b/k?X-Amz-SignedHeaders=content-type%3Bhost%3Bx-amz-meta-a"
            .parse()
            .unwrap();
        let ok = headers(&[
            ("content-type", "text/plain"),
            ("x-amz-meta-a", "signed"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ("x-amz-user-agent", "sdk"),
            ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
            ("user-agent", "browser"),
            ("cache-control", "no-cache"),
            ("pragma", "no-cache"),
        ]);
        assert!(refuse_unsigned_headers(&uri, &ok).is_ok());
        for name in [
            "x-amz-meta-b",
            "X-Amz-Tagging",
            "content-disposition",
            "content-encoding",
            "expires",
        ] {
            let mut h = ok.clone();
            h.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_static("x"),
            );
            let err = refuse_unsigned_headers(&uri, &h).unwrap_err();
            assert_eq!(
                err.status_code(),
                Some(http::StatusCode::FORBIDDEN),
                "{name}"
            );
        }
    }
}
