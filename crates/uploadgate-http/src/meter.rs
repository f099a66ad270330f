//! The limiter as the handlers see it: [`Meter`], an object-safe view of
//! [`Limiter`] over any store and clock. The router holds one
//! `Arc<dyn Meter>`, so no handler, and no signature above them, carries a
//! store type parameter; the price is one boxed future per decision, next to
//! a store round trip or an fsync.

use std::future::Future;
use std::pin::Pin;

use uploadgate_core::{
    Charge, Clock, Decision, Limiter, LimiterError, Policy, Runtime, Store, StoreError, Subjects,
    Task, Timestamp,
};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Tokio, as the limiter's [`Runtime`]: coalesced batches run as their
/// own tasks (so they settle even if every waiting request is cancelled),
/// and the pause before retrying a conflict is tokio's sleep.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    fn spawn(&self, task: Task) {
        // Never panics: outside a runtime (shutting down), the batch's own
        // callers still drive it, so dropping the task is safe.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(task);
        }
    }

    fn sleep(&self, duration: std::time::Duration) -> Task {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// What the handlers ask of the limiter.
pub trait Meter: Send + Sync + 'static {
    /// Charges what `charge` asks (its tier's limits, its idempotency
    /// key) to every limit, or to none.
    fn consume<'a>(
        &'a self,
        who: &'a Subjects,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<Decision, LimiterError>>;

    /// What every limit of `tier` has left, consuming nothing.
    fn peek<'a>(
        &'a self,
        who: &'a Subjects,
        tier: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Decision, LimiterError>>;

    /// Whether `name` is a quota tier.
    fn has_tier(&self, name: &str) -> bool;

    /// The policy of `tier` (the default one for `None` or an unknown name).
    fn policy_of(&self, tier: Option<&str>) -> &Policy;

    /// Deletes idle state (stores with their own expiry do nothing).
    fn purge_expired(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// The limiter's "now".
    fn now(&self) -> Timestamp;
}

impl<S: Store, C: Clock> Meter for Limiter<S, C> {
    fn consume<'a>(
        &'a self,
        who: &'a Subjects,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<Decision, LimiterError>> {
        Box::pin(Limiter::charge(self, who, charge))
    }

    fn peek<'a>(
        &'a self,
        who: &'a Subjects,
        tier: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Decision, LimiterError>> {
        Box::pin(Limiter::peek_tier(self, who, tier))
    }

    fn has_tier(&self, name: &str) -> bool {
        Limiter::has_tier(self, name)
    }

    fn policy_of(&self, tier: Option<&str>) -> &Policy {
        Limiter::policy_of(self, tier)
    }

    fn purge_expired(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.store().purge_expired(self.clock().now()))
    }

    fn now(&self) -> Timestamp {
        self.clock().now()
    }
}
