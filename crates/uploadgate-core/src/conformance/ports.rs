//! Recording stand-ins for the settle step's ports, for the settlement
//! scenarios: a ledger that keeps records in memory (test support only; the
//! real ledgers live with their stores), a hand-off that keeps what it was
//! sent and can be told to fail or to let another writer in first, and a
//! quarantine that keeps what it tagged.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::settle::{Accepted, HandOff, PortError, Quarantine, QuarantineReason};
use crate::store::StoreError;
use crate::usage::{Appended, Cursor, Ledger, UsagePage, UsageQuery, UsageRecord};
use crate::{Timestamp, UserId};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records by what identifies them: (user, landed at, key).
type Records = BTreeMap<(UserId, Timestamp, String), UsageRecord>;

/// Records in memory. Clones share them.
#[derive(Clone, Debug, Default)]
pub struct TestLedger(Arc<Mutex<Records>>);

impl TestLedger {
    /// Every record, by user, time and key.
    pub fn records(&self) -> Vec<UsageRecord> {
        lock(&self.0).values().cloned().collect()
    }
}

impl Ledger for TestLedger {
    async fn append(&self, record: &UsageRecord) -> Result<Appended, StoreError> {
        let id = (record.user.clone(), record.landed_at, record.key.clone());
        let mut records = lock(&self.0);
        if records.contains_key(&id) {
            return Ok(Appended::Duplicate);
        }
        records.insert(id, record.clone());
        Ok(Appended::New)
    }

    /// The cursor is how many matching records came before (records are
    /// only added here in time order by the scenarios).
    async fn page(
        &self,
        query: &UsageQuery,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<UsagePage, StoreError> {
        let mut matching: Vec<UsageRecord> = lock(&self.0)
            .values()
            .filter(|r| query.user.as_ref().is_none_or(|u| *u == r.user))
            .filter(|r| query.since.is_none_or(|t| r.landed_at >= t))
            .filter(|r| query.until.is_none_or(|t| r.landed_at < t))
            .cloned()
            .collect();
        matching.sort_by(|a, b| (a.landed_at, &a.key).cmp(&(b.landed_at, &b.key)));
        let skip = after
            .and_then(|c| <[u8; 8]>::try_from(c.0.as_slice()).ok())
            .map_or(0, |b| u64::from_be_bytes(b) as usize);
        let records: Vec<UsageRecord> = matching.iter().skip(skip).take(limit).cloned().collect();
        let end = skip + records.len();
        let next = (end < matching.len()).then(|| Cursor((end as u64).to_be_bytes().to_vec()));
        Ok(UsagePage { records, next })
    }
}

/// Another writer's turn, run once inside the next hand-off.
pub type Interlude = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Keeps every accepted upload it is sent. Clones share them.
#[derive(Clone, Default)]
pub struct TestHandOff {
    sent: Arc<Mutex<Vec<Accepted>>>,
    failures: Arc<AtomicU32>,
    interlude: Arc<Mutex<Option<Interlude>>>,
}

impl std::fmt::Debug for TestHandOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHandOff")
            .field("sent", &self.sent())
            .finish_non_exhaustive()
    }
}

impl TestHandOff {
    /// What it was sent, in order.
    pub fn sent(&self) -> Vec<Accepted> {
        lock(&self.sent).clone()
    }

    /// The next `n` sends fail, transiently, sending nothing.
    pub fn fail_next(&self, n: u32) {
        self.failures.store(n, Ordering::SeqCst);
    }

    /// Runs `interlude` during the next send, before it succeeds: another
    /// writer slipping in between a settle's plan and its commit.
    pub fn before_next(&self, interlude: Interlude) {
        *lock(&self.interlude) = Some(interlude);
    }
}

impl HandOff for TestHandOff {
    async fn send(&self, accepted: &Accepted) -> Result<(), PortError> {
        let interlude = lock(&self.interlude).take();
        if let Some(interlude) = interlude {
            interlude.await;
        }
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(PortError {
                what: "hand-off queue unavailable".into(),
                transient: true,
                source: None,
            });
        }
        lock(&self.sent).push(accepted.clone());
        Ok(())
    }
}

/// Keeps every (key, reason) it tagged. Clones share them.
#[derive(Clone, Debug, Default)]
pub struct TestQuarantine(Arc<Mutex<Vec<(String, QuarantineReason)>>>);

impl TestQuarantine {
    /// What it tagged, in order.
    pub fn tagged(&self) -> Vec<(String, QuarantineReason)> {
        lock(&self.0).clone()
    }
}

impl Quarantine for TestQuarantine {
    async fn quarantine(
        &self,
        _bucket: &str,
        key: &str,
        reason: &QuarantineReason,
    ) -> Result<(), PortError> {
        lock(&self.0).push((key.to_owned(), reason.clone()));
        Ok(())
    }
}
