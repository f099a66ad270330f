use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::presigning::PresigningConfig;
use uploadgate_core::ObjectKey;

use crate::LocalCredentials;

/// Why a URL could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PresignError {
    /// The presigning configuration was refused (e.g. a lifetime over a week).
    #[error("invalid presigning configuration")]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The SDK failed to sign (e.g. no credentials could be loaded).
    #[error("could not sign the upload URL")]
    Sign(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A signed, single-use upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresignedUpload {
    /// The presigned URL.
    pub url: String,
    /// Headers the client must send exactly (lower-case names).
    pub headers: Vec<(String, String)>,
    /// When the URL stops working.
    pub expires_at: SystemTime,
}

/// Signs upload URLs for one bucket. Build it once at start-up; signing is
/// local computation with cached credentials.
#[derive(Clone, Debug)]
pub struct Presigner {
    client: aws_sdk_s3::Client,
    bucket: String,
    ttl: Duration,
}

impl Presigner {
    /// Signs with the standard AWS configuration: region, credentials chain,
    /// and endpoint (`AWS_ENDPOINT_URL_S3`) as aws-config loads them.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, bucket: String, ttl: Duration) -> Self {
        Self::build(aws_sdk_s3::config::Builder::from(sdk), bucket, ttl)
    }

    /// Signs for the embedded local bucket at `endpoint` (path-style).
    pub fn for_local(
        endpoint: &str,
        creds: &LocalCredentials,
        bucket: String,
        ttl: Duration,
    ) -> Self {
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(Region::new(LocalCredentials::REGION))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                creds.access_key.clone(),
                creds.secret_key.clone(),
                None,
                None,
                "uploadgate-local",
            ));
        Self::build(conf, bucket, ttl)
    }

    fn build(conf: aws_sdk_s3::config::Builder, bucket: String, ttl: Duration) -> Self {
        let conf = conf
            // Some SDK releases add default checksums to presigned PUTs,
            // which browsers cannot satisfy (BadDigest).
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .build();
        Presigner {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket,
            ttl,
        }
    }

    /// The bucket URLs are signed for.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// How long a URL lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs a `PUT` of exactly `size` bytes of `content_type` to `key`,
    /// valid from `now` for the configured lifetime, and only if the object
    /// does not exist yet.
    pub async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        size: u64,
        now: SystemTime,
    ) -> Result<PresignedUpload, PresignError> {
        let config = PresigningConfig::builder()
            .start_time(now)
            .expires_in(self.ttl)
            .build()
            .map_err(|e| PresignError::Config(Box::new(e)))?;
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .if_none_match("*")
            .presigned(config)
            .await
            .map_err(|e| PresignError::Sign(Box::new(e)))?;
        let headers = req
            .headers()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .filter(|(k, _)| k != "host")
            .collect();
        Ok(PresignedUpload {
            url: req.uri().to_owned(),
            headers,
            expires_at: now + self.ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn signs_length_type_and_if_none_match() {
        let creds = LocalCredentials {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        };
        let p = Presigner::for_local(
            "http://127.0.0.1:9000",
            &creds,
            "uploads".into(),
            Duration::from_secs(300),
        );
        let key = ObjectKey::for_upload(
            "uploads/",
            &uploadgate_core::UserId::parse("alice").unwrap(),
            "u1",
            "a b.pdf",
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let up = p
            .presign_put(&key, "application/pdf", 12345, now)
            .await
            .unwrap();
        assert!(
            up.url
                .starts_with("http://127.0.0.1:9000/uploads/uploads/alice/u1/a_b.pdf?"),
            "{}",
            up.url
        );
        assert!(up.url.contains("X-Amz-Expires=300"), "{}", up.url);
        let signed = up
            .url
            .split("X-Amz-SignedHeaders=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        assert_eq!(
            signed,
            "content-length%3Bcontent-type%3Bhost%3Bif-none-match"
        );
        let mut h = up.headers.clone();
        h.sort();
        assert_eq!(
            h,
            vec![
                ("content-length".into(), "12345".into()),
                ("content-type".into(), "application/pdf".into()),
                ("if-none-match".into(), "*".into()),
            ]
        );
        assert_eq!(up.expires_at, now + Duration::from_secs(300));
        // Same inputs, same time: the same URL (signing is deterministic).
        assert_eq!(
            p.presign_put(&key, "application/pdf", 12345, now)
                .await
                .unwrap()
                .url,
            up.url
        );
    }
}
