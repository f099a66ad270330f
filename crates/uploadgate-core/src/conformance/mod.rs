//! The store conformance suite: one set of scenarios every [`Store`] must
//! pass, so backends cannot drift apart (after limitador's
//! `test_with_all_storage_impls!`).
//!
//! A store crate runs it from its tests with
//! [`store_conformance_tests!`](crate::store_conformance_tests), giving an
//! async constructor of one store, and one of N instances over the same
//! state (standing in for N processes). Scenarios use fresh random keys, so
//! they may share one backing table.
//!
//! The usage ledger has its own suite, [`ledger`], run with
//! [`ledger_conformance_tests!`](crate::ledger_conformance_tests).

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub mod ledger;
mod limiter;
pub mod ports;
mod settle;
mod tiers;

pub use limiter::{
    concurrent_requests_admit_exactly_the_limit, denial_consumes_nothing,
    hot_key_across_processes_admits_exactly_the_limit, hot_key_trials,
};
pub use settle::{
    a_conflicting_commit_is_planned_again, a_failed_hand_off_settles_once_on_redelivery,
    a_late_upload_is_charged_past_the_limit, a_matching_upload_settles_once_and_stays_charged,
    a_mismatched_upload_is_quarantined_and_not_refunded,
    foreign_and_unreserved_keys_are_quarantined,
};
pub use tiers::{
    a_tier_change_takes_effect_at_once_and_keeps_usage,
    an_idempotent_retry_is_free_and_a_changed_request_is_refused,
};

use crate::{
    CasOutcome, FixedState, GcraState, KeyState, LimitState, Reset, Runtime, SlidingState,
    StateKey, Store, Task, Timestamp, UserId, Write,
};

/// The limiter's [`Runtime`] on tokio, as a server gives it.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioRuntime;

impl Runtime for TokioRuntime {
    fn spawn(&self, task: Task) {
        tokio::spawn(task);
    }

    fn sleep(&self, duration: Duration) -> Task {
        Box::pin(tokio::time::sleep(duration))
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn fresh_user(tag: &str) -> UserId {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let r = RandomState::new().hash_one(n);
    UserId::parse(&format!("{tag}-{r:016x}-{n}")).unwrap_or_else(|e| panic!("test id: {e}"))
}

fn fresh_key(tag: &str) -> StateKey {
    StateKey::user(&fresh_user(tag))
}

fn state(entries: &[(u64, u64)]) -> KeyState {
    KeyState {
        grants: Default::default(),
        reservations: Default::default(),
        limits: BTreeMap::from([(
            "uploads".to_owned(),
            LimitState::Sliding(SlidingState {
                entries: entries.to_vec(),
            }),
        )]),
    }
}

fn write(key: &StateKey, expected: Option<u64>, st: KeyState) -> Write {
    Write {
        key: key.clone(),
        expected,
        state: st,
        expire_at: Timestamp(u64::MAX / 2),
    }
}

async fn committed<S: Store>(store: &S, writes: Vec<Write>) -> Vec<u64> {
    match store.compare_and_swap(writes).await {
        Ok(CasOutcome::Committed(v)) => v,
        other => panic!("expected a commit, got {other:?}"),
    }
}

/// A key never written loads as absent.
pub async fn missing_key_loads_none<S: Store>(store: S) {
    let k = fresh_key("missing");
    assert_eq!(store.load(&[k]).await.expect("load"), vec![None]);
}

/// Creating a key (expected `None`) succeeds once and reads back exactly.
pub async fn create_then_read_back<S: Store>(store: S) {
    let k = fresh_key("create");
    let st = state(&[(1_000, 1), (2_000, 3)]);
    let v = committed(&store, vec![write(&k, None, st.clone())]).await;
    let got = store.load(std::slice::from_ref(&k)).await.expect("load");
    let got = got[0].as_ref().expect("present");
    assert_eq!(got.version, v[0]);
    assert_eq!(got.state, st);
}

/// Creating a key that exists is a conflict that returns the current state
/// and changes nothing.
pub async fn create_over_existing_conflicts<S: Store>(store: S) {
    let k = fresh_key("exists");
    let st = state(&[(1, 1)]);
    let v = committed(&store, vec![write(&k, None, st.clone())]).await;
    match store
        .compare_and_swap(vec![write(&k, None, state(&[(9, 9)]))])
        .await
        .expect("cas")
    {
        CasOutcome::Conflict(cur) => {
            assert_eq!(cur.len(), 1);
            assert_eq!(cur[0].0, k);
            let cur = cur[0].1.as_ref().expect("current state returned");
            assert_eq!((cur.version, &cur.state), (v[0], &st));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let now = store.load(&[k]).await.expect("load");
    assert_eq!(now[0].as_ref().map(|v| &v.state), Some(&st));
}

/// Writing with the version just read succeeds and yields a new version;
/// writing again with the old version conflicts.
pub async fn swap_with_current_version_then_stale_version<S: Store>(store: S) {
    let k = fresh_key("swap");
    let v1 = committed(&store, vec![write(&k, None, state(&[(1, 1)]))]).await[0];
    let st2 = state(&[(1, 1), (2, 1)]);
    let v2 = committed(&store, vec![write(&k, Some(v1), st2.clone())]).await[0];
    assert_ne!(v1, v2, "a write must produce a new version");
    match store
        .compare_and_swap(vec![write(&k, Some(v1), state(&[(7, 7)]))])
        .await
        .expect("cas")
    {
        CasOutcome::Conflict(cur) => {
            let cur = cur[0].1.as_ref().expect("current");
            assert_eq!((cur.version, &cur.state), (v2, &st2));
        }
        other => panic!("stale version must conflict, got {other:?}"),
    }
}

/// A conflict on one key of a multi-key swap writes none of them.
pub async fn multi_key_swap_is_all_or_nothing<S: Reset>(store: S) {
    let a = fresh_key("multi-a");
    let b = StateKey::ip(IpAddr::V4(Ipv4Addr::new(
        10,
        1,
        (COUNTER.fetch_add(1, Ordering::Relaxed) % 250) as u8,
        (RandomState::new().hash_one(1u8) % 250) as u8,
    )));
    // Make sure b starts clean (ip keys are shared across runs of a table).
    store.delete(&b).await.expect("delete");
    let va = committed(&store, vec![write(&a, None, state(&[(1, 1)]))]).await[0];
    let vb = committed(&store, vec![write(&b, None, state(&[(2, 1)]))]).await[0];
    // Stale expectation on b.
    let out = store
        .compare_and_swap(vec![
            write(&a, Some(va), state(&[(5, 5)])),
            write(&b, Some(vb.wrapping_add(1)), state(&[(6, 6)])),
        ])
        .await
        .expect("cas");
    match out {
        CasOutcome::Conflict(cur) => {
            assert!(
                cur.iter()
                    .any(|(k, v)| *k == b && v.as_ref().map(|v| v.version) == Some(vb))
            );
        }
        other => panic!("expected conflict, got {other:?}"),
    }
    let now = store.load(&[a.clone(), b.clone()]).await.expect("load");
    assert_eq!(
        now[0].as_ref().map(|v| v.state.clone()),
        Some(state(&[(1, 1)]))
    );
    assert_eq!(
        now[1].as_ref().map(|v| v.state.clone()),
        Some(state(&[(2, 1)]))
    );
    // And with both current, both are written.
    let v = committed(
        &store,
        vec![
            write(&a, Some(va), state(&[(5, 5)])),
            write(&b, Some(vb), state(&[(6, 6)])),
        ],
    )
    .await;
    assert_eq!(v.len(), 2);
    let now = store.load(&[a, b.clone()]).await.expect("load");
    assert_eq!(
        now[1].as_ref().map(|v| v.state.clone()),
        Some(state(&[(6, 6)]))
    );
    store.delete(&b).await.expect("delete");
}

/// After a delete the key reads absent, and a version from before the delete
/// never matches again, even once the key is recreated (no ABA).
pub async fn delete_then_old_versions_never_match<S: Reset>(store: S) {
    let k = fresh_key("aba");
    let v1 = committed(&store, vec![write(&k, None, state(&[(1, 1)]))]).await[0];
    assert!(store.delete(&k).await.expect("delete"));
    assert!(!store.delete(&k).await.expect("delete again"));
    assert_eq!(
        store.load(std::slice::from_ref(&k)).await.expect("load"),
        vec![None]
    );
    let out = store
        .compare_and_swap(vec![write(&k, Some(v1), state(&[(2, 2)]))])
        .await
        .expect("cas");
    assert!(
        matches!(out, CasOutcome::Conflict(ref c) if c[0].1.is_none()),
        "{out:?}"
    );
    let v2 = committed(&store, vec![write(&k, None, state(&[(3, 3)]))]).await[0];
    assert_ne!(v1, v2);
    let out = store
        .compare_and_swap(vec![write(&k, Some(v1), state(&[(4, 4)]))])
        .await
        .expect("cas");
    assert!(matches!(out, CasOutcome::Conflict(_)), "{out:?}");
}

/// Large states round-trip exactly (a sliding window of 1000 entries).
pub async fn large_state_round_trips<S: Store>(store: S) {
    let k = fresh_key("large");
    let entries: Vec<(u64, u64)> = (0..1000)
        .map(|i| (1_800_000_000_000 + i * 10_813, 1))
        .collect();
    let mut st = state(&entries);
    st.limits.insert(
        "rate".into(),
        LimitState::Gcra(GcraState {
            tat_ns: 1_800_000_000_123_456_789,
            rem: 17,
        }),
    );
    st.limits.insert(
        "day".into(),
        LimitState::Fixed(FixedState {
            start: 1_799_971_200_000,
            used: 52_428_800,
        }),
    );
    committed(&store, vec![write(&k, None, st.clone())]).await;
    let got = store.load(&[k]).await.expect("load");
    assert_eq!(got[0].as_ref().map(|v| &v.state), Some(&st));
}

/// `purge_expired` removes state past its expiry and keeps the rest. Stores
/// that expire on their own (DynamoDB TTL) may purge nothing; what they must
/// never do is remove live state.
pub async fn purge_keeps_live_state<S: Store>(store: S, purges_itself: bool) {
    let old = fresh_key("old");
    let live = fresh_key("live");
    let mut w = write(&old, None, state(&[(1, 1)]));
    w.expire_at = Timestamp(1_000);
    committed(&store, vec![w]).await;
    let mut w = write(&live, None, state(&[(1, 1)]));
    w.expire_at = Timestamp(3_000);
    committed(&store, vec![w]).await;
    store.purge_expired(Timestamp(2_000)).await.expect("purge");
    let got = store.load(&[old, live]).await.expect("load");
    assert!(got[1].is_some(), "live state must survive a purge");
    if purges_itself {
        assert!(got[0].is_none(), "expired state must be purged");
    }
}

/// Generates one `#[tokio::test]` per scenario for a store. `$make` is an
/// expression callable with no arguments that returns a future of the store.
/// `purges_itself` says whether `purge_expired` really deletes. `$shared`
/// is callable with a count `n` and returns a future of `n` store instances
/// over the same state, as `n` processes would open it (clones of one
/// handle where the store is process-local).
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr, purges_itself = $purges:expr, shared = $shared:expr) => {
        mod store_conformance {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance as c;

            #[tokio::test]
            async fn a_tier_change_takes_effect_at_once_and_keeps_usage() {
                c::a_tier_change_takes_effect_at_once_and_keeps_usage(($make)().await).await
            }
            #[tokio::test]
            async fn an_idempotent_retry_is_free_and_a_changed_request_is_refused() {
                c::an_idempotent_retry_is_free_and_a_changed_request_is_refused(($make)().await)
                    .await
            }
            #[tokio::test]
            async fn a_matching_upload_settles_once_and_stays_charged() {
                c::a_matching_upload_settles_once_and_stays_charged(($make)().await).await
            }
            #[tokio::test]
            async fn a_mismatched_upload_is_quarantined_and_not_refunded() {
                c::a_mismatched_upload_is_quarantined_and_not_refunded(($make)().await).await
            }
            #[tokio::test]
            async fn a_late_upload_is_charged_past_the_limit() {
                c::a_late_upload_is_charged_past_the_limit(($make)().await).await
            }
            #[tokio::test]
            async fn foreign_and_unreserved_keys_are_quarantined() {
                c::foreign_and_unreserved_keys_are_quarantined(($make)().await).await
            }
            #[tokio::test]
            async fn a_failed_hand_off_settles_once_on_redelivery() {
                c::a_failed_hand_off_settles_once_on_redelivery(($make)().await).await
            }
            #[tokio::test]
            async fn a_conflicting_commit_is_planned_again() {
                c::a_conflicting_commit_is_planned_again(($make)().await).await
            }
            #[tokio::test]
            async fn missing_key_loads_none() {
                c::missing_key_loads_none(($make)().await).await
            }
            #[tokio::test]
            async fn create_then_read_back() {
                c::create_then_read_back(($make)().await).await
            }
            #[tokio::test]
            async fn create_over_existing_conflicts() {
                c::create_over_existing_conflicts(($make)().await).await
            }
            #[tokio::test]
            async fn swap_with_current_version_then_stale_version() {
                c::swap_with_current_version_then_stale_version(($make)().await).await
            }
            #[tokio::test]
            async fn multi_key_swap_is_all_or_nothing() {
                c::multi_key_swap_is_all_or_nothing(($make)().await).await
            }
            #[tokio::test]
            async fn delete_then_old_versions_never_match() {
                c::delete_then_old_versions_never_match(($make)().await).await
            }
            #[tokio::test]
            async fn large_state_round_trips() {
                c::large_state_round_trips(($make)().await).await
            }
            #[tokio::test]
            async fn purge_keeps_live_state() {
                c::purge_keeps_live_state(($make)().await, $purges).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_requests_admit_exactly_the_limit() {
                c::concurrent_requests_admit_exactly_the_limit(($make)().await).await
            }
            #[tokio::test]
            async fn denial_consumes_nothing() {
                c::denial_consumes_nothing(($make)().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn hot_key_across_processes_admits_exactly_the_limit() {
                for _ in 0..c::hot_key_trials() {
                    c::hot_key_across_processes_admits_exactly_the_limit(($shared)(4).await).await
                }
            }
        }
    };
}
