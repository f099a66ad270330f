//! A URL stores exactly what it signs: a `PUT` carrying a header that would
//! change the stored object, and that the URL does not sign, is 403 and
//! stores nothing. s3s alone ignores unsigned headers (it only looks up the
//! signed ones), so the bucket checks.

use super::*;

/// Headers that change what S3 stores with the object.
const OBJECT_CHANGING: &[(&str, &str)] = &[
    ("content-disposition", "attachment; filename=\"evil.html\""),
    ("content-encoding", "gzip"),
    ("content-language", "fr"),
    ("expires", "Thu, 01 Jan 2037 00:00:00 GMT"),
    ("x-amz-meta-owner", "mallory"),
    ("x-amz-tagging", "public=yes"),
    ("x-amz-acl", "public-read"),
    ("x-amz-storage-class", "GLACIER"),
    ("x-amz-website-redirect-location", "/elsewhere"),
    ("x-amz-server-side-encryption", "AES256"),
    ("x-amz-checksum-crc32", "AAAAAA=="),
];

#[tokio::test]
async fn unsigned_headers_that_change_the_object_are_403_and_store_nothing() {
    let b = bucket().await;
    let body = b"%PDF-1.7";
    let (key, up) = b.sign("doc.pdf", "application/pdf", 8).await;
    for &(name, value) in OBJECT_CHANGING {
        let (status, _, text) = send(&up, &[(name, value)], body).await;
        assert_eq!(
            (status, code(&text)),
            (403, "AccessDenied"),
            "{name}: {text}"
        );
        assert!(text.contains(name), "{name}: {text}");
        assert_eq!(b.stored(&key), None, "{name}");
    }
    // Several at once are all named.
    let (status, _, text) = send(
        &up,
        &[("x-amz-meta-a", "1"), ("content-language", "fr")],
        body,
    )
    .await;
    assert_eq!(status, 403);
    assert!(text.contains("content-language, x-amz-meta-a"), "{text}");
    assert_eq!(b.stored(&key), None);
    // The URL itself still works, once.
    assert_eq!(send(&up, &[], body).await.0, 200);
    assert_eq!(b.stored(&key).unwrap(), body);
}

#[tokio::test]
async fn a_signed_disposition_is_accepted_stored_and_served() {
    let b = bucket().await;
    let body = b"%PDF-1.7";
    let key = new_key("report.pdf");
    let disposition = "attachment; filename=\"report.pdf\"";
    let spec = PutSpec::new(&key, "application/pdf", 8).with_content_disposition(disposition);
    let up = b.sign_spec(&spec).await;
    // Another value breaks the signature; leaving it out is a missing
    // signed header.
    let (status, _, text) = send(&up, &[("content-disposition", "inline")], body).await;
    assert_eq!(
        (status, code(&text)),
        (403, "SignatureDoesNotMatch"),
        "{text}"
    );
    let mut without = up.clone();
    without.headers.retain(|(k, _)| k != "content-disposition");
    assert_eq!(send(&without, &[], body).await.0, 403);
    assert_eq!(b.stored(&key), None);

    let (status, _, text) = send(&up, &[], body).await;
    assert_eq!(status, 200, "{text}");
    let got = b
        .client()
        .get_object()
        .bucket("uploads")
        .key(key.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_disposition(), Some(disposition));
    assert_eq!(got.content_type(), Some("application/pdf"));
}

#[tokio::test]
async fn headers_that_do_not_change_the_object_may_be_unsigned() {
    let b = bucket().await;
    let body = b"hello";
    let (key, up) = b.sign("hello.txt", "text/plain", 5).await;
    // s3s checks the body against a payload hash; the SDK's user agent is
    // never signed in a presigned URL; ordinary request headers are not
    // about the object. Browsers add `Cache-Control: no-cache` and
    // `Pragma: no-cache` to any request with `If-None-Match` (Fetch
    // standard); this bucket does not store Cache-Control.
    let payload_sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    let (status, _, text) = send(
        &up,
        &[
            ("x-amz-content-sha256", payload_sha),
            ("x-amz-user-agent", "aws-sdk-js/3.0"),
            ("accept", "*/*"),
            ("origin", "http://127.0.0.1:8080"),
            ("user-agent", "Mozilla/5.0"),
            ("cache-control", "no-cache"),
            ("pragma", "no-cache"),
        ],
        body,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(b.stored(&key).unwrap(), body);
}
