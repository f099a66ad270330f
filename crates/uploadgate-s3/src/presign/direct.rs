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
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        expires_at: now + expires_in,
    })
}
