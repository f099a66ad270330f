//! What the coalescing tests drive the limiter with: a store whose
//! compare-and-swaps wait at a gate the test opens, so requests are known to
//! queue behind a batch in flight; an "other process" that writes just
//! before a chosen compare-and-swap; a runtime whose sleeps only advance a
//! `FakeClock`. Nothing waits on wall-clock time.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::super::*;
use crate::{CasOutcome, FakeClock, MemoryStore, StoreError, Timestamp, UserId, Versioned, Write};

pub(super) const T0: Timestamp = Timestamp(1_800_000_000_000);

pub(super) type Other = Limiter<Arc<MemoryStore>, FakeClock>;

/// A memory store whose compare-and-swaps wait for a permit and are
/// recorded, and before which another process may write.
pub(super) struct Gated {
    pub(super) inner: Arc<MemoryStore>,
    pub(super) gate: Semaphore,
    pub(super) cas: Mutex<Vec<HashSet<StateKey>>>,
    /// Another process and its request, and the compare-and-swaps (from 1)
    /// it writes just before.
    pub(super) other: Mutex<Option<(Arc<Other>, Subjects)>>,
    pub(super) meddle_at: Mutex<HashSet<usize>>,
    pub(super) meddle_always: AtomicBool,
    /// Keys asked to confirm a denial.
    pub(super) refreshed: Mutex<Vec<Vec<StateKey>>>,
    /// A key whose record cannot be decoded.
    pub(super) corrupt: Mutex<Option<StateKey>>,
}

impl Gated {
    pub(super) fn new(open: bool) -> Self {
        Gated {
            inner: Arc::new(MemoryStore::new()),
            gate: Semaphore::new(if open { Semaphore::MAX_PERMITS } else { 0 }),
            cas: Mutex::default(),
            other: Mutex::default(),
            meddle_at: Mutex::default(),
            meddle_always: AtomicBool::new(false),
            refreshed: Mutex::default(),
            corrupt: Mutex::default(),
        }
    }

    pub(super) fn open(&self, n: usize) {
        self.gate.add_permits(n);
    }

    pub(super) fn cas_calls(&self) -> usize {
        self.cas.lock().unwrap().len()
    }

    pub(super) fn cas_keys(&self) -> Vec<HashSet<StateKey>> {
        self.cas.lock().unwrap().clone()
    }

    /// Another process, on the same state, charging `who` before the
    /// compare-and-swaps numbered `at` (or before every one).
    pub(super) fn meddle(
        &self,
        policy: &Arc<Policy>,
        clock: &FakeClock,
        who: Subjects,
        at: &[usize],
    ) {
        let other = Limiter::new(Arc::clone(policy), Arc::clone(&self.inner), clock.clone());
        *self.other.lock().unwrap() = Some((Arc::new(other), who));
        self.meddle_at.lock().unwrap().extend(at);
        self.meddle_always.store(at.is_empty(), Ordering::SeqCst);
    }
}

impl Store for Gated {
    async fn load(&self, k: &[StateKey]) -> Result<Vec<Option<Versioned>>, StoreError> {
        let corrupt = self.corrupt.lock().unwrap().clone();
        if let Some(bad) = corrupt.filter(|c| k.contains(c)) {
            return Err(StoreError::Corrupt {
                key: bad.as_str().to_owned(),
                source: "planted".into(),
            });
        }
        self.inner.load(k).await
    }

    async fn refresh_for_denial(
        &self,
        k: &[StateKey],
    ) -> Result<Option<Vec<Option<Versioned>>>, StoreError> {
        self.refreshed.lock().unwrap().push(k.to_vec());
        Ok(None)
    }

    async fn compare_and_swap(&self, w: Vec<Write>) -> Result<CasOutcome, StoreError> {
        let n = {
            let mut cas = self.cas.lock().unwrap();
            cas.push(w.iter().map(|w| w.key.clone()).collect());
            cas.len()
        };
        self.gate.acquire().await.unwrap().forget();
        let meddles = self.meddle_always.load(Ordering::SeqCst)
            || self.meddle_at.lock().unwrap().contains(&n);
        let other = self.other.lock().unwrap().clone();
        if let (true, Some((other, who))) = (meddles, other) {
            assert!(other.consume(&who, 1).await.unwrap().allowed);
        }
        self.inner.compare_and_swap(w).await
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.inner.purge_expired(now).await
    }
}

/// Sleeps advance the fake clock and return at once; spawns go to tokio.
pub(super) struct TestRuntime {
    pub(super) clock: FakeClock,
    pub(super) sleeps: Mutex<Vec<Duration>>,
}

impl Runtime for TestRuntime {
    fn spawn(&self, task: Task) {
        tokio::spawn(task);
    }

    fn sleep(&self, d: Duration) -> Task {
        self.sleeps.lock().unwrap().push(d);
        self.clock.advance(d);
        Box::pin(async {})
    }
}

pub(super) type Lim = Limiter<Arc<Gated>, FakeClock>;

pub(super) struct Setup {
    pub(super) limiter: Arc<Lim>,
    pub(super) store: Arc<Gated>,
    pub(super) runtime: Arc<TestRuntime>,
    pub(super) policy: Arc<Policy>,
    pub(super) clock: FakeClock,
}

pub(super) fn setup(policy: &str, open: bool, runtime: bool, backoff: Backoff) -> Setup {
    let clock = FakeClock::new(T0);
    let policy: Arc<Policy> = Arc::new(policy.parse().unwrap());
    let store = Arc::new(Gated::new(open));
    let rt = Arc::new(TestRuntime {
        clock: clock.clone(),
        sleeps: Mutex::default(),
    });
    let mut limiter =
        Limiter::new(Arc::clone(&policy), Arc::clone(&store), clock.clone()).with_backoff(backoff);
    if runtime {
        limiter = limiter.with_runtime(rt.clone());
    }
    Setup {
        limiter: Arc::new(limiter),
        store,
        runtime: rt,
        policy,
        clock,
    }
}

pub(super) fn who(user: &str, ip: u8) -> Subjects {
    Subjects {
        user: UserId::parse(user).unwrap(),
        ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, ip))),
    }
}

pub(super) fn key_set(keys: &[StateKey]) -> HashSet<StateKey> {
    keys.iter().cloned().collect()
}

pub(super) fn ip_key(ip: u8) -> StateKey {
    StateKey::ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, ip)))
}

pub(super) fn user_key(u: &str) -> StateKey {
    StateKey::user(&UserId::parse(u).unwrap())
}

pub(super) fn consume(l: &Arc<Lim>, s: Subjects) -> JoinHandle<Result<Decision, LimiterError>> {
    let l = Arc::clone(l);
    tokio::spawn(async move { l.consume(&s, 1).await })
}

/// Lets the spawned tasks run until `cond` holds (bounded; no clock).
pub(super) async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

/// A request holding the gate, and `users` queued behind it on one ip.
pub(super) async fn queue_behind_a_lead(
    s: &Setup,
    users: &[&str],
) -> (
    JoinHandle<Result<Decision, LimiterError>>,
    Vec<JoinHandle<Result<Decision, LimiterError>>>,
) {
    let lead = consume(&s.limiter, who("lead", 1));
    until("the lead reaches the store", || s.store.cas_calls() == 1).await;
    let rest: Vec<_> = users
        .iter()
        .map(|u| consume(&s.limiter, who(u, 1)))
        .collect();
    let n = users.len();
    until("all queue", || s.limiter.core.queue.waiting() == n).await;
    (lead, rest)
}

pub(super) async fn remaining(s: &Setup, who: &Subjects) -> Vec<u64> {
    let q = s.limiter.peek(who).await.unwrap();
    q.limits.iter().map(|l| l.remaining).collect()
}
