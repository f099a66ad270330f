//! The direct signer against aws-sdk-s3's `presigned()`: the same inputs,
//! credentials and time must give the identical URL and headers (same
//! order), for every addressing style the SDK picks, with and without the
//! optional checksum and `Content-Disposition`.

use super::*;

/// Session tokens are base64: `+`, `/` and `=` must be encoded.
const TOKEN: &str = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+abc/def==";
/// SHA-256 of the empty body.
const SHA_EMPTY: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

/// (what it is, presigner, expected URL base)
fn presigners() -> Vec<(&'static str, Presigner, &'static str)> {
    let ttl = Duration::from_secs(900);
    let local = LocalCredentials {
        access_key: AKID.into(),
        secret_key: SECRET.into(),
    };
    let sdk = |region, endpoint, token, bucket: &str| {
        Presigner::from_sdk_config(
            &sdk_config(region, endpoint, static_credentials(token)),
            bucket.to_owned(),
            ttl,
        )
    };
    vec![
        (
            "local, path style",
            Presigner::for_local("http://127.0.0.1:9000", &local, "uploads".into(), ttl),
            "http://127.0.0.1:9000/uploads/",
        ),
        (
            "custom IP endpoint, session token",
            sdk(
                "us-east-1",
                Some("http://127.0.0.1:4566"),
                Some(TOKEN),
                "uploads",
            ),
            "http://127.0.0.1:4566/uploads/",
        ),
        (
            "custom host endpoint (virtual host)",
            sdk("us-east-1", Some("http://localhost:4566"), None, "uploads"),
            "http://uploads.localhost:4566/",
        ),
        (
            "real S3, eu-west-1",
            sdk("eu-west-1", None, None, "acme-uploads"),
            "https://acme-uploads.s3.eu-west-1.amazonaws.com/",
        ),
        (
            "real S3, eu-west-1, session token",
            sdk("eu-west-1", None, Some(TOKEN), "acme-uploads"),
            "https://acme-uploads.s3.eu-west-1.amazonaws.com/",
        ),
        (
            "real S3, us-east-1, session token",
            sdk("us-east-1", None, Some(TOKEN), "acme-uploads"),
            "https://acme-uploads.s3.us-east-1.amazonaws.com/",
        ),
        (
            "real S3, bucket with dots (path style)",
            sdk("eu-west-1", None, None, "uploads.acme.example"),
            "https://s3.eu-west-1.amazonaws.com/uploads.acme.example/",
        ),
    ]
}

fn keys() -> Vec<ObjectKey> {
    // The prefix and the unique part reach the key verbatim.
    [
        (
            "uploads/",
            "0b7e2a43-6f0c-4d7e-9a55-2b1f3f0c9d11",
            "report.pdf",
        ),
        ("with space/", "u 1", "a b.pdf"),
        (
            "unicode/\u{e9}t\u{e9}/",
            "\u{1f600}\u{4e2d}",
            "r\u{e9}sum\u{e9}.pdf",
        ),
        ("plus+sign/", "1+1=2", "x+y.txt"),
        ("percent%/", "100%25done%2F", "p%.txt"),
        ("tilde~/", "~home", "~x.txt"),
        ("", "semi;colon&amp=eq?q#h", "file"),
        ("double//slash/", "dot.", "..x"),
    ]
    .into_iter()
    .map(|(p, u, f)| key(p, u, f))
    .collect()
}

const CONTENT_TYPES: &[&str] = &[
    "application/pdf",
    "text/plain; charset=utf-8",
    "multipart/form-data; boundary=\"a b\"",
    "image/svg+xml",
    "Text/Plain;  Charset=UTF-8 ",
];

/// Values a browser or issue 13's filename encoding could produce: RFC 6266
/// `filename*`, quotes, runs of spaces (which SigV4 collapses when
/// canonicalising, but the client sends as is), raw UTF-8, and empty.
const DISPOSITIONS: &[&str] = &[
    "attachment",
    "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
    "inline;  filename=\"a  b.pdf\" ",
    "attachment; filename=\"r\u{e9}sum\u{e9}.pdf\"",
    "",
];

fn times() -> [SystemTime; 3] {
    [
        t0(),
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_123_456),
        SystemTime::now(),
    ]
}

#[tokio::test]
async fn direct_urls_and_headers_are_identical_to_the_sdk() {
    let times = times();
    let mut compared = 0;
    for (what, p, base) in presigners() {
        for key in keys() {
            for (i, ct) in CONTENT_TYPES.iter().enumerate() {
                let size = [1, 12_345, 5 << 30, u64::MAX, 7][i];
                let now = times[compared % times.len()];
                let direct = p.presign_put(&key, ct, size, now).await.unwrap();
                let spec = PutSpec::new(&key, ct, size);
                let sdk = p.presign_via_sdk(&spec, now).await.unwrap();
                assert_eq!(direct, sdk, "{what}: key {key:?}, type {ct:?}");
                assert!(direct.url.starts_with(base), "{what}: {}", direct.url);
                compared += 1;
            }
        }
        // Equal only counts if the direct signer signed.
        assert!(is_direct(&p), "{what}: fell back to the SDK");
        let url = p
            .presign_put(&keys()[0], "application/pdf", 1, times[0])
            .await
            .unwrap()
            .url;
        assert_eq!(
            url.contains(&format!(
                "X-Amz-Security-Token={}",
                aws_smithy_http::query::fmt_string(TOKEN)
            )),
            what.contains("session token"),
            "{what}: {url}"
        );
    }
    assert_eq!(compared, 7 * 8 * 5);
}

#[tokio::test]
async fn with_checksum_and_disposition_too() {
    let times = times();
    let sums = [
        ChecksumSha256::parse(SHA_EMPTY).unwrap(),
        ChecksumSha256::parse(SHA_HELLO).unwrap(),
    ];
    // Each disposition alone and with a checksum, and each checksum alone.
    let mut extras: Vec<(Option<&ChecksumSha256>, Option<&str>)> = vec![];
    for (i, d) in DISPOSITIONS.iter().enumerate() {
        extras.push((None, Some(d)));
        extras.push((Some(&sums[i % 2]), Some(d)));
    }
    extras.extend(sums.iter().map(|s| (Some(s), None)));
    let mut compared = 0;
    for (what, p, base) in presigners() {
        for key in keys() {
            for &(sum, disposition) in &extras {
                let ct = CONTENT_TYPES[compared % CONTENT_TYPES.len()];
                let now = times[compared % times.len()];
                let mut spec = PutSpec::new(&key, ct, 12_345);
                if let Some(s) = sum {
                    spec = spec.with_checksum_sha256(s);
                }
                if let Some(d) = disposition {
                    spec = spec.with_content_disposition(d);
                }
                let direct = p.presign(&spec, now).await.unwrap();
                let sdk = p.presign_via_sdk(&spec, now).await.unwrap();
                assert_eq!(direct, sdk, "{what}: {spec:?}");
                assert!(direct.url.starts_with(base), "{what}: {}", direct.url);
                let signed = param(&direct.url, "X-Amz-SignedHeaders").unwrap();
                assert_eq!(
                    signed.contains("x-amz-checksum-sha256"),
                    sum.is_some(),
                    "{signed}"
                );
                assert_eq!(
                    signed.contains("content-disposition"),
                    disposition.is_some(),
                    "{signed}"
                );
                assert!(nothing_hoisted(&direct.url), "{}", direct.url);
                compared += 1;
            }
        }
        assert!(is_direct(&p), "{what}: fell back to the SDK");
    }
    assert_eq!(compared, 7 * 8 * 12);
}

#[tokio::test]
async fn both_refuse_what_the_sdk_refuses() {
    let key = &keys()[0];
    let now = t0();
    let (_, p, _) = presigners().remove(0);
    let bad_values = ["text/plain\r\nx-evil: 1", "a\u{7f}b", "a\nb"];
    for bad in bad_values {
        let as_type = PutSpec::new(key, bad, 1);
        let as_disposition = PutSpec::new(key, "application/pdf", 1).with_content_disposition(bad);
        for spec in [as_type, as_disposition] {
            assert!(matches!(
                p.presign(&spec, now).await,
                Err(PresignError::Sign(_))
            ));
            assert!(matches!(
                p.presign_via_sdk(&spec, now).await,
                Err(PresignError::Sign(_))
            ));
        }
    }
    let local = LocalCredentials {
        access_key: AKID.into(),
        secret_key: SECRET.into(),
    };
    let too_long = Duration::from_secs(7 * 86_400 + 1);
    let p = Presigner::for_local("http://127.0.0.1:9000", &local, "b".into(), too_long);
    let spec = PutSpec::new(key, "application/pdf", 1);
    assert!(matches!(
        p.presign(&spec, now).await,
        Err(PresignError::Config(_))
    ));
    assert!(matches!(
        p.presign_via_sdk(&spec, now).await,
        Err(PresignError::Config(_))
    ));
}
