//! The process-local ledger, for tests and for a gate that keeps no state.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use super::{Appended, Cursor, Ledger, Resume, UsagePage, UsageQuery, UsageRecord};
use crate::store::StoreError;

/// Records by `(landed_at, key, user)`: the page order, so a page is one
/// range of the map. A user's page walks the whole range and skips the
/// others' records, which is fine for what a process keeps in memory.
type Records = BTreeMap<(u64, String, String), UsageRecord>;

/// A ledger in memory. Correct under any concurrency within the process;
/// records are lost on exit.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    records: Mutex<Records>,
}

impl MemoryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the ledger holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        // Records are inserted whole, so a poisoned map is still valid.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Ledger for MemoryLedger {
    async fn append(&self, record: &UsageRecord) -> Result<Appended, StoreError> {
        let id = (
            record.landed_at.0,
            record.key.clone(),
            record.user.as_str().to_owned(),
        );
        let mut map = self.lock();
        if map.contains_key(&id) {
            return Ok(Appended::Duplicate);
        }
        map.insert(id, record.clone());
        Ok(Appended::New)
    }

    async fn page(
        &self,
        query: &UsageQuery,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<UsagePage, StoreError> {
        let lower = match query.resume(after)? {
            Resume::Done => return Ok(UsagePage::default()),
            Resume::From(t) => Bound::Included((t.0, String::new(), String::new())),
            Resume::After(p) => Bound::Excluded((p.landed_at.0, p.key, p.user.as_str().to_owned())),
        };
        let map = self.lock();
        let records = map
            .range((lower, Bound::Unbounded))
            .map(|(_, r)| r)
            .take_while(|r| query.contains(r.landed_at))
            .filter(|r| query.matches(r))
            .take(limit.max(1).saturating_add(1))
            .cloned()
            .collect();
        Ok(UsagePage::from_overfetch(records, limit))
    }
}
