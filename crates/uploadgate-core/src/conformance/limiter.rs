//! Conformance scenarios through the limiter: concurrent requests, within
//! one process and across several over the same state, admit exactly the
//! limit, and a denial consumes nothing.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::{LimitState, Limiter, Policy, Reset, StateKey, Store, Subjects, SystemClock, UserId};

use super::{COUNTER, TokioRuntime, fresh_user};

/// Through the limiter: 50 concurrent requests for one fresh user with a
/// limit of 5 admit exactly 5.
pub async fn concurrent_requests_admit_exactly_the_limit<S: Store>(store: S) {
    let policy: Arc<Policy> = Arc::new("uploads=user:5/1h".parse().expect("policy"));
    let limiter = Arc::new(Limiter::new(policy, store, SystemClock));
    let subjects = Subjects {
        user: fresh_user("race"),
        ip: None,
    };
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let l = Arc::clone(&limiter);
            let s = subjects.clone();
            tokio::spawn(async move { l.consume(&s, 1).await })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        let d = t.await.expect("task").expect("decision");
        allowed += usize::from(d.allowed);
    }
    assert_eq!(allowed, 5);
    let q = limiter.peek(&subjects).await.expect("peek");
    assert_eq!(q.limits[0].remaining, 0);
}

/// Through the limiter: a denial by one subject's limit consumes nothing
/// from the other's, and user quotas are independent.
pub async fn denial_consumes_nothing<S: Reset>(store: S) {
    let policy: Arc<Policy> = Arc::new("uploads=user:3/1h;burst=ip:2/1h".parse().expect("policy"));
    let limiter = Limiter::new(policy, store, SystemClock);
    let ip = IpAddr::V4(Ipv4Addr::new(
        198,
        18,
        (COUNTER.fetch_add(1, Ordering::Relaxed) % 250) as u8,
        (RandomState::new().hash_one(2u8) % 250) as u8,
    ));
    limiter.reset(&StateKey::ip(ip)).await.expect("reset");
    let alice = Subjects {
        user: fresh_user("alice"),
        ip: Some(ip),
    };
    let bob = Subjects {
        user: fresh_user("bob"),
        ip: Some(ip),
    };
    assert!(limiter.consume(&alice, 1).await.expect("1").allowed);
    assert!(limiter.consume(&alice, 1).await.expect("2").allowed);
    let d = limiter.consume(&bob, 1).await.expect("3");
    assert!(!d.allowed);
    let q = limiter.peek(&bob).await.expect("peek");
    assert_eq!(
        q.limits[0].remaining, 3,
        "bob's user quota must be untouched"
    );
    let q = limiter.peek(&alice).await.expect("peek");
    assert_eq!(q.limits[0].remaining, 1);
    limiter.reset(&StateKey::ip(ip)).await.expect("reset");
}

/// Trials of [`hot_key_across_processes_admits_exactly_the_limit`]:
/// `UG_HOT_KEY_TRIALS`, default 3.
pub fn hot_key_trials() -> usize {
    std::env::var("UG_HOT_KEY_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Through one limiter per store instance (each standing in for a process,
/// all on the same state): 300 concurrent requests from distinct users
/// behind one address, limited to 100 per address, admit exactly 100, with
/// no error and no contention denial; the address's stored state counts
/// exactly 100, and exactly 100 users were charged, once each.
pub async fn hot_key_across_processes_admits_exactly_the_limit<S: Reset>(stores: Vec<S>) {
    const REQUESTS: usize = 300;
    let policy: Arc<Policy> =
        Arc::new("uploads=user:5/1h;burst=ip:100/1h".parse().expect("policy"));
    let limiters: Vec<Arc<Limiter<S, SystemClock>>> = stores
        .into_iter()
        .map(|s| {
            let l = Limiter::new(Arc::clone(&policy), s, SystemClock)
                .with_runtime(Arc::new(TokioRuntime));
            Arc::new(l)
        })
        .collect();
    assert!(!limiters.is_empty(), "no store instances");
    let ip = IpAddr::V4(Ipv4Addr::new(
        198,
        18,
        (RandomState::new().hash_one(3u8) % 250) as u8,
        (COUNTER.fetch_add(1, Ordering::Relaxed) % 250) as u8,
    ));
    let ip_key = StateKey::ip(ip);
    limiters[0].reset(&ip_key).await.expect("reset");
    let users: Vec<UserId> = (0..REQUESTS).map(|_| fresh_user("hot")).collect();
    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let l = Arc::clone(&limiters[i % limiters.len()]);
            let who = Subjects {
                user: user.clone(),
                ip: Some(ip),
            };
            tokio::spawn(async move { l.consume(&who, 1).await })
        })
        .collect();
    let (mut allowed, mut denied) = (0, 0);
    for t in tasks {
        let d = t.await.expect("task").expect("a decision, not an error");
        assert!(!d.is_contention(), "gave up on contention: {d:?}");
        if d.allowed {
            allowed += 1;
        } else {
            assert_eq!(
                d.violated()
                    .map(|l| l.limit.name.as_str())
                    .collect::<Vec<_>>(),
                ["burst"]
            );
            denied += 1;
        }
    }
    assert_eq!((allowed, denied), (100, REQUESTS - 100));
    let stored = limiters[0]
        .store()
        .load(std::slice::from_ref(&ip_key))
        .await
        .expect("load");
    let counted = match stored[0].as_ref().and_then(|v| v.state.limits.get("burst")) {
        Some(LimitState::Sliding(s)) => s.entries.iter().map(|(_, n)| n).sum::<u64>(),
        other => panic!("the ip key holds no sliding state: {other:?}"),
    };
    assert_eq!(counted, 100, "uploads recorded on the ip key");
    let keys: Vec<StateKey> = users.iter().map(StateKey::user).collect();
    let charged = limiters[0].store().load(&keys).await.expect("load users");
    assert_eq!(
        charged.iter().filter(|v| v.is_some()).count(),
        100,
        "users charged"
    );
    limiters[0].reset(&ip_key).await.expect("reset");
}
