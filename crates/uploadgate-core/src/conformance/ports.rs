//! Recording stand-ins for the settle step's ports, for the settlement
//! scenarios (the ledger is the real
//! [`MemoryLedger`](crate::usage::MemoryLedger)): a hand-off that keeps
//! what it was sent and can be told to fail or to let another writer in
//! first, and a quarantine that keeps what it tagged.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::settle::{Accepted, HandOff, PortError, Quarantine, QuarantineReason};
use crate::usage::{Ledger, UsageQuery, UsageRecord};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The unique part of an object key granted at `at`, told apart by `n`:
/// a UUIDv7's bytes (as a reservation records them) and its text (as the
/// key carries it).
pub fn uuid_v7(at: crate::Timestamp, n: u8) -> ([u8; 16], String) {
    let mut u = [n; 16];
    u[..6].copy_from_slice(&at.as_millis().to_be_bytes()[2..]);
    u[6] = 0x70;
    u[8] = 0x80 | (n & 0x3f);
    let text = crate::settle::key::hyphenated(&u);
    (u, text)
}

/// Every record of `ledger`, in page order.
pub async fn all_records<L: Ledger>(ledger: &L) -> Vec<UsageRecord> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = ledger
            .page(&UsageQuery::default(), after.as_ref(), 100)
            .await;
        let page = page.unwrap_or_else(|e| panic!("ledger page: {e}"));
        out.extend(page.records);
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
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
