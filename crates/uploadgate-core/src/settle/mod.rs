//! Settlement: paying for what lands (`UPLOADGATE_CHARGE=upload`).
//!
//! A grant is a reservation in the user's state; the object landing in the
//! bucket settles it, and a reservation nothing settled by its URL's expiry
//! plus a grace period is released at the user's next decision. The full
//! design, with the order of the steps and why, is in
//! `docs/design/settlement.md`.
//!
//! This module holds the ports the settle step talks through, so that every
//! event source (the embedded bucket of `uploadgate serve`, the settle
//! function on an SQS queue of S3 events, `uploadgate settle` polling that
//! queue) runs the same code: [`HandOff`] (where accepted uploads go) and
//! [`Quarantine`] (marking an object that does not match); and that code,
//! the [`Settler`], which settles one landed object against its user's
//! state with the [`Ledger`](crate::usage::Ledger) and those ports.

use std::error::Error as StdError;
use std::future::Future;

pub(crate) mod key;
mod settler;
#[cfg(test)]
mod tests;

pub use settler::{NotUploadMode, Settler};

use crate::clock::Timestamp;
use crate::domain::UserId;

/// An object that landed in the bucket, as its event source saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Landed {
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its stored content type, if it has one.
    pub content_type: Option<String>,
    /// Its stored SHA-256 checksum, if it has one.
    pub checksum_sha256: Option<[u8; 32]>,
    /// When it was created: the storage event's time, the same on every
    /// delivery of that event.
    pub created_at: Timestamp,
}

/// The message an accepted upload is handed off with (to the processing
/// app's queue). Its JSON form is documented in the README.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// Who uploaded it.
    pub user: UserId,
    /// Its size in bytes.
    pub size: u64,
    /// Its content type.
    pub content_type: String,
    /// Its SHA-256, when the URL bound one.
    pub checksum_sha256: Option<[u8; 32]>,
    /// When the URL was granted.
    pub granted_at: Timestamp,
    /// When it was settled.
    pub settled_at: Timestamp,
    /// The caller's quota tier when it was granted, if any.
    pub tier: Option<String>,
    /// Whether it landed after its reservation was released (charged
    /// anyway, past the limit if need be).
    pub late: bool,
}

/// Why an object was quarantined instead of handed off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuarantineReason {
    /// The key is not one the gate hands out (`<prefix><user>/<uuid>/<name>`).
    ForeignKey,
    /// No reservation matches it, and it cannot be a late one.
    NoReservation,
    /// Its size is not the reserved size.
    Size {
        /// Reserved.
        expected: u64,
        /// Landed.
        actual: u64,
    },
    /// Its content type is not the reserved one.
    ContentType,
    /// The URL bound a checksum and the object's is another (or none).
    Checksum,
}

impl QuarantineReason {
    /// A short tag value naming the reason (for object tags and metrics).
    pub fn as_str(&self) -> &'static str {
        match self {
            QuarantineReason::ForeignKey => "foreign-key",
            QuarantineReason::NoReservation => "no-reservation",
            QuarantineReason::Size { .. } => "size",
            QuarantineReason::ContentType => "content-type",
            QuarantineReason::Checksum => "checksum",
        }
    }
}

/// A failure of an outside service the settle step calls (a queue, the
/// bucket). Transient ones are retried by the event source.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct PortError {
    /// What failed, for logs (no secrets).
    pub what: String,
    /// Whether trying again later may succeed.
    pub transient: bool,
    /// The cause.
    #[source]
    pub source: Option<Box<dyn StdError + Send + Sync>>,
}

/// Where accepted uploads go.
pub trait HandOff: Send + Sync + 'static {
    /// Sends one accepted upload. At-least-once: consumers dedupe on `key`.
    fn send(&self, accepted: &Accepted) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Marks an object that must not be processed.
pub trait Quarantine: Send + Sync + 'static {
    /// Marks the object (for S3: an object tag), keeping it for inspection.
    fn quarantine(
        &self,
        bucket: &str,
        key: &str,
        reason: &QuarantineReason,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// What settling one landed object came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It matched its reservation (or, `late`, arrived after the
    /// reservation was released and was charged anyway): recorded in the
    /// ledger and handed off.
    Accepted {
        /// Whether it arrived after its reservation was released.
        late: bool,
    },
    /// This event was settled before; nothing was done again.
    Duplicate,
    /// It was quarantined (tagged, not handed off).
    Quarantined(QuarantineReason),
}

/// Why settling an object failed. The event source retries it later
/// (redelivery is safe: every step is idempotent).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettleError {
    /// The quota state could not be read or written.
    #[error(transparent)]
    Limiter(#[from] crate::limiter::LimiterError),
    /// The usage ledger failed.
    #[error("usage ledger: {0}")]
    Ledger(#[source] crate::store::StoreError),
    /// The hand-off queue or the bucket failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// The user's state kept changing under every attempt to commit (other
    /// writers kept winning); nothing is lost, the retry settles it.
    #[error("the user's quota state stayed contended")]
    Contention,
}

impl SettleError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SettleError::Limiter(e) => e.is_transient(),
            SettleError::Ledger(e) => e.is_transient(),
            SettleError::Port(e) => e.transient,
            SettleError::Contention => true,
        }
    }
}

/// Settles landed objects: what every event source calls.
pub trait Settle: Send + Sync + 'static {
    /// Settles one object (see `docs/design/settlement.md`).
    fn settle(&self, landed: &Landed) -> impl Future<Output = Result<Verdict, SettleError>> + Send;
}
