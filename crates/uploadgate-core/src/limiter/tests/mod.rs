//! The limiter's behaviour on one process: what a decision says, denials,
//! resets, purging, and the cached-denial rule.

use super::*;
use std::time::Duration;

use crate::{
    CasOutcome, FakeClock, MemoryStore, StoreError, Subject, Timestamp, UserId, Versioned, Write,
};

fn limiter(policy: &str) -> (Limiter<MemoryStore, FakeClock>, FakeClock) {
    let clock = FakeClock::new(Timestamp(1_800_000_000_000));
    let policy = Arc::new(policy.parse().unwrap());
    (
        Limiter::new(policy, MemoryStore::new(), clock.clone()),
        clock,
    )
}

fn who(user: &str, ip: &str) -> Subjects {
    Subjects {
        user: UserId::parse(user).unwrap(),
        ip: Some(ip.parse().unwrap()),
    }
}

/// A store whose cache is a frozen snapshot, as a remote store's can be
/// after a reset elsewhere; `vouch` says whether it trusts it to deny.
struct Snapshot {
    truth: MemoryStore,
    cached: Vec<Option<Versioned>>,
    vouch: bool,
}

impl Store for Snapshot {
    async fn load(&self, k: &[StateKey]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.truth.load(k).await
    }
    async fn load_cached(&self, _: &[StateKey]) -> Result<Vec<Option<Versioned>>, StoreError> {
        Ok(self.cached.clone())
    }
    async fn refresh_for_denial(
        &self,
        k: &[StateKey],
    ) -> Result<Option<Vec<Option<Versioned>>>, StoreError> {
        if self.vouch {
            Ok(None)
        } else {
            self.truth.load(k).await.map(Some)
        }
    }
    async fn compare_and_swap(&self, w: Vec<Write>) -> Result<CasOutcome, StoreError> {
        self.truth.compare_and_swap(w).await
    }
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.truth.purge_expired(now).await
    }
}

#[tokio::test]
async fn a_cached_denial_is_rechecked_unless_the_store_vouches_for_it() {
    let (l, clock) = limiter("uploads=user:1/1h");
    let alice = who("alice", "192.0.2.1");
    assert!(l.consume(&alice, 1).await.unwrap().allowed);
    let key = StateKey::user(&alice.user);
    let full = l.store().load(std::slice::from_ref(&key)).await.unwrap();
    // A reset the cache has not seen.
    l.reset(&key).await.unwrap();
    for (vouch, allowed) in [(true, false), (false, true)] {
        let truth = MemoryStore::new();
        let l = Limiter::new(
            Arc::new(l.policy().clone()),
            Snapshot {
                truth,
                cached: full.clone(),
                vouch,
            },
            clock.clone(),
        );
        assert_eq!(l.consume(&alice, 1).await.unwrap().allowed, allowed);
    }
}

#[tokio::test]
async fn denial_by_ip_does_not_eat_the_user_quota() {
    let (l, _) = limiter("uploads=user:5/1h;burst=ip:2/1h");
    let ip = "198.51.100.1";
    assert!(l.consume(&who("a", ip), 10).await.unwrap().allowed);
    assert!(l.consume(&who("b", ip), 10).await.unwrap().allowed);
    let d = l.consume(&who("c", ip), 10).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(
        d.violated()
            .map(|s| s.limit.name.as_str())
            .collect::<Vec<_>>(),
        ["burst"]
    );
    // c's own quota is untouched: all 5 remain.
    let q = l.peek(&who("c", "198.51.100.2")).await.unwrap();
    assert_eq!(q.limits[0].remaining, 5);
    assert_eq!(
        d.limits[0].remaining, 5,
        "a denied request reports unconsumed quota"
    );
}

#[tokio::test]
async fn byte_and_count_limits_together() {
    let (l, clock) = limiter("uploads=user:3/1h;volume=user:100B/1h");
    let u = who("a", "192.0.2.1");
    let d = l.consume(&u, 60).await.unwrap();
    assert!(d.allowed);
    assert_eq!((d.limits[0].remaining, d.limits[1].remaining), (2, 40));
    let d = l.consume(&u, 50).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!((d.limits[0].remaining, d.limits[1].remaining), (2, 40));
    assert!(l.consume(&u, 40).await.unwrap().allowed);
    clock.advance(Duration::from_secs(3600));
    assert!(l.consume(&u, 100).await.unwrap().allowed);
}

#[tokio::test]
async fn missing_subject_is_an_error_not_a_pass() {
    let (l, _) = limiter("burst=ip:2/1h");
    let s = Subjects {
        user: UserId::parse("a").unwrap(),
        ip: None,
    };
    assert!(matches!(
        l.consume(&s, 1).await,
        Err(LimiterError::MissingSubject(Subject::Ip))
    ));
}

#[tokio::test]
async fn reset_forgets_usage() {
    let (l, _) = limiter("uploads=user:1/1h");
    let u = who("a", "192.0.2.1");
    assert!(l.consume(&u, 1).await.unwrap().allowed);
    assert!(!l.consume(&u, 1).await.unwrap().allowed);
    assert!(l.reset(&StateKey::user(&u.user)).await.unwrap());
    assert!(l.consume(&u, 1).await.unwrap().allowed);
}

#[tokio::test]
async fn idle_state_is_purged() {
    let (l, clock) = limiter("uploads=user:5/1m;burst=ip:10/1m:gcra;day=user:9/1d:fixed");
    for i in 0..100 {
        l.consume(&who(&format!("u{i}"), &format!("10.0.0.{i}")), 1)
            .await
            .unwrap();
    }
    assert_eq!(l.store().len(), 200);
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        l.store().purge_expired(clock.now()).await.unwrap(),
        100,
        "ip keys expire after 1m"
    );
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(l.store().purge_expired(clock.now()).await.unwrap(), 100);
    assert!(l.store().is_empty());
}

mod batch;
mod cancel;
mod harness;
mod reserve;
