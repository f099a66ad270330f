//! The usage ledger: one record per settled upload, for billing and export.
//!
//! Appending is idempotent: a record is identified by its user, the time
//! its object landed and its object key, and appending the same record
//! again stores nothing and says so ([`Appended::Duplicate`]). The time is
//! the object's creation time, which every delivery of the same storage
//! event carries unchanged, so a redelivered event is recognised here even
//! after the quota state has forgotten it (see `docs/design/settlement.md`).

use std::future::Future;

use crate::clock::Timestamp;
use crate::domain::UserId;
use crate::store::StoreError;

/// One settled upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRecord {
    /// Who uploaded it.
    pub user: UserId,
    /// The object key.
    pub key: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its content type.
    pub content_type: String,
    /// The caller's quota tier when it was granted, if any.
    pub tier: Option<String>,
    /// When the object landed (its creation time).
    pub landed_at: Timestamp,
}

/// What [`Ledger::append`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// The record is new and now stored.
    New,
    /// The same record (user, time, key) was already stored; nothing changed.
    Duplicate,
}

/// Which records to read: both bounds optional, `since` inclusive and
/// `until` exclusive; `user` narrows to one user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageQuery {
    /// Records that landed at or after this time.
    pub since: Option<Timestamp>,
    /// Records that landed before this time.
    pub until: Option<Timestamp>,
    /// Only this user's records.
    pub user: Option<UserId>,
}

/// Where a page of records ends, to continue after it. Opaque to callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(pub Vec<u8>);

/// A page of records in time order (then key order), and where the next
/// page starts (`None` after the last).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsagePage {
    /// The records, in time order.
    pub records: Vec<UsageRecord>,
    /// Pass to the next call to continue; `None` when there is no more.
    pub next: Option<Cursor>,
}

/// Durable storage of usage records.
pub trait Ledger: Send + Sync + 'static {
    /// Stores `record` unless the same record is stored already.
    fn append(
        &self,
        record: &UsageRecord,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send;

    /// Up to `limit` records matching `query`, in time order, starting
    /// after `after` (a cursor from a previous page of the same query).
    fn page(
        &self,
        query: &UsageQuery,
        after: Option<&Cursor>,
        limit: usize,
    ) -> impl Future<Output = Result<UsagePage, StoreError>> + Send;
}
