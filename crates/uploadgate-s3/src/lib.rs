//! The S3 side of uploadgate.
//!
//! * [`Presigner`] turns an admitted upload into an S3 presigned `PUT` URL.
//!   The URL signs `Content-Length` (the exact declared size), `Content-Type`
//!   and `If-None-Match: *`, so it cannot carry another size or type and
//!   creates the object at most once; a [`PutSpec`] can also sign the body's
//!   SHA-256 (`x-amz-checksum-sha256`, kept a header) and a
//!   `Content-Disposition`. It signs with `aws-sigv4` directly
//!   (the SDK's own signer, S3's settings): aws-sdk-s3's `presigned()` costs
//!   several times more per URL. Where the bucket lives is learnt from
//!   aws-sdk-s3 itself, and tests hold both to the identical URL. The same
//!   code signs for real S3 (standard AWS configuration) and for the local
//!   target.
//! * [`LocalBucket`] is an S3-compatible bucket on loopback for
//!   `uploadgate serve`, built on [s3s], which verifies SigV4 (presigned
//!   query signatures, expiry, every signed header) exactly as S3 does; this
//!   crate adds what s3s leaves out (the SHA-256 checksum, refusing unsigned
//!   headers that would change the object), stores and serves the bytes, and
//!   creates each object atomically so `If-None-Match: *` holds even under
//!   concurrent PUTs. Behind the default feature `local`; the Lambda
//!   function builds without it.

#[cfg(feature = "local")]
mod local;
mod operations;
mod presign;

#[cfg(feature = "local")]
pub use local::{
    Landings, LocalBucket, LocalCredentials, LocalServeError, LocalService, QUARANTINE_TAG,
};
pub use operations::OPERATIONS;
pub use presign::{
    ChecksumSha256, InvalidChecksum, PresignError, PresignedUpload, Presigner, PutSpec,
};
