//! What one presigned `PUT` pins: the signing input, and the SHA-256
//! checksum as a type that only holds what S3 accepts.

use std::fmt;
use std::str::FromStr;

use uploadgate_core::ObjectKey;

/// The upload one URL allows: this key, exactly `size` bytes of
/// `content_type`, and optionally the body's SHA-256 and the object's
/// `Content-Disposition`. Every part becomes a signed header, so the client
/// cannot send anything else.
///
/// ```
/// # use uploadgate_core::{ObjectKey, UserId};
/// # use uploadgate_s3::{ChecksumSha256, PutSpec};
/// # let key = ObjectKey::for_upload("uploads/", &UserId::parse("alice").unwrap(), "u1", "a.pdf");
/// let sha = ChecksumSha256::parse("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=").unwrap();
/// let spec = PutSpec::new(&key, "application/pdf", 0)
///     .with_checksum_sha256(&sha)
///     .with_content_disposition("attachment");
/// # let _ = spec;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutSpec<'a> {
    /// Where the object goes.
    pub key: &'a ObjectKey,
    /// Its `Content-Type`.
    pub content_type: &'a str,
    /// Its exact length in bytes (`Content-Length`).
    pub size: u64,
    /// The body's SHA-256, sent as `x-amz-checksum-sha256`: S3 hashes the
    /// body and refuses other bytes with 400 `BadDigest`.
    pub checksum_sha256: Option<&'a ChecksumSha256>,
    /// The object's `Content-Disposition`, as S3 will serve it.
    pub content_disposition: Option<&'a str>,
}

impl<'a> PutSpec<'a> {
    /// A `PUT` of exactly `size` bytes of `content_type` to `key`, with
    /// neither a checksum nor a `Content-Disposition`.
    pub fn new(key: &'a ObjectKey, content_type: &'a str, size: u64) -> Self {
        PutSpec {
            key,
            content_type,
            size,
            checksum_sha256: None,
            content_disposition: None,
        }
    }

    /// Also binds the body to `checksum`.
    #[must_use]
    pub fn with_checksum_sha256(self, checksum: &'a ChecksumSha256) -> Self {
        PutSpec {
            checksum_sha256: Some(checksum),
            ..self
        }
    }

    /// Also fixes the object's `Content-Disposition`.
    #[must_use]
    pub fn with_content_disposition(self, disposition: &'a str) -> Self {
        PutSpec {
            content_disposition: Some(disposition),
            ..self
        }
    }
}

/// A SHA-256 digest in the form S3's `x-amz-checksum-sha256` takes: standard
/// base64 (with padding) of exactly 32 bytes. Only the canonical encoding
/// parses, so equal digests have equal text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ChecksumSha256 {
    digest: [u8; 32],
    base64: String,
}

/// A value that is not the base64 of a SHA-256 digest.
#[derive(Debug, thiserror::Error)]
#[error("not a SHA-256 checksum: expected the standard base64 of exactly 32 bytes (44 characters)")]
#[non_exhaustive]
pub struct InvalidChecksum;

impl ChecksumSha256 {
    /// Parses base64 text, such as a client's declared checksum.
    pub fn parse(text: &str) -> Result<Self, InvalidChecksum> {
        let bytes = aws_smithy_types::base64::decode(text).map_err(|_| InvalidChecksum)?;
        let digest: [u8; 32] = bytes.try_into().map_err(|_| InvalidChecksum)?;
        let checksum = ChecksumSha256::from_digest(digest);
        // Rejects what a lenient decoder lets through (stray bits in the
        // last character, missing padding): S3 compares the text.
        if checksum.base64 == text {
            Ok(checksum)
        } else {
            Err(InvalidChecksum)
        }
    }

    /// The checksum of a computed digest.
    pub fn from_digest(digest: [u8; 32]) -> Self {
        ChecksumSha256 {
            digest,
            base64: aws_smithy_types::base64::encode(digest),
        }
    }

    /// The base64 text, as sent in `x-amz-checksum-sha256`.
    pub fn as_str(&self) -> &str {
        &self.base64
    }

    /// The 32 digest bytes.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

impl FromStr for ChecksumSha256 {
    type Err = InvalidChecksum;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChecksumSha256::parse(s)
    }
}

impl fmt::Display for ChecksumSha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base64)
    }
}

impl fmt::Debug for ChecksumSha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ChecksumSha256").field(&self.base64).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256 of the empty string.
    const EMPTY: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    #[test]
    fn parses_exactly_the_canonical_base64_of_32_bytes() {
        let c = ChecksumSha256::parse(EMPTY).unwrap();
        assert_eq!(c.as_str(), EMPTY);
        assert_eq!(c.to_string(), EMPTY);
        assert_eq!(c.digest()[..4], [0xe3, 0xb0, 0xc4, 0x42]);
        assert_eq!(ChecksumSha256::from_digest(*c.digest()), c);
        assert_eq!(EMPTY.parse::<ChecksumSha256>().unwrap(), c);

        let sixteen = aws_smithy_types::base64::encode([7u8; 16]);
        let thirty_three = aws_smithy_types::base64::encode([7u8; 33]);
        for bad in [
            "",
            "not base64!",
            // 31 and 33 bytes, and an MD5's 16.
            &aws_smithy_types::base64::encode([7u8; 31]),
            &thirty_three,
            &sixteen,
            // No padding; URL-safe alphabet; surrounding space.
            EMPTY.trim_end_matches('='),
            &EMPTY.replace('+', "-").replace('/', "_"),
            &format!(" {EMPTY}"),
            &format!("{EMPTY}\n"),
            // Same bytes but non-zero unused bits in the last character.
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=",
            // Hex instead of base64.
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(ChecksumSha256::parse(bad).is_err(), "{bad:?}");
        }
    }
}
