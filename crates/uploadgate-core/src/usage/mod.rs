//! The usage ledger: one record per settled upload, for billing and export.
//!
//! Appending is idempotent: a record is identified by its user, the time
//! its object landed and its object key, and appending the same record
//! again stores nothing and says so ([`Appended::Duplicate`]). The time is
//! the object's creation time, which every delivery of the same storage
//! event carries unchanged, so a redelivered event is recognised here even
//! after the quota state has forgotten it (see `docs/design/settlement.md`).
//!
//! Every ledger pages in one order, by [`Position`]: time, then key, then
//! user. A cursor is the position of the last record of a page, so a page
//! never depends on what a backend remembers between calls, and records
//! appended while a caller pages are seen if they sort after its cursor.
//! Backends share the cursor's encoding and the page's assembly
//! ([`UsageQuery::resume`], [`UsagePage::from_overfetch`]), and the
//! conformance suite holds them to the same answers.

use std::future::Future;

use crate::clock::Timestamp;
use crate::domain::UserId;
use crate::store::StoreError;

mod memory;

pub use memory::MemoryLedger;

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
    /// Stores `record` unless the same record is stored already. A record
    /// with the same user, time and key but other fields is the same
    /// record: the stored one is kept.
    fn append(
        &self,
        record: &UsageRecord,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send;

    /// Up to `limit` records matching `query`, in time order, starting
    /// after `after` (a cursor from a previous page of the same query).
    /// A `limit` of 0 is read as 1. `next` is `None` exactly when no
    /// record of the query follows the page. A cursor no ledger made is
    /// [`StoreError::BadCursor`].
    fn page(
        &self,
        query: &UsageQuery,
        after: Option<&Cursor>,
        limit: usize,
    ) -> impl Future<Output = Result<UsagePage, StoreError>> + Send;
}

/// A shared ledger is a ledger.
impl<L: Ledger> Ledger for std::sync::Arc<L> {
    fn append(
        &self,
        record: &UsageRecord,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send {
        L::append(self, record)
    }

    fn page(
        &self,
        query: &UsageQuery,
        after: Option<&Cursor>,
        limit: usize,
    ) -> impl Future<Output = Result<UsagePage, StoreError>> + Send {
        L::page(self, query, after, limit)
    }
}

/// A record's place in the order of every page: time, then key, then user
/// (the derived order, by field). It is also the record's identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// When the object landed.
    pub landed_at: Timestamp,
    /// The object key.
    pub key: String,
    /// Whose record it is.
    pub user: UserId,
}

impl Position {
    /// The position of `record`.
    pub fn of(record: &UsageRecord) -> Self {
        Position {
            landed_at: record.landed_at,
            key: record.key.clone(),
            user: record.user.clone(),
        }
    }
}

/// First byte of every cursor: the layout of what follows.
const CURSOR_FORMAT: u8 = 1;

impl Cursor {
    /// The cursor that continues after `position`:
    /// `1 | landed_at (8 bytes BE) | user length (1 byte) | user | key`.
    pub fn after(position: &Position) -> Self {
        let user = position.user.as_str().as_bytes();
        let mut out = Vec::with_capacity(10 + user.len() + position.key.len());
        out.push(CURSOR_FORMAT);
        out.extend_from_slice(&position.landed_at.0.to_be_bytes());
        // A user id is at most 128 bytes (`UserId::MAX_LEN`).
        out.push(u8::try_from(user.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(user);
        out.extend_from_slice(position.key.as_bytes());
        Cursor(out)
    }

    /// The position this cursor continues after.
    pub fn position(&self) -> Result<Position, StoreError> {
        let (&format, rest) = self.0.split_first().ok_or(StoreError::BadCursor)?;
        let (at, rest) = rest.split_first_chunk::<8>().ok_or(StoreError::BadCursor)?;
        let (&len, rest) = rest.split_first().ok_or(StoreError::BadCursor)?;
        if format != CURSOR_FORMAT || rest.len() < usize::from(len) {
            return Err(StoreError::BadCursor);
        }
        let (user, key) = rest.split_at(usize::from(len));
        let user = std::str::from_utf8(user).map_err(|_| StoreError::BadCursor)?;
        Ok(Position {
            landed_at: Timestamp(u64::from_be_bytes(*at)),
            key: String::from_utf8(key.to_vec()).map_err(|_| StoreError::BadCursor)?,
            user: UserId::parse(user).map_err(|_| StoreError::BadCursor)?,
        })
    }
}

/// Where a page starts, as [`UsageQuery::resume`] works it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    /// At the first record that landed at or after this time.
    From(Timestamp),
    /// At the first record after this position (which lies in the range).
    After(Position),
    /// Nowhere: no record of the query is left.
    Done,
}

impl UsageQuery {
    /// The first time in range (`since`, or the epoch).
    pub fn start(&self) -> Timestamp {
        self.since.unwrap_or_default()
    }

    /// Whether `at` is inside the range.
    pub fn contains(&self, at: Timestamp) -> bool {
        at >= self.start() && self.until.is_none_or(|u| at < u)
    }

    /// Whether `record` is one of the query's.
    pub fn matches(&self, record: &UsageRecord) -> bool {
        self.contains(record.landed_at) && self.user.as_ref().is_none_or(|u| *u == record.user)
    }

    /// Where a page after `after` starts. A cursor before the range (from
    /// a query with an earlier `since`) starts at `since`; one at or past
    /// `until` leaves nothing, as does an empty range.
    pub fn resume(&self, after: Option<&Cursor>) -> Result<Resume, StoreError> {
        let position = after.map(Cursor::position).transpose()?;
        if self.until.is_some_and(|u| u <= self.start()) {
            return Ok(Resume::Done);
        }
        Ok(match position {
            None => Resume::From(self.start()),
            Some(p) if p.landed_at < self.start() => Resume::From(self.start()),
            Some(p) if self.contains(p.landed_at) => Resume::After(p),
            Some(_) => Resume::Done,
        })
    }
}

impl UsagePage {
    /// A page of `limit` records (0 read as 1) from `records`, which hold
    /// the page's records in order and, if more follow, at least one more:
    /// a backend reads `limit + 1` so that `next` is `None` exactly when
    /// nothing follows.
    pub fn from_overfetch(mut records: Vec<UsageRecord>, limit: usize) -> Self {
        let limit = limit.max(1);
        if records.len() <= limit {
            return UsagePage {
                records,
                next: None,
            };
        }
        records.truncate(limit);
        let next = records.last().map(|r| Cursor::after(&Position::of(r)));
        UsagePage { records, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(user: &str, at: u64, key: &str) -> Position {
        Position {
            landed_at: Timestamp(at),
            key: key.to_owned(),
            user: UserId::parse(user).unwrap_or_else(|e| panic!("{e}")),
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        for p in [
            position("alice", 0, ""),
            position("bob@example.com", u64::MAX, "uploads/bob/é#x/a b.pdf"),
            position(&"u".repeat(UserId::MAX_LEN), 7, "k"),
        ] {
            assert_eq!(Cursor::after(&p).position().ok(), Some(p));
        }
        let good = Cursor::after(&position("alice", 5, "k")).0;
        let mut wrong_format = good.clone();
        wrong_format[0] = 2;
        let mut bad_user = good.clone();
        bad_user[10] = b'/';
        for bad in [vec![], good[..9].to_vec(), wrong_format, bad_user, {
            let mut long = good[..9].to_vec();
            long.push(200);
            long
        }] {
            assert!(
                matches!(Cursor(bad.clone()).position(), Err(StoreError::BadCursor)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn positions_order_by_time_then_key_then_user() {
        let mut v = vec![
            position("b", 2, "a"),
            position("a", 2, "b"),
            position("c", 1, "z"),
            position("a", 2, "a"),
        ];
        v.sort();
        assert_eq!(
            v,
            [
                position("c", 1, "z"),
                position("a", 2, "a"),
                position("b", 2, "a"),
                position("a", 2, "b"),
            ]
        );
    }

    #[test]
    fn resume_clamps_the_cursor_to_the_range() {
        let q = UsageQuery {
            since: Some(Timestamp(10)),
            until: Some(Timestamp(20)),
            user: None,
        };
        let at = |t| Cursor::after(&position("a", t, "k"));
        assert_eq!(q.resume(None).ok(), Some(Resume::From(Timestamp(10))));
        assert_eq!(
            q.resume(Some(&at(5))).ok(),
            Some(Resume::From(Timestamp(10)))
        );
        assert_eq!(
            q.resume(Some(&at(10))).ok(),
            Some(Resume::After(position("a", 10, "k")))
        );
        assert_eq!(q.resume(Some(&at(20))).ok(), Some(Resume::Done));
        let empty = UsageQuery {
            since: Some(Timestamp(20)),
            ..q.clone()
        };
        assert_eq!(empty.resume(None).ok(), Some(Resume::Done));
        assert!(matches!(
            q.resume(Some(&Cursor(vec![9]))),
            Err(StoreError::BadCursor)
        ));
    }
}
