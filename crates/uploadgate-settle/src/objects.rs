//! The bucket's side of settling, on S3: what an object really is
//! (`HeadObject`, with its stored checksum), and the quarantine mark (an
//! object tag).
//!
//! The event says which key was created and how large it is, but not its
//! content type or checksum, so the settle step asks S3 itself: one
//! `HeadObject` with `ChecksumMode=ENABLED` per object. An object deleted
//! since its event is left alone (its reservation is released after the
//! URL's TTL plus the grace, as if nothing had landed).

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{ChecksumMode, Tag, Tagging};
use base64::Engine as _;
use uploadgate_core::settle::{Landed, PortError, Quarantine, QuarantineReason};

use crate::events::Created;

/// The tag that marks a quarantined object: `uploadgate-quarantine=<reason>`
/// (the embedded bucket of `uploadgate serve` uses the same one).
pub const QUARANTINE_TAG: &str = "uploadgate-quarantine";

/// Objects in S3, through one client.
#[derive(Clone, Debug)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
}

impl S3Objects {
    /// Objects through `client`.
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Objects { client }
    }

    /// What landed for `created`: its stored size, content type and
    /// SHA-256; `None` if the object is gone.
    pub async fn landed(&self, created: &Created) -> Result<Option<Landed>, PortError> {
        let head = self
            .client
            .head_object()
            .bucket(&created.bucket)
            .key(&created.key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        let head = match head {
            Ok(h) => h,
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() => return Ok(None),
            Err(e) => return Err(crate::port_error("S3", crate::S3_REFUSALS, "HeadObject", e)),
        };
        let size = head
            .content_length()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(created.size);
        // A checksum S3 cannot give as 32 bytes (a multipart upload's
        // checksum of checksums) is no checksum of the object: the settle
        // step then quarantines an upload whose URL bound one.
        let checksum_sha256 = head.checksum_sha256().and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .and_then(|d| <[u8; 32]>::try_from(d).ok())
        });
        Ok(Some(Landed {
            bucket: created.bucket.clone(),
            key: created.key.clone(),
            size,
            content_type: head.content_type().map(str::to_owned),
            checksum_sha256,
            created_at: created.at,
        }))
    }

    /// The object's tags (for tests and operators).
    pub async fn tags(&self, bucket: &str, key: &str) -> Result<Vec<(String, String)>, PortError> {
        let out = self
            .client
            .get_object_tagging()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| crate::port_error("S3", crate::S3_REFUSALS, "GetObjectTagging", e))?;
        Ok(out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect())
    }
}

impl Quarantine for S3Objects {
    async fn quarantine(
        &self,
        bucket: &str,
        key: &str,
        reason: &QuarantineReason,
    ) -> Result<(), PortError> {
        let tag = Tag::builder()
            .key(QUARANTINE_TAG)
            .value(reason.as_str())
            .build()
            .map_err(|e| PortError {
                what: "PutObjectTagging: cannot build the tag".into(),
                transient: false,
                source: Some(Box::new(e)),
            })?;
        let tagging = Tagging::builder()
            .tag_set(tag)
            .build()
            .map_err(|e| PortError {
                what: "PutObjectTagging: cannot build the tag set".into(),
                transient: false,
                source: Some(Box::new(e)),
            })?;
        match self
            .client
            .put_object_tagging()
            .bucket(bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Gone since: nothing is left to mark.
            Err(SdkError::ServiceError(e)) if is_no_such_key(e.err().code()) => Ok(()),
            Err(e) => Err(crate::port_error(
                "S3",
                crate::S3_REFUSALS,
                "PutObjectTagging",
                e,
            )),
        }
    }
}

fn is_no_such_key(code: Option<&str>) -> bool {
    matches!(code, Some("NoSuchKey" | "NotFound"))
}
