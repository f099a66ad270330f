//! The presigner as a whole: what its URLs sign ([`oracle`]: the same as
//! aws-sdk-s3's `presigned()`), and which credentials sign them
//! ([`credentials`]).

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_s3::config::{Credentials, Region};
use uploadgate_core::{ObjectKey, UserId};

use super::*;

mod credentials;
#[cfg(feature = "local")]
mod oracle;

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// SHA-256 of `hello`.
const SHA_HELLO: &str = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=";

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn sdk_config(
    region: &str,
    endpoint: Option<&str>,
    provider: SharedCredentialsProvider,
) -> SdkConfig {
    let mut b = SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(provider);
    if let Some(e) = endpoint {
        b = b.endpoint_url(e);
    }
    b.build()
}

fn static_credentials(token: Option<&str>) -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        AKID,
        SECRET,
        token.map(str::to_owned),
        None,
        "test",
    ))
}

fn key(prefix: &str, unique: &str, filename: &str) -> ObjectKey {
    ObjectKey::for_upload(prefix, &UserId::parse("alice").unwrap(), unique, filename)
}

/// A query parameter of `url`, decoded.
fn param(url: &str, name: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The names of `url`'s query parameters, lower-case.
fn param_names(url: &str) -> Vec<String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect()
}

/// Neither the checksum nor the disposition was hoisted into the query.
fn nothing_hoisted(url: &str) -> bool {
    let names = param_names(url);
    !names
        .iter()
        .any(|n| n.contains("checksum") || n.contains("content-"))
}

fn is_direct(p: &Presigner) -> bool {
    matches!(p.shared.route.get(), Some(Route::Direct(_)))
}

#[tokio::test]
async fn signs_length_type_and_if_none_match() {
    let p = Presigner::from_sdk_config(
        &sdk_config(
            "us-east-1",
            Some("http://127.0.0.1:9000"),
            static_credentials(None),
        ),
        "uploads".into(),
        Duration::from_secs(300),
    );
    let key = key("uploads/", "u1", "a b.pdf");
    let now = t0();
    let up = p
        .presign_put(&key, "application/pdf", 12345, now)
        .await
        .unwrap();
    assert!(
        up.url
            .starts_with("http://127.0.0.1:9000/uploads/uploads/alice/u1/a_b.pdf?x-id=PutObject&"),
        "{}",
        up.url
    );
    assert_eq!(param(&up.url, "X-Amz-Expires").as_deref(), Some("300"));
    assert_eq!(
        param(&up.url, "X-Amz-SignedHeaders").as_deref(),
        Some("content-length;content-type;host;if-none-match")
    );
    assert_eq!(
        up.headers,
        [
            ("content-length", "12345"),
            ("content-type", "application/pdf"),
            ("if-none-match", "*"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert_eq!(up.expires_at, now + Duration::from_secs(300));
    // Same inputs, same time: the same URL (signing is deterministic), and
    // the same as `presign` with a bare spec.
    let spec = PutSpec::new(&key, "application/pdf", 12345);
    assert_eq!(p.presign(&spec, now).await.unwrap(), up);
    assert!(matches!(
        p.shared.route.get(),
        Some(Route::Direct(Endpoint { base, .. })) if base == "http://127.0.0.1:9000/uploads"
    ));
}

#[tokio::test]
async fn signs_checksum_and_disposition_as_headers_never_in_the_query() {
    let p = Presigner::from_sdk_config(
        &sdk_config("eu-west-1", None, static_credentials(None)),
        "acme-uploads".into(),
        Duration::from_secs(300),
    );
    let key = key("uploads/", "u1", "a.pdf");
    let sha = ChecksumSha256::parse(SHA_HELLO).unwrap();
    let disposition = "attachment; filename=\"a.pdf\"";
    let with_both = PutSpec::new(&key, "application/pdf", 5)
        .with_checksum_sha256(&sha)
        .with_content_disposition(disposition);
    for (spec, signed, headers) in [
        (
            with_both,
            "content-disposition;content-length;content-type;host;if-none-match;x-amz-checksum-sha256",
            vec![
                ("content-disposition", disposition),
                ("content-length", "5"),
                ("content-type", "application/pdf"),
                ("x-amz-checksum-sha256", SHA_HELLO),
                ("if-none-match", "*"),
            ],
        ),
        (
            PutSpec::new(&key, "application/pdf", 5).with_checksum_sha256(&sha),
            "content-length;content-type;host;if-none-match;x-amz-checksum-sha256",
            vec![
                ("content-length", "5"),
                ("content-type", "application/pdf"),
                ("x-amz-checksum-sha256", SHA_HELLO),
                ("if-none-match", "*"),
            ],
        ),
    ] {
        for up in [
            p.presign(&spec, t0()).await.unwrap(),
            p.presign_via_sdk(&spec, t0()).await.unwrap(),
        ] {
            assert_eq!(
                param(&up.url, "X-Amz-SignedHeaders").as_deref(),
                Some(signed)
            );
            let expected: Vec<(String, String)> = headers
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(up.headers, expected);
            // Hoisted into the query, S3 would ignore the checksum.
            assert!(nothing_hoisted(&up.url), "{}", up.url);
        }
    }
    assert!(is_direct(&p));
}
