//! For the fuzz targets in `fuzz/` only: hidden from the docs, not part of
//! the API, free to change with them.
//!
//! It runs the steps `POST /v1/uploads` takes on a body, one at a time and
//! without a router, so a target can check each step's result against its
//! invariants. The steps themselves stay private to the crate; this only
//! copies their results into plain structs.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use uploadgate_core::FakeClock;

use crate::error::ApiError;
use crate::gate::{GateConfig, IdentityMode};
use crate::identity::{Caller, Identity};
use crate::request::{UploadRequest, parse};
use crate::routes::upload_spec;

pub use crate::request::MAX_MESSAGE_BYTES;

/// The fields of an upload body as the handler parses them; `None` where
/// the body leaves a field out (or sends `null`).
#[derive(Debug)]
pub struct UploadFields {
    /// `filename`, as sent.
    pub filename: Option<String>,
    /// `contentType`, trimmed and lower case.
    pub content_type: Option<String>,
    /// `size`, in bytes.
    pub size: Option<u64>,
    /// `checksumSha256`, base64.
    pub checksum: Option<String>,
}

/// An upload body checked against a gate: what the handler charges and
/// signs a URL for.
#[derive(Debug)]
pub struct ValidUpload {
    /// The declared file name (`file` if none was given), unsanitized.
    pub filename: String,
    /// The declared content type, one of the gate's.
    pub content_type: String,
    /// The declared size in bytes.
    pub size: u64,
    /// The declared SHA-256 (`checksumSha256`), base64, when bound.
    pub checksum: Option<String>,
}

/// Parses a body as `POST /v1/uploads` does (`request::parse`).
pub fn parse_upload(body: &[u8]) -> Result<UploadFields, ApiError> {
    let r: UploadRequest = parse(body)?;
    Ok(UploadFields {
        filename: r.filename.map(|f| f.0),
        content_type: r.content_type.map(|c| c.0),
        size: r.size.map(|s| s.0),
        checksum: r.checksum_sha256.map(|c| c.0.as_str().to_owned()),
    })
}

/// Parses a body and checks it against `gate` and its default policy, as
/// `POST /v1/uploads` does before it charges anything.
pub fn validate_upload(gate: &GateConfig, body: &[u8]) -> Result<ValidUpload, ApiError> {
    let r: UploadRequest = parse(body)?;
    let spec = upload_spec(gate, &gate.policy, &r)?;
    Ok(ValidUpload {
        filename: spec.filename,
        content_type: spec.content_type,
        size: spec.size,
        checksum: spec.checksum.map(|c| c.as_str().to_owned()),
    })
}

/// The caller of a `POST` with this body in `body` identity mode.
///
/// # Panics
///
/// If identification waits for anything: in body mode it never does.
pub fn body_caller(body: &[u8]) -> Result<Caller, ApiError> {
    let identity = Identity::new(&IdentityMode::Body, Arc::new(FakeClock::default()));
    let mut request = http::Request::new(());
    *request.method_mut() = http::Method::POST;
    let (parts, ()) = request.into_parts();
    let caller = pin!(identity.caller(&parts, Some(body)));
    match caller.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => panic!("identification in body mode waited"),
    }
}
