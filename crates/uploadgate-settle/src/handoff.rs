//! The hand-off: each accepted upload becomes one message on the processing
//! app's queue (`UPLOADGATE_ACCEPTED_QUEUE_URL`), which that app consumes
//! instead of listening to the bucket, so it only ever sees metered,
//! verified uploads.
//!
//! The message body is JSON, version 1 (README, "Pay for what lands"):
//!
//! ```json
//! {"version": 1, "bucket": "uploads", "key": "uploads/alice/0193…/a.pdf",
//!  "user": "alice", "size": 1024, "contentType": "application/pdf",
//!  "checksumSha256": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=",
//!  "grantedAt": "2026-12-02T06:00:00Z",
//!  "settledAt": "2026-12-02T06:00:03.412Z", "tier": null, "late": false}
//! ```
//!
//! Delivery is at least once (a settle step that crashes after sending
//! sends again when the event is redelivered): consumers dedupe on `key`.

use base64::Engine as _;
use serde::Serialize;
use uploadgate_core::Timestamp;
use uploadgate_core::settle::{Accepted, HandOff, PortError};

/// The accepted message's JSON (see the module documentation).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedMessage {
    /// The format's version: 1.
    pub version: u32,
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// Who uploaded it (the verified user id).
    pub user: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its content type.
    pub content_type: String,
    /// Its SHA-256 in base64, when the URL bound one.
    pub checksum_sha256: Option<String>,
    /// When the URL was granted (RFC 3339, UTC, milliseconds).
    pub granted_at: String,
    /// When it was settled.
    pub settled_at: String,
    /// The caller's quota tier when it was granted.
    pub tier: Option<String>,
    /// Whether it landed after its reservation had been handed back (and
    /// was charged anyway).
    pub late: bool,
}

/// A time as the API writes it (RFC 3339, UTC, milliseconds when there are
/// any); the milliseconds themselves past year 9999.
fn rfc3339(at: Timestamp) -> String {
    at.to_rfc3339()
        .unwrap_or_else(|| at.as_millis().to_string())
}

impl From<&Accepted> for AcceptedMessage {
    fn from(a: &Accepted) -> Self {
        AcceptedMessage {
            version: 1,
            bucket: a.bucket.clone(),
            key: a.key.clone(),
            user: a.user.as_str().to_owned(),
            size: a.size,
            content_type: a.content_type.clone(),
            checksum_sha256: a
                .checksum_sha256
                .map(|c| base64::engine::general_purpose::STANDARD.encode(c)),
            granted_at: rfc3339(a.granted_at),
            settled_at: rfc3339(a.settled_at),
            tier: a.tier.clone(),
            late: a.late,
        }
    }
}

/// Sends accepted uploads to an SQS queue.
#[derive(Clone, Debug)]
pub struct SqsHandOff {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsHandOff {
    /// Hands off to the queue at `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        SqsHandOff {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

impl HandOff for SqsHandOff {
    async fn send(&self, accepted: &Accepted) -> Result<(), PortError> {
        let body =
            serde_json::to_string(&AcceptedMessage::from(accepted)).map_err(|e| PortError {
                what: "hand-off: cannot write the message".into(),
                transient: false,
                source: Some(Box::new(e)),
            })?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| crate::port_error("SQS", crate::SQS_REFUSALS, "SendMessage", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use uploadgate_core::UserId;

    use super::*;

    #[test]
    fn the_message_is_the_documented_json() {
        let a = Accepted {
            bucket: "uploads".into(),
            key: "uploads/alice/0193c1de-9f00-7000-8000-000000000001/a.pdf".into(),
            user: UserId::parse("alice").unwrap(),
            size: 1024,
            content_type: "application/pdf".into(),
            checksum_sha256: Some([7; 32]),
            granted_at: Timestamp(1_796_191_200_000),
            settled_at: Timestamp(1_796_191_203_412),
            tier: Some("pro".into()),
            late: false,
        };
        let json = serde_json::to_value(AcceptedMessage::from(&a)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": 1,
                "bucket": "uploads",
                "key": "uploads/alice/0193c1de-9f00-7000-8000-000000000001/a.pdf",
                "user": "alice",
                "size": 1024,
                "contentType": "application/pdf",
                "checksumSha256": "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
                "grantedAt": "2026-12-02T06:00:00Z",
                "settledAt": "2026-12-02T06:00:03.412Z",
                "tier": "pro",
                "late": false,
            })
        );
    }
}
