//! Coalescing, driven step by step: a store whose compare-and-swaps wait at
//! a gate the test opens, so requests are known to queue behind a batch in
//! flight; an "other process" that writes just before a chosen
//! compare-and-swap; a runtime whose sleeps only advance a `FakeClock`.
//! Nothing waits on wall-clock time.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::*;
use crate::{CasOutcome, FakeClock, MemoryStore, StoreError, Timestamp, UserId, Versioned, Write};

const T0: Timestamp = Timestamp(1_800_000_000_000);

type Other = Limiter<Arc<MemoryStore>, FakeClock>;

/// A memory store whose compare-and-swaps wait for a permit and are
/// recorded, and before which another process may write.
struct Gated {
    inner: Arc<MemoryStore>,
    gate: Semaphore,
    cas: Mutex<Vec<HashSet<StateKey>>>,
    /// Another process and its request, and the compare-and-swaps (from 1)
    /// it writes just before.
    other: Mutex<Option<(Arc<Other>, Subjects)>>,
    meddle_at: Mutex<HashSet<usize>>,
    meddle_always: AtomicBool,
    /// Keys asked to confirm a denial.
    refreshed: Mutex<Vec<Vec<StateKey>>>,
}

impl Gated {
    fn new(open: bool) -> Self {
        Gated {
            inner: Arc::new(MemoryStore::new()),
            gate: Semaphore::new(if open { Semaphore::MAX_PERMITS } else { 0 }),
            cas: Mutex::default(),
            other: Mutex::default(),
            meddle_at: Mutex::default(),
            meddle_always: AtomicBool::new(false),
            refreshed: Mutex::default(),
        }
    }

    fn open(&self, n: usize) {
        self.gate.add_permits(n);
    }

    fn cas_calls(&self) -> usize {
        self.cas.lock().unwrap().len()
    }

    fn cas_keys(&self) -> Vec<HashSet<StateKey>> {
        self.cas.lock().unwrap().clone()
    }

    /// Another process, on the same state, charging `who` before the
    /// compare-and-swaps numbered `at` (or before every one).
    fn meddle(&self, policy: &Arc<Policy>, clock: &FakeClock, who: Subjects, at: &[usize]) {
        let other = Limiter::new(Arc::clone(policy), Arc::clone(&self.inner), clock.clone());
        *self.other.lock().unwrap() = Some((Arc::new(other), who));
        self.meddle_at.lock().unwrap().extend(at);
        self.meddle_always.store(at.is_empty(), Ordering::SeqCst);
    }
}

impl Store for Gated {
    async fn load(&self, k: &[StateKey]) -> Result<Vec<Option<Versioned>>, StoreError> {
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
struct TestRuntime {
    clock: FakeClock,
    sleeps: Mutex<Vec<Duration>>,
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

type Lim = Limiter<Arc<Gated>, FakeClock>;

struct Setup {
    limiter: Arc<Lim>,
    store: Arc<Gated>,
    runtime: Arc<TestRuntime>,
    policy: Arc<Policy>,
    clock: FakeClock,
}

fn setup(policy: &str, open: bool, runtime: bool, backoff: Backoff) -> Setup {
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

fn who(user: &str, ip: u8) -> Subjects {
    Subjects {
        user: UserId::parse(user).unwrap(),
        ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, ip))),
    }
}

fn key_set(keys: &[StateKey]) -> HashSet<StateKey> {
    keys.iter().cloned().collect()
}

fn ip_key(ip: u8) -> StateKey {
    StateKey::ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, ip)))
}

fn user_key(u: &str) -> StateKey {
    StateKey::user(&UserId::parse(u).unwrap())
}

fn consume(l: &Arc<Lim>, s: Subjects) -> JoinHandle<Result<Decision, LimiterError>> {
    let l = Arc::clone(l);
    tokio::spawn(async move { l.consume(&s, 1).await })
}

/// Lets the spawned tasks run until `cond` holds (bounded; no clock).
async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

/// A request holding the gate, and `users` queued behind it on one ip.
async fn queue_behind_a_lead(
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

async fn remaining(s: &Setup, who: &Subjects) -> Vec<u64> {
    let q = s.limiter.peek(who).await.unwrap();
    q.limits.iter().map(|l| l.remaining).collect()
}

#[tokio::test]
async fn a_batch_applies_its_jobs_in_arrival_order_with_one_compare_and_swap() {
    let s = setup(
        "uploads=user:5/1h;burst=ip:10/1h",
        false,
        false,
        Backoff::DEFAULT,
    );
    let (lead, rest) = queue_behind_a_lead(&s, &["a", "b", "c", "d"]).await;
    s.store.open(10);
    let d = lead.await.unwrap().unwrap();
    assert_eq!((d.allowed, d.limits[1].remaining, d.attempts), (true, 9, 1));
    for (h, left) in rest.into_iter().zip([8, 7, 6, 5]) {
        let d = h.await.unwrap().unwrap();
        assert!(d.allowed);
        // Each caller sees the batch as it stood after the jobs before it.
        assert_eq!((d.limits[0].remaining, d.limits[1].remaining), (4, left));
        assert_eq!((d.attempts, d.contention), (1, None));
    }
    let batch = key_set(&[
        ip_key(1),
        user_key("a"),
        user_key("b"),
        user_key("c"),
        user_key("d"),
    ]);
    assert_eq!(
        s.store.cas_keys(),
        [key_set(&[user_key("lead"), ip_key(1)]), batch]
    );
    assert_eq!(remaining(&s, &who("z", 1)).await, [5, 5]);
}

#[tokio::test]
async fn a_denied_job_writes_nothing_and_later_jobs_do_not_see_it() {
    let s = setup(
        "uploads=user:1/1h;burst=ip:10/1h",
        false,
        false,
        Backoff::DEFAULT,
    );
    // `lead` again is over its user limit of 1; `a` and `c` are not.
    let (lead, rest) = queue_behind_a_lead(&s, &["a", "lead", "c"]).await;
    s.store.open(10);
    assert!(lead.await.unwrap().unwrap().allowed);
    let d: Vec<Decision> = futures_util::future::join_all(rest)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(
        d.iter().map(|d| d.allowed).collect::<Vec<_>>(),
        [true, false, true]
    );
    assert_eq!(d[0].limits[1].remaining, 8);
    // The denial reports the ip quota it saw, without its own cost...
    assert_eq!(
        d[1].violated()
            .map(|l| l.limit.name.as_str())
            .collect::<Vec<_>>(),
        ["uploads"]
    );
    assert_eq!(d[1].limits[1].remaining, 8);
    assert_eq!(d[1].retry_after(), Some(Duration::from_secs(3600)));
    // ...and `c` comes after `a` only.
    assert_eq!(d[2].limits[1].remaining, 7);
    assert_eq!(remaining(&s, &who("lead", 1)).await, [0, 7]);
    // The denial was confirmed on the key whose limit denied it.
    assert_eq!(*s.store.refreshed.lock().unwrap(), [vec![user_key("lead")]]);
    assert_eq!(s.store.cas_calls(), 2);
}

#[tokio::test]
async fn only_jobs_that_share_keys_transitively_are_batched_together() {
    let s = setup(
        "uploads=user:5/1h;burst=ip:10/1h",
        false,
        false,
        Backoff::DEFAULT,
    );
    let lead = consume(&s.limiter, who("u1", 1));
    until("the lead reaches the store", || s.store.cas_calls() == 1).await;
    // (u2, ip 1) waits for the lead's ip; (u2, ip 2) and (u3, ip 2) join it
    // through u2 and ip 2. (u1, ip 3) waits for the lead's user key but
    // shares nothing with the others: a batch of its own.
    let rest: Vec<_> = [who("u2", 1), who("u2", 2), who("u3", 2), who("u1", 3)]
        .into_iter()
        .map(|w| consume(&s.limiter, w))
        .collect();
    until("four queue", || s.limiter.core.queue.waiting() == 4).await;
    // A request on other keys does not wait for any of them.
    let apart = consume(&s.limiter, who("u9", 9));
    until("it reaches the store", || s.store.cas_calls() == 2).await;
    s.store.open(10);
    assert!(lead.await.unwrap().unwrap().allowed);
    assert!(apart.await.unwrap().unwrap().allowed);
    let d: Vec<Decision> = futures_util::future::join_all(rest)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let left: Vec<(u64, u64)> = d
        .iter()
        .map(|d| (d.limits[0].remaining, d.limits[1].remaining))
        .collect();
    assert_eq!(left, [(4, 8), (3, 9), (4, 8), (3, 9)]);
    assert!(d.iter().all(|d| d.attempts == 1));
    let cas = s.store.cas_keys();
    assert_eq!(cas.len(), 4);
    let mixed = key_set(&[ip_key(1), ip_key(2), user_key("u2"), user_key("u3")]);
    assert!(cas[2..].contains(&mixed), "{cas:?}");
    assert!(cas[2..].contains(&key_set(&[user_key("u1"), ip_key(3)])));
}

#[tokio::test]
async fn a_conflict_with_another_process_is_retried_on_the_state_it_returns() {
    let backoff = Backoff::new(Duration::from_millis(4), Duration::from_millis(64), 5);
    let s = setup("uploads=user:5/1h;burst=ip:10/1h", false, true, backoff);
    // The other process charges ip 1 just before the batch's write.
    s.store
        .meddle(&s.policy, &s.clock, who("elsewhere", 1), &[2]);
    let (lead, rest) = queue_behind_a_lead(&s, &["a", "b", "c"]).await;
    s.store.open(10);
    assert_eq!(lead.await.unwrap().unwrap().attempts, 1);
    for (h, left) in rest.into_iter().zip([7, 6, 5]) {
        let d = h.await.unwrap().unwrap();
        assert_eq!(
            (d.allowed, d.limits[1].remaining, d.attempts),
            (true, left, 2)
        );
    }
    assert_eq!(s.store.cas_calls(), 3, "the batch retried once, as one");
    let sleeps = s.runtime.sleeps.lock().unwrap().clone();
    assert_eq!(sleeps.len(), 1);
    assert!(sleeps[0] <= backoff.ceiling(1), "{sleeps:?}");
    assert_eq!(remaining(&s, &who("z", 1)).await, [5, 5]);
}

#[tokio::test]
async fn running_out_of_attempts_is_a_contention_denial_that_charges_nothing() {
    let backoff = Backoff::new(Duration::from_millis(2), Duration::from_millis(5), 3);
    let s = setup("uploads=user:50/1h;burst=ip:1000/1h", false, true, backoff);
    s.store
        .meddle(&s.policy, &s.clock, who("elsewhere", 1), &[]);
    let (lead, rest) = queue_behind_a_lead(&s, &["a", "b"]).await;
    s.store.open(100);
    let mut all = vec![lead.await.unwrap().unwrap()];
    for h in rest {
        all.push(h.await.unwrap().unwrap());
    }
    for d in &all {
        assert!(!d.allowed && d.is_contention(), "{d:?}");
        assert_eq!(d.attempts, 3);
        assert_eq!(d.retry_after(), Some(Contention::RETRY_AFTER));
        assert_eq!(d.violated().count(), 0);
        assert_eq!(d.limits[0].remaining, 50);
    }
    // Two batches (the lead, then a and b) of three attempts each.
    assert_eq!(s.store.cas_calls(), 6);
    let sleeps = s.runtime.sleeps.lock().unwrap().clone();
    assert_eq!(
        sleeps.len(),
        4,
        "a pause between attempts, none after the last"
    );
    assert!(sleeps.iter().all(|p| *p <= Duration::from_millis(5)));
    // Only the other process was charged: once per compare-and-swap.
    assert_eq!(remaining(&s, &who("lead", 1)).await, [50, 994]);
    assert_eq!(remaining(&s, &who("a", 1)).await[0], 50);
}

#[tokio::test]
async fn a_dropped_caller_strands_nobody_and_is_charged_at_most_once() {
    let s = setup(
        "uploads=user:5/1h;burst=ip:10/1h",
        false,
        false,
        Backoff::DEFAULT,
    );
    let (lead, mut rest) = queue_behind_a_lead(&s, &["a", "b", "c"]).await;
    // b leaves while it waits: it is never charged.
    let b = rest.remove(1);
    b.abort();
    assert!(b.await.unwrap_err().is_cancelled());
    s.store.open(1);
    assert!(lead.await.unwrap().unwrap().allowed);
    // a and c drive their batch together; a leaves while its write is in
    // flight, and c carries it through.
    until("the batch reaches the store", || s.store.cas_calls() == 2).await;
    let c = rest.pop().unwrap();
    let a = rest.pop().unwrap();
    a.abort();
    assert!(a.await.unwrap_err().is_cancelled());
    s.store.open(10);
    let d = c.await.unwrap().unwrap();
    assert_eq!((d.allowed, d.limits[1].remaining, d.attempts), (true, 7, 1));
    assert_eq!(s.store.cas_calls(), 2, "nothing was retried");
    assert_eq!(
        s.store.cas_keys()[1],
        key_set(&[ip_key(1), user_key("a"), user_key("c")])
    );
    // a's write was in flight: it stands, once. b's never started.
    assert_eq!(remaining(&s, &who("a", 1)).await, [4, 7]);
    assert_eq!(remaining(&s, &who("b", 1)).await, [5, 7]);
}

#[tokio::test]
async fn with_a_runtime_a_batch_finishes_when_all_its_callers_leave() {
    let s = setup(
        "uploads=user:5/1h;burst=ip:10/1h",
        false,
        true,
        Backoff::DEFAULT,
    );
    let (lead, rest) = queue_behind_a_lead(&s, &["a", "b"]).await;
    s.store.open(1);
    assert!(lead.await.unwrap().unwrap().allowed);
    until("the batch reaches the store", || s.store.cas_calls() == 2).await;
    for h in rest {
        h.abort();
        assert!(h.await.unwrap_err().is_cancelled());
    }
    // A request that queues behind the abandoned batch is still answered,
    // after it: the spawned batch completes and frees the key.
    let late = consume(&s.limiter, who("late", 1));
    until("it queues", || s.limiter.core.queue.waiting() == 1).await;
    s.store.open(10);
    let d = late.await.unwrap().unwrap();
    assert_eq!((d.allowed, d.limits[1].remaining), (true, 6));
    assert_eq!(remaining(&s, &who("a", 1)).await, [4, 6]);
}

#[tokio::test]
async fn a_lone_request_costs_one_write_and_a_denial_confirms_only_its_violated_key() {
    let s = setup(
        "uploads=user:5/1h;burst=ip:1/1h",
        true,
        false,
        Backoff::DEFAULT,
    );
    let d = s.limiter.consume(&who("a", 1), 1).await.unwrap();
    assert_eq!((d.allowed, d.attempts), (true, 1));
    assert_eq!(s.store.cas_calls(), 1);
    let d = s.limiter.consume(&who("b", 1), 1).await.unwrap();
    assert!(!d.allowed && !d.is_contention());
    assert_eq!(s.store.cas_calls(), 1, "a denial writes nothing");
    assert_eq!(*s.store.refreshed.lock().unwrap(), [vec![ip_key(1)]]);
}
