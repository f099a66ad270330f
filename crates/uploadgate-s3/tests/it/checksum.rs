//! A signed `x-amz-checksum-sha256` binds the bytes: the bucket hashes the
//! body as it streams and stores nothing on a mismatch, as S3 does
//! (AWS-NOTES: 200, 400 `BadDigest`, 403 `SignatureDoesNotMatch`).

use s3s::crypto::{Checksum as _, Sha256};
use uploadgate_s3::ChecksumSha256;

use super::*;

fn sha256(body: &[u8]) -> ChecksumSha256 {
    ChecksumSha256::from_digest(Sha256::checksum(body))
}

#[tokio::test]
async fn right_bytes_200_a_flipped_byte_400_bad_digest_a_changed_header_403() {
    let b = bucket().await;
    let body = b"%PDF-1.7 bytes bound by their checksum";
    let mut flipped = body.to_vec();
    flipped[20] ^= 0x01;
    let sum = sha256(body);
    let key = new_key("bound.pdf");
    let spec = PutSpec::new(&key, "application/pdf", body.len() as u64).with_checksum_sha256(&sum);
    let up = b.sign_spec(&spec).await;
    assert!(
        up.headers
            .contains(&("x-amz-checksum-sha256".to_owned(), sum.to_string()))
    );

    // One flipped byte, same length.
    let (status, _, text) = send(&up, &[], &flipped).await;
    assert_eq!((status, code(&text)), (400, "BadDigest"), "{text}");
    assert_eq!(b.stored(&key), None);

    // The header changed to match the other bytes: the signature breaks.
    let other = sha256(&flipped);
    let (status, _, text) = send(&up, &[("x-amz-checksum-sha256", other.as_str())], &flipped).await;
    assert_eq!(
        (status, code(&text)),
        (403, "SignatureDoesNotMatch"),
        "{text}"
    );
    // Left out, it is a signed header missing.
    let mut without = up.clone();
    without
        .headers
        .retain(|(k, _)| k != "x-amz-checksum-sha256");
    assert_eq!(send(&without, &[], body).await.0, 403);
    assert_eq!(b.stored(&key), None);

    // The right bytes.
    let (status, etag, text) = send(&up, &[], body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(etag.as_deref(), Some(md5_hex(body).as_str()));
    assert_eq!(b.stored(&key).unwrap(), body);
}

#[tokio::test]
async fn large_bodies_are_hashed_as_they_stream() {
    let b = bucket().await;
    // Several chunks on the wire: a mismatch in the last one still counts.
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let sum = sha256(&body);
    let key = new_key("big.bin");
    let spec = PutSpec::new(&key, "application/octet-stream", body.len() as u64)
        .with_checksum_sha256(&sum);
    let up = b.sign_spec(&spec).await;
    let mut flipped = body.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x80;
    let (status, _, text) = send(&up, &[], &flipped).await;
    assert_eq!((status, code(&text)), (400, "BadDigest"), "{text}");
    assert_eq!(b.stored(&key), None);
    assert_eq!(send(&up, &[], &body).await.0, 200);
    assert_eq!(b.stored(&key).unwrap(), body);
}

#[tokio::test]
async fn a_checksum_the_url_does_not_sign_is_refused() {
    let b = bucket().await;
    let body = b"abc";
    let (key, up) = b.sign("plain.txt", "text/plain", 3).await;
    // Even the right one: real S3 refuses unsigned x-amz-* headers.
    let sum = sha256(body);
    let (status, _, text) = send(&up, &[("x-amz-checksum-sha256", sum.as_str())], body).await;
    assert_eq!((status, code(&text)), (403, "AccessDenied"), "{text}");
    assert_eq!(b.stored(&key), None);
}

#[tokio::test]
async fn a_malformed_checksum_is_400_even_when_signed() {
    // Only the SDK's header-signed PutObject can sign a malformed value
    // (the presigner's type cannot hold one).
    let b = bucket().await;
    let key = new_key("bad-sum.txt");
    let err = b
        .client()
        .put_object()
        .bucket("uploads")
        .key(key.as_str())
        .checksum_sha256("not-a-sha256")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"abc"))
        .send()
        .await
        .unwrap_err();
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(400), "{err:?}");
    assert_eq!(b.stored(&key), None);
}
