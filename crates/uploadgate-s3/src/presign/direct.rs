//! Signing a `PutObject` URL with `aws-sigv4`, exactly as aws-sdk-s3's
//! presigner does, without its orchestrator.
//!
//! The request is the one aws-sdk-s3's serializer builds for
//! `put_object().content_type(..).content_length(..).if_none_match("*")`
//! (plus `.content_disposition(..)` and `.checksum_sha256(..)` when the spec
//! has them): `PUT {base}/{key}?x-id=PutObject`, with its headers in the
//! serializer's order, since that order is also the order of
//! `PresignedRequest::headers()`. Every header is signed and stays a header;
//! aws-sigv4 never hoists one into the query string. That matters for
//! `x-amz-checksum-sha256`: S3 ignores it in the query (see AWS-NOTES).

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SessionTokenMode, SignableBody, SignableRequest,
    SignatureLocation, SigningParams, SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_http::label::EncodingStrategy;
use aws_smithy_runtime_api::client::identity::Identity;

use super::{PresignError, PresignedUpload, PutSpec};

/// Where the SDK's endpoint resolution put the bucket, as learnt by the
/// probe.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Endpoint {
    /// Everything before `/{key}`: `scheme://host[:port]` for a virtual-host
    /// bucket, `scheme://host[:port]/bucket` for path style.
    pub(super) base: String,
    /// Signing region and name, as the SDK signed them.
    pub(super) region: String,
    pub(super) service: String,
}

/// The SDK's `content_length` is an `i64`.
pub(super) fn content_length(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// Signs `spec` as a presigned `PUT` valid for `expires_in` from `now`.
pub(super) fn sign_put(
    endpoint: &Endpoint,
    identity: &Identity,
    spec: &PutSpec<'_>,
    now: SystemTime,
    expires_in: Duration,
) -> Result<PresignedUpload, PresignError> {
    let key = spec.key.as_str();
    // The SDK refuses an empty key; header values HTTP does not allow are
    // refused by `sign` below (it builds a `HeaderValue` of each), as the
    // SDK refuses them.
    if key.trim().is_empty() {
        return Err(PresignError::Sign("the object key is empty".into()));
    }
    let length = content_length(spec.size).to_string();
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(5);
    if let Some(disposition) = spec.content_disposition {
        headers.push(("content-disposition", disposition));
    }
    headers.push(("content-length", &length));
    headers.push(("content-type", spec.content_type));
    if let Some(checksum) = spec.checksum_sha256 {
        headers.push(("x-amz-checksum-sha256", checksum.as_str()));
    }
    headers.push(("if-none-match", "*"));

    // `{Key+}`: a greedy label, so `/` stays; then the operation's query.
    let mut url = String::with_capacity(endpoint.base.len() + 3 * key.len() + 1024);
    url.push_str(&endpoint.base);
    url.push('/');
    push_encoded(&mut url, key, Encoding::GreedyLabel);
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
        push_encoded(&mut url, name, Encoding::Query);
        url.push('=');
        push_encoded(&mut url, &value, Encoding::Query);
    }
    Ok(PresignedUpload {
        url,
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        expires_at: now + expires_in,
    })
}

/// The two aws-smithy-http encodings a `PutObject` URL uses.
#[derive(Clone, Copy, Debug)]
enum Encoding {
    /// A query name or value.
    Query,
    /// A greedy label (`{Key+}`): `/` stays.
    GreedyLabel,
}

impl Encoding {
    fn encode(self, s: &str) -> String {
        match self {
            Encoding::Query => aws_smithy_http::query::fmt_string(s),
            Encoding::GreedyLabel => {
                aws_smithy_http::label::fmt_string(s, EncodingStrategy::Greedy)
            }
        }
    }

    /// Whether the encoding leaves `b` as it is: RFC 3986's unreserved
    /// characters (`A-Z a-z 0-9 - . _ ~`) in every one of its sets, and `/`
    /// in a greedy label.
    fn keeps(self, b: u8) -> bool {
        b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (matches!(self, Encoding::GreedyLabel) && b == b'/')
    }
}

/// Appends `s`, encoded, to `out`. A string the encoding would leave as it
/// is (most of the signer's values: date, algorithm, lifetime, signature;
/// our object keys) is copied without it: the encoder builds a new `String`
/// one piece at a time, a dozen allocations per URL.
fn push_encoded(out: &mut String, s: &str, encoding: Encoding) {
    if s.bytes().all(|b| encoding.keeps(b)) {
        out.push_str(s);
    } else {
        out.push_str(&encoding.encode(s));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Encoding, push_encoded};

    fn pushed(s: &str, encoding: Encoding) -> String {
        let mut out = String::from("prefix");
        push_encoded(&mut out, s, encoding);
        out.strip_prefix("prefix").unwrap_or_default().to_owned()
    }

    proptest! {
        /// The shortcut writes what the encoder writes, for any string:
        /// kept characters around one ASCII punctuation or space (where the
        /// sets differ), and beyond ASCII.
        #[test]
        fn writes_what_the_encoder_writes(
            s in "[a-zA-Z0-9._~/-]{0,8}[ -/:-@\\[-`{-~]?[a-zA-Z0-9._~/-]{0,8}|\\PC{0,20}"
        ) {
            for encoding in [Encoding::Query, Encoding::GreedyLabel] {
                prop_assert_eq!(pushed(&s, encoding), encoding.encode(&s));
            }
        }
    }

    #[test]
    fn keeps_what_needs_no_encoding_and_encodes_the_rest() {
        let q = |s| pushed(s, Encoding::Query);
        assert_eq!(q("AWS4-HMAC-SHA256"), "AWS4-HMAC-SHA256");
        assert_eq!(q("a/b;c"), "a%2Fb%3Bc");
        let label = |s| pushed(s, Encoding::GreedyLabel);
        assert_eq!(label("u/2026/x.pdf"), "u/2026/x.pdf");
        assert_eq!(label("u/a b.pdf"), "u/a%20b.pdf");
    }
}
