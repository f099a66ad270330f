//! Runs the algorithms of a [`Policy`] against a [`Store`] under
//! compare-and-swap.

use std::sync::Arc;
use std::time::Duration;

use crate::algorithm::{Outcome, evaluate};
use crate::clock::{Clock, Timestamp};
use crate::domain::{StateKey, Subject, Subjects};
use crate::policy::{Limit, Policy};
use crate::store::{CasOutcome, KeyState, Reset, Store, StoreError, Versioned, Write};

/// Why a decision could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimiterError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Every attempt lost its compare-and-swap to a concurrent writer.
    #[error("gave up after {attempts} conflicting attempts")]
    Contention {
        /// Attempts made.
        attempts: u32,
    },
    /// The policy counts a subject the request does not have.
    #[error("the policy limits by {0}, but the request has no {0}")]
    MissingSubject(Subject),
}

impl LimiterError {
    /// Whether the same request may succeed if tried again.
    pub fn is_transient(&self) -> bool {
        match self {
            LimiterError::Store(e) => e.is_transient(),
            LimiterError::Contention { .. } => true,
            LimiterError::MissingSubject(_) => false,
        }
    }
}

/// One limit's part of a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitStatus {
    /// The limit.
    pub limit: Limit,
    /// Quota left after the decision.
    pub remaining: u64,
    /// Time until capacity next frees up.
    pub reset_after: Duration,
    /// `Some` if this limit denied the request: when the same request would
    /// be admitted by it.
    pub retry_after: Option<Duration>,
}

/// The answer to "may this upload go ahead?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether every limit allowed it (and it was consumed from all).
    pub allowed: bool,
    /// Per limit, in policy order.
    pub limits: Vec<LimitStatus>,
    /// Compare-and-swap attempts made (1 without contention, 0 for reads).
    pub attempts: u32,
}

impl Decision {
    /// When the request could next succeed: the latest retry time of the
    /// limits that denied it.
    pub fn retry_after(&self) -> Option<Duration> {
        self.limits.iter().filter_map(|l| l.retry_after).max()
    }

    /// The limits that denied the request.
    pub fn violated(&self) -> impl Iterator<Item = &LimitStatus> {
        self.limits.iter().filter(|l| l.retry_after.is_some())
    }
}

/// Admits or denies uploads against a policy, atomically, on any store.
///
/// All limits of one subject live under one key; a request touches one key
/// per subject in the policy (usually one or two) and commits them in one
/// compare-and-swap, so concurrent requests can never over-admit and a
/// denial writes nothing.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use uploadgate_core::{FakeClock, Limiter, MemoryStore, Subjects, Timestamp, UserId};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clock = FakeClock::new(Timestamp(1_800_000_000_000));
/// let policy = Arc::new("uploads=user:3/1h".parse()?);
/// let limiter = Limiter::new(policy, MemoryStore::new(), clock.clone());
/// let alice = Subjects { user: UserId::parse("alice")?, ip: None };
///
/// // Three uploads, five minutes apart, are admitted...
/// for left in [2, 1, 0] {
///     let decision = limiter.consume(&alice, 1_000).await?;
///     assert!(decision.allowed);
///     assert_eq!(decision.limits[0].remaining, left);
///     clock.advance(Duration::from_secs(300));
/// }
/// // ...the fourth is not, and is told to come back when the first one
/// // leaves the window: one hour after it, which is 45 minutes from now.
/// let decision = limiter.consume(&alice, 1_000).await?;
/// assert!(!decision.allowed);
/// assert_eq!(decision.retry_after(), Some(Duration::from_secs(45 * 60)));
/// assert_eq!(decision.violated().next().map(|l| l.limit.name.as_str()), Some("uploads"));
///
/// // A second early it is still denied; at that moment it is admitted.
/// clock.advance(Duration::from_secs(45 * 60 - 1));
/// assert!(!limiter.consume(&alice, 1_000).await?.allowed);
/// clock.advance(Duration::from_secs(1));
/// let decision = limiter.consume(&alice, 1_000).await?;
/// assert!(decision.allowed);
/// assert_eq!(decision.limits[0].remaining, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Limiter<S, C> {
    policy: Arc<Policy>,
    store: S,
    clock: C,
}

impl<S: Store, C: Clock> Limiter<S, C> {
    /// Compare-and-swap attempts before giving up.
    /// Each conflict means another request succeeded, so this bounds how
    /// many concurrent admissions one request waits through.
    pub const MAX_ATTEMPTS: u32 = 64;

    /// A limiter for `policy` on `store`, reading time from `clock`.
    pub fn new(policy: Arc<Policy>, store: S, clock: C) -> Self {
        Limiter {
            policy,
            store,
            clock,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Charges one upload of `size` bytes to every limit, or to none.
    pub async fn consume(&self, subjects: &Subjects, size: u64) -> Result<Decision, LimiterError> {
        let keys = self.keys(subjects)?;
        let mut current = self.store.load_cached(&keys).await?;
        let mut confirmed = false;
        for attempt in 1..=Self::MAX_ATTEMPTS {
            let now = self.clock.now();
            let (mut decision, mut states) = self.evaluate(&keys, &current, now, Some(size));
            decision.attempts = attempt;
            if !decision.allowed && !confirmed {
                // Deny on cached state only if the store vouches for it.
                confirmed = true;
                if let Some(fresh) = self.store.refresh_for_denial(&keys).await? {
                    current = fresh;
                    let (d, s) = self.evaluate(&keys, &current, now, Some(size));
                    (decision, states) = (
                        Decision {
                            attempts: attempt,
                            ..d
                        },
                        s,
                    );
                }
            }
            if !decision.allowed {
                // Report what is left without this request's cost.
                let (mut report, _) = self.evaluate(&keys, &current, now, None);
                for (r, d) in report.limits.iter_mut().zip(&decision.limits) {
                    r.retry_after = d.retry_after;
                }
                report.allowed = false;
                report.attempts = attempt;
                return Ok(report);
            }
            let writes = keys
                .iter()
                .zip(&current)
                .zip(states)
                .map(|((key, cur), (state, expire_at))| Write {
                    key: key.clone(),
                    expected: cur.as_ref().map(|v| v.version),
                    state,
                    expire_at,
                })
                .collect();
            match self.store.compare_and_swap(writes).await? {
                CasOutcome::Committed(_) => return Ok(decision),
                CasOutcome::Conflict(fresh) => {
                    for (key, state) in fresh {
                        if let Some(i) = keys.iter().position(|k| *k == key) {
                            current[i] = state;
                        }
                    }
                }
            }
        }
        Err(LimiterError::Contention {
            attempts: Self::MAX_ATTEMPTS,
        })
    }

    /// What every limit has left, consuming nothing.
    pub async fn peek(&self, subjects: &Subjects) -> Result<Decision, LimiterError> {
        let keys = self.keys(subjects)?;
        let current = self.store.load(&keys).await?;
        let (mut decision, _) = self.evaluate(&keys, &current, self.clock.now(), None);
        decision.attempts = 0;
        Ok(decision)
    }

    fn keys(&self, subjects: &Subjects) -> Result<Vec<StateKey>, LimiterError> {
        self.policy
            .subjects()
            .into_iter()
            .map(|s| subjects.key(s).ok_or(LimiterError::MissingSubject(s)))
            .collect()
    }

    /// Runs every limit for an upload of `size` bytes (`None`: a read that
    /// charges nothing); returns the decision and, per key, the new state
    /// and when it expires.
    fn evaluate(
        &self,
        keys: &[StateKey],
        current: &[Option<Versioned>],
        now: Timestamp,
        size: Option<u64>,
    ) -> (Decision, Vec<(KeyState, Timestamp)>) {
        let subjects = self.policy.subjects();
        let mut states: Vec<(KeyState, Timestamp)> = vec![(KeyState::default(), now); keys.len()];
        let mut limits = Vec::with_capacity(self.policy.limits().len());
        let mut allowed = true;
        for limit in self.policy.limits() {
            // `keys` is built from `subjects()`, so every limit has its key.
            let i = subjects
                .iter()
                .position(|s| *s == limit.subject)
                .unwrap_or(0);
            let prev = current
                .get(i)
                .and_then(Option::as_ref)
                .and_then(|v| v.state.limits.get(limit.name.as_str()));
            let cost = size.map_or(0, |s| limit.amount.cost_of(s));
            let (o, state): (Outcome, _) = evaluate(limit, prev, now, cost);
            allowed &= o.allowed;
            if let Some((state, expires)) = state {
                states[i].1 = states[i].1.max(expires);
                states[i]
                    .0
                    .limits
                    .insert(limit.name.as_str().to_owned(), state);
            }
            limits.push(LimitStatus {
                limit: limit.clone(),
                remaining: o.remaining,
                reset_after: Duration::from_millis(o.reset_after_ms),
                retry_after: (!o.allowed).then(|| Duration::from_millis(o.retry_after_ms)),
            });
        }
        (
            Decision {
                allowed,
                limits,
                attempts: 0,
            },
            states,
        )
    }
}

impl<S: Reset, C: Clock> Limiter<S, C> {
    /// Forgets all usage of one subject. Returns whether it had any.
    pub async fn reset(&self, key: &StateKey) -> Result<bool, LimiterError> {
        Ok(self.store.delete(key).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FakeClock, MemoryStore, UserId};

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
}
