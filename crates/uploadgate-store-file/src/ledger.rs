//! The usage ledger in the store's own database file, so `uploadgate serve`
//! keeps everything in one data directory.
//!
//! Two tables, written together in one transaction:
//!
//! * `usage`: `(landed_at, key, user)` -> the rest of the record. Its key
//!   order is the page order of every ledger (time, key, user), so a read
//!   over all users is one range scan from `since` to `until`.
//! * `usage_by_user`: `(user, landed_at, key)` -> nothing: an index, so one
//!   user's page (`GET /v1/usage`, every call) is a range scan of that
//!   user's records plus a point read of each, instead of a walk over
//!   every user's records that grows with the whole ledger. It costs a
//!   second small insert per settled upload, which is rare next to
//!   decisions.
//!
//! redb orders a tuple element by element and a `&str` by its bytes, the
//! order of `String` and of DynamoDB's strings. A record's value is
//! `format (1 byte) | bytes (8, LE) | content type length (4, LE) |
//! content type | tier`, where the tier is `0`, or `1` and its text.
//!
//! Appends do not go through the writer thread: each is a write
//! transaction of its own, committed (fsync) before it answers. redb runs
//! one write transaction at a time, so an append waits for a group commit
//! in flight and the other way round; appends come one per settled upload.

use std::ops::Bound;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use uploadgate_core::usage::{
    Appended, Cursor, Ledger, Resume, UsagePage, UsageQuery, UsageRecord,
};
use uploadgate_core::{StoreError, Timestamp, UserId};

use crate::FileStore;
use crate::record::backend;

/// `(landed_at, key, user)` -> the record's other fields.
pub(crate) const USAGE: TableDefinition<(u64, &str, &str), &[u8]> = TableDefinition::new("usage");
/// `(user, landed_at, key)`: each user's records, in page order.
pub(crate) const USAGE_BY_USER: TableDefinition<(&str, u64, &str), ()> =
    TableDefinition::new("usage_by_user");

/// The layout of a record's value.
const VALUE_FORMAT: u8 = 1;

/// The usage ledger of a [`FileStore`]'s database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct FileLedger {
    db: Arc<Database>,
}

impl FileStore {
    /// The usage ledger kept in this store's database file. Its tables are
    /// created when the store is opened.
    pub fn ledger(&self) -> FileLedger {
        FileLedger {
            db: Arc::clone(&self.db),
        }
    }
}

impl FileLedger {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?
    }
}

fn encode(record: &UsageRecord) -> Vec<u8> {
    let ct = record.content_type.as_bytes();
    let tier = record.tier.as_deref().map(str::as_bytes);
    let mut out = Vec::with_capacity(14 + ct.len() + tier.map_or(0, <[u8]>::len));
    out.push(VALUE_FORMAT);
    out.extend_from_slice(&record.bytes.to_le_bytes());
    // A content type longer than 4 GiB cannot reach here (HTTP headers).
    out.extend_from_slice(&u32::try_from(ct.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(ct);
    match tier {
        None => out.push(0),
        Some(t) => {
            out.push(1);
            out.extend_from_slice(t);
        }
    }
    out
}

/// A value's fields, still as bytes.
struct Value<'a> {
    bytes: u64,
    content_type: &'a [u8],
    tier: Option<&'a [u8]>,
}

fn split(raw: &[u8]) -> Option<Value<'_>> {
    let (&format, rest) = raw.split_first()?;
    let (bytes, rest) = rest.split_first_chunk::<8>()?;
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    let (content_type, rest) = rest.split_at_checked(len)?;
    let tier = match rest.split_first()? {
        (0, []) => None,
        (1, t) => Some(t),
        _ => return None,
    };
    (format == VALUE_FORMAT).then_some(Value {
        bytes: u64::from_le_bytes(*bytes),
        content_type,
        tier,
    })
}

fn decode(at: u64, key: &str, user: &str, raw: &[u8]) -> Result<UsageRecord, StoreError> {
    let corrupt = |why: &str| StoreError::Corrupt {
        key: format!("usage {user} {at} {key}"),
        source: why.to_owned().into(),
    };
    let v = split(raw).ok_or_else(|| corrupt("malformed usage record"))?;
    let text = |b: &[u8]| {
        String::from_utf8(b.to_vec()).map_err(|_| corrupt("content type or tier is not UTF-8"))
    };
    Ok(UsageRecord {
        user: UserId::parse(user).map_err(|e| corrupt(&e.to_string()))?,
        key: key.to_owned(),
        bytes: v.bytes,
        content_type: text(v.content_type)?,
        tier: v.tier.map(text).transpose()?,
        landed_at: Timestamp(at),
    })
}

impl Ledger for FileLedger {
    async fn append(&self, record: &UsageRecord) -> Result<Appended, StoreError> {
        let record = record.clone();
        self.blocking(move |db| {
            let (at, key, user) = (
                record.landed_at.0,
                record.key.as_str(),
                record.user.as_str(),
            );
            let tx = db.begin_write().map_err(backend)?;
            {
                let mut usage = tx.open_table(USAGE).map_err(backend)?;
                if usage.get((at, key, user)).map_err(backend)?.is_some() {
                    // Dropping the transaction aborts it: nothing written.
                    return Ok(Appended::Duplicate);
                }
                usage
                    .insert((at, key, user), encode(&record).as_slice())
                    .map_err(backend)?;
                let mut by_user = tx.open_table(USAGE_BY_USER).map_err(backend)?;
                by_user.insert((user, at, key), ()).map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(Appended::New)
        })
        .await
    }

    async fn page(
        &self,
        query: &UsageQuery,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<UsagePage, StoreError> {
        let start = query.resume(after)?;
        let query = query.clone();
        let want = limit.max(1).saturating_add(1);
        let records = self
            .blocking(move |db| {
                let tx = db.begin_read().map_err(backend)?;
                let usage = tx.open_table(USAGE).map_err(backend)?;
                match &query.user {
                    None => all_users(&usage, &query, &start, want),
                    Some(user) => {
                        let by_user = tx.open_table(USAGE_BY_USER).map_err(backend)?;
                        one_user(&usage, &by_user, user, &query, &start, want)
                    }
                }
            })
            .await?;
        Ok(UsagePage::from_overfetch(records, limit))
    }
}

/// Up to `want` records of every user, from `start` on.
fn all_users(
    usage: &impl ReadableTable<(u64, &'static str, &'static str), &'static [u8]>,
    query: &UsageQuery,
    start: &Resume,
    want: usize,
) -> Result<Vec<UsageRecord>, StoreError> {
    let lower = match start {
        Resume::Done => return Ok(vec![]),
        Resume::From(t) => Bound::Included((t.0, "", "")),
        Resume::After(p) => Bound::Excluded((p.landed_at.0, p.key.as_str(), p.user.as_str())),
    };
    let mut out = Vec::new();
    for entry in usage.range((lower, Bound::Unbounded)).map_err(backend)? {
        let (k, v) = entry.map_err(backend)?;
        let (at, key, user) = k.value();
        if !query.contains(Timestamp(at)) || out.len() == want {
            break;
        }
        out.push(decode(at, key, user, v.value())?);
    }
    Ok(out)
}

/// Up to `want` records of `user`, from `start` on, through the index.
fn one_user(
    usage: &impl ReadableTable<(u64, &'static str, &'static str), &'static [u8]>,
    by_user: &impl ReadableTable<(&'static str, u64, &'static str), ()>,
    user: &UserId,
    query: &UsageQuery,
    start: &Resume,
    want: usize,
) -> Result<Vec<UsageRecord>, StoreError> {
    let u = user.as_str();
    let lower = match start {
        Resume::Done => return Ok(vec![]),
        Resume::From(t) => Bound::Included((u, t.0, "")),
        Resume::After(p) => Bound::Excluded((u, p.landed_at.0, p.key.as_str())),
    };
    let mut out = Vec::new();
    for entry in by_user.range((lower, Bound::Unbounded)).map_err(backend)? {
        let (k, _) = entry.map_err(backend)?;
        let (owner, at, key) = k.value();
        if owner != u || !query.contains(Timestamp(at)) || out.len() == want {
            break;
        }
        let raw = usage
            .get((at, key, u))
            .map_err(backend)?
            .ok_or_else(|| StoreError::Corrupt {
                key: format!("usage {u} {at} {key}"),
                source: "indexed for its user but not stored".into(),
            })?;
        out.push(decode(at, key, u, raw.value())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tier: Option<&str>) -> UsageRecord {
        UsageRecord {
            user: UserId::parse("alice").unwrap(),
            key: "uploads/alice/k".into(),
            bytes: 1 << 40,
            content_type: "image/png".into(),
            tier: tier.map(str::to_owned),
            landed_at: Timestamp(1_800_000_000_000),
        }
    }

    #[test]
    fn values_round_trip_and_malformed_ones_are_corrupt() {
        for r in [record(None), record(Some("")), record(Some("pro"))] {
            let raw = encode(&r);
            let back = decode(r.landed_at.0, &r.key, r.user.as_str(), &raw).unwrap();
            assert_eq!(back, r);
        }
        let raw = encode(&record(None));
        let mut wrong_format = raw.clone();
        wrong_format[0] = 2;
        let mut long_ct = raw.clone();
        long_ct[9] = 0xff;
        let mut trailing = raw.clone();
        trailing.push(7);
        for bad in [vec![], raw[..12].to_vec(), wrong_format, long_ct, trailing] {
            let err = decode(1, "k", "alice", &bad).unwrap_err();
            assert!(
                matches!(&err, StoreError::Corrupt { key, .. } if key == "usage alice 1 k"),
                "{bad:?}: {err:?}"
            );
        }
    }

    /// Records and both tables survive a reopen of the file.
    #[tokio::test]
    async fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let r = record(Some("pro"));
        {
            let store = FileStore::open(dir.path()).unwrap();
            assert_eq!(store.ledger().append(&r).await.unwrap(), Appended::New);
        }
        let ledger = FileStore::open(dir.path()).unwrap().ledger();
        assert_eq!(ledger.append(&r).await.unwrap(), Appended::Duplicate);
        let mine = UsageQuery {
            user: Some(r.user.clone()),
            ..UsageQuery::default()
        };
        for q in [UsageQuery::default(), mine] {
            let page = ledger.page(&q, None, 10).await.unwrap();
            assert_eq!((page.records, page.next), (vec![r.clone()], None));
        }
    }

    /// An index entry whose record is missing is reported, not skipped.
    #[tokio::test]
    async fn an_index_entry_without_its_record_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let tx = store.db.begin_write().unwrap();
        tx.open_table(USAGE_BY_USER)
            .unwrap()
            .insert(("alice", 5, "k"), ())
            .unwrap();
        tx.commit().unwrap();
        let q = UsageQuery {
            user: Some(UserId::parse("alice").unwrap()),
            ..UsageQuery::default()
        };
        let err = store.ledger().page(&q, None, 10).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { key, .. } if key == "usage alice 5 k"),
            "{err:?}"
        );
    }
}
