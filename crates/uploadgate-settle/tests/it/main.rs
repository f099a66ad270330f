//! The settle path against LocalStack's S3 and SQS (an independent S3 that
//! verifies presigned URLs, checksums and conditional writes, and sends its
//! event notifications to a queue): a grant reserved by the core limiter,
//! the object PUT through its presigned URL, S3's notification on the
//! queue, and this crate settling it.

// Test helpers panic on purpose: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod settle;
