//! The settle step on the memory store, beyond the conformance scenarios
//! (`crate::conformance::settle`, run on every store): what only a crafted
//! state or store can show.

// The recording ports come with the conformance suite.
#![cfg(feature = "conformance")]

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::conformance::ports::{TestHandOff, TestQuarantine};
use crate::usage::MemoryLedger;
use crate::{
    Backoff, CasOutcome, Charge, Clock, FakeClock, KeyState, Limiter, MemoryStore, ObjectKey,
    ReservationRequest, StateKey, Store, StoreError, Subjects, Timestamp, Versioned, Write,
};

const T0: Timestamp = Timestamp(1_800_000_000_000);
const TTL: Duration = Duration::from_secs(300);
const GRACE: Duration = Duration::from_secs(900);

type Lim<S> = Limiter<S, FakeClock>;

fn limiter<S: Store>(store: S) -> (Lim<S>, FakeClock) {
    let clock = FakeClock::new(T0);
    let policy = Arc::new("uploads=user:2/1h".parse().unwrap());
    let l = Limiter::new(policy, store, clock.clone()).with_settlement(Some(GRACE));
    (l, clock)
}

fn settler<S: Store>(
    l: &Lim<S>,
    ledger: &Arc<MemoryLedger>,
) -> Settler<S, FakeClock, Arc<MemoryLedger>, TestHandOff, TestQuarantine> {
    let ports = (
        Arc::clone(ledger),
        TestHandOff::default(),
        TestQuarantine::default(),
    );
    Settler::new(l.clone(), ports.0, ports.1, ports.2, "up/", TTL).unwrap()
}

fn alice() -> Subjects {
    Subjects {
        user: UserId::parse("alice").unwrap(),
        ip: None,
    }
}

fn v7(at: Timestamp, n: u8) -> [u8; 16] {
    let mut u = [n; 16];
    u[..6].copy_from_slice(&at.as_millis().to_be_bytes()[2..]);
    u[6] = 0x70;
    u
}

/// Grants upload `n` now; the object that lands through it.
async fn grant<S: Store>(l: &Lim<S>, n: u8) -> Landed {
    let now = l.clock().now();
    let unique = v7(now, n);
    let charge = Charge {
        size: 10,
        reservation: Some(ReservationRequest {
            unique,
            expires_at: Timestamp(now.as_millis() + TTL.as_millis() as u64),
            content_type: "image/png".into(),
            checksum: None,
        }),
        ..Charge::default()
    };
    assert!(l.charge(&alice(), &charge).await.unwrap().allowed);
    let text = key::hyphenated(&unique);
    Landed {
        bucket: "b".into(),
        key: ObjectKey::for_upload("up/", &alice().user, &text, "a.png").into_string(),
        size: 10,
        content_type: Some("image/png".into()),
        checksum_sha256: None,
        created_at: now,
    }
}

async fn user_state<S: Store>(l: &Lim<S>) -> Versioned {
    let key = StateKey::user(&alice().user);
    l.store().load(&[key]).await.unwrap()[0].clone().unwrap()
}

#[test]
fn grant_mode_has_nothing_to_settle() {
    let clock = FakeClock::new(T0);
    let policy = Arc::new("uploads=user:2/1h".parse().unwrap());
    let l = Limiter::new(policy, MemoryStore::new(), clock);
    let ports = (MemoryLedger::new(), TestHandOff::default());
    let s = Settler::new(l, ports.0, ports.1, TestQuarantine::default(), "up/", TTL);
    assert!(matches!(s, Err(NotUploadMode)));
}

#[tokio::test]
async fn a_settled_reservation_evicted_early_is_known_to_the_ledger() {
    let (l, clock) = limiter(Arc::new(MemoryStore::new()));
    let ledger = Arc::new(MemoryLedger::new());
    let s = settler(&l, &ledger);
    let landed = grant(&l, 1).await;
    assert_eq!(
        s.settle(&landed).await.unwrap(),
        Verdict::Accepted { late: false }
    );
    // Evicted (as the cap on settled reservations does), long before its
    // horizon: the state no longer knows it.
    let Versioned { version, mut state } = user_state(&l).await;
    state.reservations.clear();
    let w = Write {
        key: StateKey::user(&alice().user),
        expected: Some(version),
        state,
        expire_at: Timestamp(u64::MAX),
    };
    let done = l.store().compare_and_swap(vec![w]).await.unwrap();
    assert!(matches!(done, CasOutcome::Committed(_)));
    clock.advance(Duration::from_secs(1));
    assert_eq!(s.settle(&landed).await.unwrap(), Verdict::Duplicate);
    assert_eq!(ledger.len(), 1);
}

#[tokio::test]
async fn a_pending_reservation_past_its_horizon_but_not_yet_released_settles() {
    let (l, clock) = limiter(Arc::new(MemoryStore::new()));
    let ledger = Arc::new(MemoryLedger::new());
    let s = settler(&l, &ledger);
    let landed = grant(&l, 1).await;
    let other = grant(&l, 2).await;
    // No decision since: both still pending in the store, both due.
    clock.advance(TTL + GRACE);
    assert_eq!(
        s.settle(&landed).await.unwrap(),
        Verdict::Accepted { late: false }
    );
    // Its charge stands; the other was released by that same write, and
    // both are gone from the state.
    let st: KeyState = user_state(&l).await.state;
    assert!(st.reservations.is_empty());
    let q = l.peek(&alice()).await.unwrap();
    assert_eq!(q.limits[0].remaining, 1);
    // The other one landing now is late: charged again, as it should be.
    assert_eq!(
        s.settle(&other).await.unwrap(),
        Verdict::Accepted { late: true }
    );
    assert_eq!(l.peek(&alice()).await.unwrap().limits[0].remaining, 0);
    assert_eq!(ledger.len(), 2);
}

/// A store whose every compare-and-swap loses to another writer.
struct Busy(MemoryStore);

impl Store for Busy {
    async fn load(&self, k: &[StateKey]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.0.load(k).await
    }
    async fn compare_and_swap(&self, w: Vec<Write>) -> Result<CasOutcome, StoreError> {
        let keys: Vec<StateKey> = w.iter().map(|w| w.key.clone()).collect();
        let current = self.0.load(&keys).await?;
        Ok(CasOutcome::Conflict(
            keys.into_iter().zip(current).collect(),
        ))
    }
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.0.purge_expired(now).await
    }
}

#[tokio::test]
async fn endless_conflicts_are_a_transient_failure_after_the_attempts() {
    let (l, _) = limiter(Busy(MemoryStore::new()));
    let l = l.with_backoff(Backoff::new(Duration::ZERO, Duration::ZERO, 3));
    let ledger = Arc::new(MemoryLedger::new());
    let s = settler(&l, &ledger);
    let unique = v7(T0, 1);
    let text = key::hyphenated(&unique);
    let landed = Landed {
        bucket: "b".into(),
        key: ObjectKey::for_upload("up/", &alice().user, &text, "a.png").into_string(),
        size: 10,
        content_type: None,
        checksum_sha256: None,
        // Old enough to be late: a forced charge, which never commits.
        created_at: T0,
    };
    l.clock().advance(TTL + GRACE);
    let err = s.settle(&landed).await.unwrap_err();
    assert!(matches!(err, SettleError::Contention), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(ledger.len(), 1, "written once");
    assert!(l.store().0.is_empty(), "nothing committed");
}
