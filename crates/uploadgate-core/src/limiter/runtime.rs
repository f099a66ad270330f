//! What the limiter may ask of an async runtime, and how long it pauses
//! after losing a compare-and-swap.
//!
//! The core has no runtime of its own. Like the [`Clock`](crate::Clock), the
//! runtime is injected: the runner passes a [`Runtime`] (the HTTP layer
//! gives tokio's `spawn` and `sleep`). Without one the limiter still works:
//! a batch is driven by the callers waiting on it, and a lost
//! compare-and-swap is retried at once (the retry is computed on the state
//! the conflict returned, so it needs no pause to be correct; the pause only
//! spreads out writers that collided).
//!
//! [`Backoff`] is the pure part: exponential ceilings with full jitter,
//! and the bound on attempts. The random draw is an argument, so schedules
//! are tested without randomness or sleeping.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A boxed, sendable unit of work.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The two things the limiter needs from an async runtime.
pub trait Runtime: Send + Sync + 'static {
    /// Runs `task` to completion on its own, whatever happens to the
    /// caller. The limiter gives it each coalesced batch, so a batch
    /// finishes (and its charges settle) even when every request waiting on
    /// it is cancelled.
    ///
    /// It may be called while a dropped request is being destroyed, so it
    /// must not panic: if the task cannot be spawned (the runtime is
    /// shutting down), dropping it is safe, as the batch's own callers still
    /// drive it (e.g. `if let Ok(h) = Handle::try_current() { h.spawn(task); }`).
    fn spawn(&self, task: Task);

    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Task;
}

/// How the limiter retries a compare-and-swap lost to another process:
/// after the `n`th conflict in a row it pauses a random time between zero
/// and `first · 2ⁿ⁻¹`, at most `max` ("full jitter"), and after
/// [`attempts`](Backoff::attempts) attempts it gives up with a
/// [`Contention`](crate::Contention) denial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    attempts: u32,
}

impl Backoff {
    /// 2 ms (about one DynamoDB round trip) doubling to 64 ms, 32 attempts:
    /// at most about 1.8 s of pauses, half that expected. Within one
    /// process requests on a key are coalesced, so a batch only loses to
    /// other processes' batches, and each loss means one of them committed.
    pub const DEFAULT: Backoff = Backoff {
        first: Duration::from_millis(2),
        max: Duration::from_millis(64),
        attempts: 32,
    };

    /// A schedule: pauses from `first` doubling up to `max` (at least
    /// `first`), and at least one attempt.
    pub fn new(first: Duration, max: Duration, attempts: u32) -> Self {
        Backoff {
            first,
            max: max.max(first),
            attempts: attempts.max(1),
        }
    }

    /// Compare-and-swap attempts before giving up.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The longest pause after the `conflicts`th conflict in a row (from 1).
    pub fn ceiling(&self, conflicts: u32) -> Duration {
        let doublings = conflicts.saturating_sub(1).min(31);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }

    /// The pause after the `conflicts`th conflict in a row, drawn from
    /// `[0, ceiling]` by `random` (uniform over all `u64`s), in
    /// microseconds.
    pub fn pause(&self, conflicts: u32, random: u64) -> Duration {
        let ceiling = u64::try_from(self.ceiling(conflicts).as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(random % ceiling.saturating_add(1))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A random `u64` for the jitter, from the standard library's per-process
/// random hash keys (no dependency, no global generator).
pub(super) fn jitter_seed() -> u64 {
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(DRAWS.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_from_the_first_pause_up_to_the_cap() {
        let b = Backoff::new(Duration::from_millis(2), Duration::from_millis(20), 9);
        let ceilings: Vec<u128> = (1..=6).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [2, 4, 8, 16, 20, 20]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_millis(20));
        assert_eq!(b.attempts(), 9);
    }

    #[test]
    fn a_pause_is_drawn_between_zero_and_the_ceiling() {
        let b = Backoff::new(Duration::from_millis(2), Duration::from_millis(64), 9);
        assert_eq!(b.pause(1, 0), Duration::ZERO);
        assert_eq!(b.pause(1, 2_000), Duration::from_millis(2));
        assert_eq!(b.pause(1, 2_001), Duration::ZERO);
        assert_eq!(b.pause(3, 7_999), Duration::from_micros(7_999));
        assert!((0..1_000).all(|_| b.pause(7, jitter_seed()) <= Duration::from_millis(64)));
    }

    #[test]
    fn degenerate_schedules_still_make_one_attempt_and_never_shrink() {
        let b = Backoff::new(Duration::from_millis(5), Duration::from_millis(1), 0);
        assert_eq!(b.attempts(), 1);
        assert_eq!(b.ceiling(1), Duration::from_millis(5));
        assert_eq!(Backoff::default(), Backoff::DEFAULT);
    }
}
