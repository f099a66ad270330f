//! The S3 operations this crate's code makes possible, with the IAM action
//! that authorises each.
//!
//! The presigner calls nothing: it signs URLs locally. But a presigned URL
//! carries its signer's rights, and S3 authorises the request made with it
//! as the operation it names, so the signer's role needs that operation's
//! action. The local bucket (feature `local`) is a server, not an S3 client,
//! and adds nothing here.

use uploadgate_core::Operation;

/// Every S3 operation a URL signed by [`Presigner`](crate::Presigner) can
/// perform: a `PutObject` (the URL's `x-id`), authorised by `s3:PutObject`
/// on the object. Tests below hold the signed URLs to this list.
pub const OPERATIONS: &[Operation] = &[Operation::new(
    env!("CARGO_PKG_NAME"),
    "s3",
    "PutObject",
    "s3:PutObject",
)];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, SystemTime};

    use aws_config::{BehaviorVersion, Region, SdkConfig};
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use uploadgate_core::{ObjectKey, UserId};

    use super::OPERATIONS;
    use crate::Presigner;

    /// A presigner for real S3 (no endpoint override): signing is local, so
    /// no request leaves the process.
    fn presigner() -> Presigner {
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            )))
            .build();
        Presigner::from_sdk_config(&sdk, "uploads".into(), Duration::from_secs(300))
    }

    /// The operation a presigned S3 URL performs: its `x-id` parameter.
    fn x_id(url: &str) -> Vec<&str> {
        let query = url.split_once('?').map_or("", |(_, q)| q);
        query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("x-id="))
            .collect()
    }

    #[tokio::test]
    async fn every_signed_url_performs_a_declared_operation() {
        let key = ObjectKey::for_upload(
            "uploads/",
            &UserId::parse("alice").unwrap(),
            "0f1e2d3c",
            "a.pdf",
        );
        let now = SystemTime::now();
        let direct = presigner();
        let via_sdk = presigner().always_via_sdk();
        let declared: Vec<&str> = OPERATIONS.iter().map(|o| o.name()).collect();
        for p in [&direct, &via_sdk] {
            let up = p
                .presign_put(&key, "application/pdf", 1000, now)
                .await
                .unwrap();
            assert!(up.url.starts_with("https://"), "{}", up.url);
            assert_eq!(x_id(&up.url), declared, "{}", up.url);
        }
        for op in OPERATIONS {
            assert_eq!(
                (op.package(), op.service(), op.feature()),
                ("uploadgate-s3", "s3", None)
            );
            assert_eq!(op.permission(), format!("s3:{}", op.name()));
        }
    }
}
