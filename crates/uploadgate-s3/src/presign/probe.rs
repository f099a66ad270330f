//! Learning where the bucket lives from the SDK itself.
//!
//! Path style or virtual host, custom endpoint, FIPS, dual-stack and the
//! signing region are all decided by aws-sdk-s3's endpoint rules. Rather than
//! re-implement them, the first presign asks the SDK to presign a probe key,
//! reads the URL base and signing scope off its URL, signs the same probe
//! directly and takes the direct path only if both URLs are identical.
//! Anything else (another algorithm such as S3 Express's, an unexpected
//! shape) keeps every call on the SDK.

use std::time::SystemTime;

use aws_sdk_s3::config::Credentials;
use aws_smithy_runtime_api::client::identity::Identity;
use uploadgate_core::{ObjectKey, UserId};

use super::direct::{Endpoint, sign_put};
use super::{PresignError, Presigner, PutSpec, Route};

/// The key the probe signs: unreserved characters and `/` (which the SDK
/// keeps in a key), so its encoding is itself and the URL base is what
/// precedes it. Built by [`probe_key`], as every key is.
const PROBE_KEY: &str = "uploadgate/endpoint/probe";
const PROBE_CONTENT_TYPE: &str = "application/octet-stream";

impl Presigner {
    /// Learns the URL base and signing scope from one SDK presign of
    /// [`PROBE_KEY`], then checks that signing the probe here gives the very
    /// same URL. Both sides use the same credentials and time.
    pub(super) async fn probe(
        &self,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<Route, PresignError> {
        let creds = identity.data::<Credentials>().cloned().ok_or_else(|| {
            PresignError::Credentials("the identity is not AWS credentials".into())
        })?;
        let client = aws_sdk_s3::Client::from_conf(
            self.client
                .config()
                .to_builder()
                .credentials_provider(creds)
                .build(),
        );
        let key = probe_key()?;
        let spec = PutSpec::new(&key, PROBE_CONTENT_TYPE, 1);
        let expected = self.sdk_presign(&client, &spec, now).await?;
        let Some(endpoint) = endpoint_from_probe(&expected.url) else {
            tracing::warn!(
                bucket = %self.bucket,
                "presigning through aws-sdk-s3 (slow path): its URL does not have the expected shape"
            );
            return Ok(Route::Sdk);
        };
        // The full lifetime, as the SDK signed it: this URL is only compared.
        let lifetime = self.presigning_config(now)?.expires();
        let ours = sign_put(&endpoint, identity, &spec, now, lifetime)?;
        if ours == expected {
            tracing::debug!(base = %endpoint.base, region = %endpoint.region, "presigning with aws-sigv4 directly");
            Ok(Route::Direct(endpoint))
        } else {
            tracing::warn!(
                bucket = %self.bucket,
                "presigning through aws-sdk-s3 (slow path): the direct signature differs from the SDK's"
            );
            Ok(Route::Sdk)
        }
    }
}

fn probe_key() -> Result<ObjectKey, PresignError> {
    let user = UserId::parse("uploadgate").map_err(|e| PresignError::Sign(Box::new(e)))?;
    Ok(ObjectKey::for_upload("", &user, "endpoint", "probe"))
}

/// `scheme://host[:port][/bucket]`, region and signing name from a presigned
/// URL of [`PROBE_KEY`]; `None` unless the URL is a plain SigV4 query
/// signature of `{base}/{PROBE_KEY}?x-id=PutObject&...`.
pub(super) fn endpoint_from_probe(url: &str) -> Option<Endpoint> {
    let uri: http::Uri = url.parse().ok()?;
    let prefix = uri.path().strip_suffix(PROBE_KEY)?.strip_suffix('/')?;
    let base = format!("{}://{}{prefix}", uri.scheme_str()?, uri.authority()?);
    // The base must be the URL's own text, byte for byte.
    if !url.starts_with(&base) {
        return None;
    }
    let mut params = form_urlencoded::parse(uri.query()?.as_bytes());
    let (name, value) = params.next()?;
    if (name.as_ref(), value.as_ref()) != ("x-id", "PutObject") {
        return None;
    }
    let mut algorithm = None;
    let mut credential = None;
    for (name, value) in params {
        match name.as_ref() {
            "X-Amz-Algorithm" => algorithm = Some(value),
            "X-Amz-Credential" => credential = Some(value),
            _ => {}
        }
    }
    if algorithm?.as_ref() != "AWS4-HMAC-SHA256" {
        return None;
    }
    // `AKID/yyyymmdd/region/service/aws4_request`.
    let credential = credential?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, "aws4_request"] = scope[..] else {
        return None;
    };
    if [access_key, date, region, service]
        .iter()
        .any(|s| s.is_empty())
    {
        return None;
    }
    Some(Endpoint {
        base,
        region: region.to_owned(),
        service: service.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> Option<(String, String, String)> {
        endpoint_from_probe(url).map(|e| (e.base, e.region, e.service))
    }

    #[test]
    fn the_probe_key_is_the_constant() {
        assert_eq!(probe_key().unwrap().as_str(), PROBE_KEY);
    }

    #[test]
    fn the_probe_url_gives_base_region_and_name() {
        let query = "?x-id=PutObject&X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKID%2F20270115%2Feu-west-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20270115T080000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host";
        for (base, region) in [
            ("https://b.s3.eu-west-1.amazonaws.com", "eu-west-1"),
            ("http://127.0.0.1:9000/uploads", "eu-west-1"),
            (
                "https://s3.eu-west-1.amazonaws.com/uploads.acme.example",
                "eu-west-1",
            ),
        ] {
            assert_eq!(
                parts(&format!("{base}/{PROBE_KEY}{query}")),
                Some((base.to_owned(), region.to_owned(), "s3".to_owned())),
                "{base}"
            );
        }
        // Another signing name (S3 on Outposts, Object Lambda) is read as is.
        let outposts = query.replace("%2Fs3%2F", "%2Fs3-outposts%2F");
        assert_eq!(
            parts(&format!("https://b.example/{PROBE_KEY}{outposts}")).map(|p| p.2),
            Some("s3-outposts".to_owned())
        );
    }

    #[test]
    fn anything_but_a_plain_sigv4_probe_url_is_refused() {
        let ok = format!(
            "https://b.example/{PROBE_KEY}?x-id=PutObject&X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKID%2F20270115%2Fus-east-1%2Fs3%2Faws4_request"
        );
        assert!(endpoint_from_probe(&ok).is_some());
        for bad in [
            // SigV4a (S3 Multi-Region Access Points), and no algorithm.
            ok.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"),
            ok.replace("&X-Amz-Algorithm=AWS4-HMAC-SHA256", ""),
            // A scope with the region missing, or not ending in aws4_request.
            ok.replace("%2Fus-east-1", ""),
            ok.replace("aws4_request", "aws4_other"),
            ok.replace("AKID%2F", "%2F"),
            // Another key, operation or order.
            ok.replace(PROBE_KEY, "other"),
            ok.replace(&format!("/{PROBE_KEY}"), &format!("/x{PROBE_KEY}")),
            ok.replace("x-id=PutObject", "x-id=GetObject"),
            ok.replace("?x-id=PutObject&", "?") + "&x-id=PutObject",
            // No query, no scheme, not a URL.
            format!("https://b.example/{PROBE_KEY}"),
            format!("b.example/{PROBE_KEY}?x-id=PutObject"),
            "not a url".to_owned(),
        ] {
            assert_eq!(endpoint_from_probe(&bad), None, "{bad}");
        }
    }
}
