//! Settlement from S3 events (`UPLOADGATE_CHARGE=upload` on S3).
//!
//! S3 sends `s3:ObjectCreated:*` for the gate's key prefix to an SQS queue
//! (with a dead-letter queue). Whatever consumes that queue (`uploadgate
//! settle --queue-url`, `uploadgate serve` with target `s3`, the settle
//! Lambda function) runs the same code, in this crate, around the core's
//! [`Settler`](uploadgate_core::settle::Settler):
//!
//! * [`events`]: a message body read as an S3 event notification (the
//!   shapes are `aws_lambda_events`'), keys decoded.
//! * [`objects`]: what the object really is (`HeadObject` with its
//!   checksum), and the quarantine tag (`PutObjectTagging`).
//! * [`handoff`]: the accepted message, on the processing app's queue.
//! * [`queue`]: one message settled as a whole; the long-polling
//!   [`Poller`](queue::Poller), deleting what is done.
//!
//! [`OPERATIONS`] lists every call, with its IAM action: the settle
//! function's role is derived from it, and the gate's role never gets it
//! (the gate function does not link this crate).

pub mod events;
pub mod handoff;
pub mod objects;
pub mod queue;
#[cfg(feature = "test-util")]
pub mod test_util;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use uploadgate_core::Operation;
use uploadgate_core::settle::PortError;

pub use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
pub use events::{Created, Notification};
pub use handoff::{AcceptedMessage, SqsHandOff};
pub use objects::{QUARANTINE_TAG, S3Objects};
pub use queue::{MessageError, Observer, Polled, Poller, Settlement, settle_batch};

/// Every AWS operation this crate performs, with the IAM action that
/// authorises it. `tests/it` runs each path against the emulators.
pub const OPERATIONS: &[Operation] = &[
    // `S3Objects::landed`: size, content type, checksum. HeadObject is
    // authorised as s3:GetObject on the object.
    op("s3", "HeadObject", "s3:GetObject"),
    // `S3Objects::quarantine`.
    op("s3", "PutObjectTagging", "s3:PutObjectTagging"),
    // `SqsHandOff::send`, on the accepted queue.
    op("sqs", "SendMessage", "sqs:SendMessage"),
    // `Poller::poll_once`, on the settle queue (the settle function's event
    // source mapping needs the same two, plus sqs:GetQueueAttributes).
    op("sqs", "ReceiveMessage", "sqs:ReceiveMessage"),
    op("sqs", "DeleteMessageBatch", "sqs:DeleteMessage"),
];

const fn op(service: &'static str, name: &'static str, action: &'static str) -> Operation {
    Operation::new(env!("CARGO_PKG_NAME"), service, name, action)
}

/// Error codes of S3 that trying again does not change.
pub(crate) const S3_REFUSALS: &[&str] = &[
    "AccessDenied",
    "NoSuchBucket",
    "InvalidBucketName",
    "InvalidTag",
];
/// Error codes of SQS that trying again does not change.
pub(crate) const SQS_REFUSALS: &[&str] = &[
    "AccessDenied",
    "NonExistentQueue",
    "QueueDoesNotExist",
    "InvalidAddress",
];

/// A failed AWS call as a [`PortError`]: an error code in `refusals` (the
/// caller is not allowed, the resource does not exist) is not transient,
/// everything else may be.
pub(crate) fn port_error<E, R>(
    service: &str,
    refusals: &[&str],
    call: &str,
    e: SdkError<E, R>,
) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (transient, what) = match &e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("unknown");
            let refused = refusals.iter().any(|r| code.contains(r));
            (!refused, format!("{service} {call}: {code}"))
        }
        _ => (true, format!("{service} {call}: {e}")),
    };
    PortError {
        what,
        transient,
        source: Some(Box::new(e)),
    }
}
