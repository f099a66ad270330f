//! Runs the algorithms of a [`Policy`] against a [`Store`] under
//! compare-and-swap, coalescing concurrent requests on the same keys.
//!
//! Every request on a hot key running its own compare-and-swap loop costs
//! O(N²) attempts for N concurrent requests, and on DynamoDB every lost
//! race is a billed failed write. So within one process, requests that
//! touch the same key are decided together: applied in arrival order to one
//! view of their keys and committed with one compare-and-swap over all of
//! them (module `queue` forms the batches, `eval` decides them, `drive`
//! runs them). Each request still gets its own [`Decision`]. A request on
//! idle keys is a batch of one and costs what it always did.
//!
//! Conflicts with other processes are retried on the state they return,
//! after an exponential, jittered, bounded pause ([`Backoff`], slept on the
//! injected [`Runtime`]); running out of attempts is a denial flagged with
//! [`Contention`], not an error.
//!
//! A denial decided on a cached view is confirmed through
//! [`Store::refresh_for_denial`] once per key, on the keys whose limits
//! denied it: a stale view of the others cannot make a denial wrong, and a
//! new user behind a busy address then costs no read.

mod decision;
mod drive;
mod eval;
mod queue;
mod reserve;
mod rules;
mod runtime;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use decision::{
    Backlog, Charge, Contention, Decision, GrantOutcome, GrantRequest, LimitStatus, LimiterError,
};
pub use queue::MAX_BATCH_KEYS;
pub use runtime::{Backoff, Runtime, Task};

use crate::clock::Clock;
use crate::domain::{StateKey, Subjects};
use crate::policy::Policy;
use crate::store::{KeyState, Reset, Store};

use drive::{Core, Settings};
use eval::Ask;
use queue::Arrival;
use rules::Rules;

/// Admits or denies uploads against a policy, atomically, on any store.
///
/// All limits of one subject live under one key; a request touches one key
/// per subject in the policy (usually one or two) and commits them in one
/// compare-and-swap, so concurrent requests can never over-admit and a
/// denial writes nothing. Concurrent requests sharing a key share that
/// compare-and-swap. A server should give it its [`Runtime`]
/// ([`with_runtime`](Limiter::with_runtime)): without one, conflicts with
/// other processes are retried without a pause.
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
pub struct Limiter<S, C> {
    core: Arc<Core<S, C>>,
    settings: Settings,
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for Limiter<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("core", &self.core)
            .field("settings", &self.settings)
            .finish()
    }
}

/// A handle on the same limiter: clones share its store, its batches and
/// its settings as they were when cloned.
impl<S, C> Clone for Limiter<S, C> {
    fn clone(&self) -> Self {
        Limiter {
            core: Arc::clone(&self.core),
            settings: self.settings.clone(),
        }
    }
}

impl<S: Store, C: Clock> Limiter<S, C> {
    /// A limiter for `policy` on `store`, reading time from `clock`, with no
    /// runtime (batches are driven by their callers, conflicts retried
    /// without a pause) and the default [`Backoff`], in grant mode.
    pub fn new(policy: Arc<Policy>, store: S, clock: C) -> Self {
        let rules = Rules::new(&policy, &[]);
        Limiter {
            core: Arc::new(Core {
                policy,
                tiers: Vec::new(),
                rules,
                store,
                clock,
                queue: Default::default(),
            }),
            settings: Settings {
                runtime: None,
                backoff: Backoff::DEFAULT,
            },
        }
    }

    /// Adds named policies (quota tiers): a request names its tier in its
    /// [`Charge`]. One subject's state serves every tier, by limit name, so
    /// a user who changes tier keeps what they used of the limits both
    /// tiers have, and what they used of the others waits for them.
    pub fn with_tiers(mut self, tiers: Vec<(String, Policy)>) -> Self {
        let tiers: Vec<(String, Arc<Policy>)> = tiers
            .into_iter()
            .map(|(name, p)| (name, Arc::new(p)))
            .collect();
        match Arc::get_mut(&mut self.core) {
            Some(core) => {
                let grace = core.rules.grace;
                core.rules = Rules::new(&core.policy, &tiers);
                core.rules.grace = grace;
                core.tiers = tiers;
            }
            // Built and not yet shared: unreachable, and harmless if not.
            None => debug_assert!(false, "with_tiers on a shared limiter"),
        }
        self
    }

    /// Chooses when uploads are paid for (`UPLOADGATE_CHARGE`): `None` is
    /// grant mode (charged when granted; the default, and what this limiter
    /// did before settlement existed), `Some(grace)` is upload mode. There a
    /// grant is charged as before and also recorded as a pending
    /// reservation on the user's key (from the [`Charge`]'s
    /// `reservation`), in the same compare-and-swap; it is settled when
    /// its object lands ([`Settler`](crate::settle::Settler)), and a pending
    /// reservation whose URL expired more than `grace` ago is released (its
    /// charge to the user's limits handed back) by the next decision or
    /// read on that user's key. See `docs/design/settlement.md`.
    pub fn with_settlement(mut self, grace: Option<Duration>) -> Self {
        match Arc::get_mut(&mut self.core) {
            Some(core) => core.rules.grace = grace,
            // Built and not yet shared: unreachable, and harmless if not.
            None => debug_assert!(false, "with_settlement on a shared limiter"),
        }
        self
    }

    /// The settlement grace in upload mode; `None` in grant mode.
    pub fn settlement(&self) -> Option<Duration> {
        self.core.rules.grace
    }

    /// The policy of `tier` (the default policy for `None` or a name no
    /// tier has).
    pub fn policy_of(&self, tier: Option<&str>) -> &Arc<Policy> {
        tier.and_then(|t| self.core.tiers.iter().find(|(n, _)| n == t))
            .map_or(&self.core.policy, |(_, p)| p)
    }

    /// Whether `tier` names a tier.
    pub fn has_tier(&self, tier: &str) -> bool {
        self.core.tiers.iter().any(|(n, _)| n == tier)
    }

    /// Runs coalesced batches on `runtime` (so they finish even if all
    /// their callers leave) and sleeps there between conflicting attempts.
    pub fn with_runtime(mut self, runtime: Arc<dyn Runtime>) -> Self {
        self.settings.runtime = Some(runtime);
        self
    }

    /// Retries conflicts with other processes on this schedule.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.settings.backoff = backoff;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.core.policy
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.core.store
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.core.clock
    }

    /// The retry schedule.
    pub fn backoff(&self) -> Backoff {
        self.settings.backoff
    }

    /// Charges one upload of `size` bytes to every limit, or to none.
    ///
    /// Concurrent calls on the same keys share one compare-and-swap; the
    /// answer is this call's own. Dropping the future before it resolves
    /// never affects the other calls: if this call's batch had not started
    /// writing it is not charged; if it had, the charge stands.
    pub async fn consume(&self, subjects: &Subjects, size: u64) -> Result<Decision, LimiterError> {
        self.charge(
            subjects,
            &Charge {
                size,
                ..Charge::default()
            },
        )
        .await
    }

    /// Charges what `charge` asks (its tier's limits, its idempotency key),
    /// as [`consume`](Limiter::consume) does.
    pub async fn charge(
        &self,
        subjects: &Subjects,
        charge: &Charge,
    ) -> Result<Decision, LimiterError> {
        let policy = Arc::clone(self.policy_of(charge.tier.as_deref()));
        let tier = charge.tier.clone().filter(|t| self.has_tier(t));
        let mut keys = keys(&policy, subjects)?;
        let grant = match &charge.grant {
            Some(request) => {
                let holder = subjects
                    .key(request.holder)
                    .ok_or(LimiterError::MissingSubject(request.holder))?;
                let at = match keys.iter().position(|k| *k == holder) {
                    Some(at) => at,
                    None => {
                        keys.push(holder);
                        keys.len() - 1
                    }
                };
                Some((request.clone(), at))
            }
            None => None,
        };
        // Upload mode: the user's key is where reservations live; a job
        // that records one holds it even if its policy has no user limit.
        let (user, reservation) = match self.core.rules.grace {
            None => (None, None),
            Some(_) => {
                let key = StateKey::user(&subjects.user);
                let at = keys.iter().position(|k| *k == key);
                match &charge.reservation {
                    None => (at, None),
                    Some(request) => {
                        let at = at.unwrap_or_else(|| {
                            keys.push(key);
                            keys.len() - 1
                        });
                        (Some(at), Some(Box::new(request.clone())))
                    }
                }
            }
        };
        let ask = Ask {
            size: charge.size,
            policy,
            grant,
            user,
            reservation,
            tier,
        };
        let (arrival, answered) = self.core.queue.arrive(keys, ask);
        match arrival {
            Arrival::Lead(job) => {
                drive::run(Arc::clone(&self.core), self.settings.clone(), vec![job]).await;
            }
            Arrival::Wait(assigned) => {
                // Help drive the batch this call was put in: without a
                // runtime, its callers are what drive it.
                if let Ok(batch) = assigned.await {
                    batch.await;
                }
            }
        }
        answered.await.unwrap_or(Err(LimiterError::Abandoned))
    }

    /// What every limit has left, consuming nothing.
    pub async fn peek(&self, subjects: &Subjects) -> Result<Decision, LimiterError> {
        self.peek_tier(subjects, None).await
    }

    /// What every limit of `tier` has left, consuming nothing.
    pub async fn peek_tier(
        &self,
        subjects: &Subjects,
        tier: Option<&str>,
    ) -> Result<Decision, LimiterError> {
        let policy = self.policy_of(tier);
        let keys = keys(policy, subjects)?;
        let current = self.core.store.load(&keys).await?;
        let mut current: Vec<Option<&KeyState>> = current
            .iter()
            .map(|v| v.as_ref().map(|v| &v.state))
            .collect();
        let now = self.core.clock.now();
        // Due reservations show as released (the next decision writes it).
        let user = StateKey::user(&subjects.user);
        let user = keys.iter().position(|k| *k == user);
        let released = eval::released(&self.core.rules, user, &current, now);
        if let (Some(state), Some(u)) = (&released, user) {
            current[u] = Some(state);
        }
        let (decision, _) = eval::evaluate(policy, &self.core.rules, &current, now, None);
        Ok(decision)
    }
}

/// The keys of a request under `policy`: one per subject it counts.
fn keys(policy: &Policy, subjects: &Subjects) -> Result<Vec<StateKey>, LimiterError> {
    policy
        .subjects()
        .into_iter()
        .map(|s| subjects.key(s).ok_or(LimiterError::MissingSubject(s)))
        .collect()
}

impl<S: Reset, C: Clock> Limiter<S, C> {
    /// Forgets all usage of one subject. Returns whether it had any.
    pub async fn reset(&self, key: &StateKey) -> Result<bool, LimiterError> {
        Ok(self.core.store.delete(key).await?)
    }
}
