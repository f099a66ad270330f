//! The limiter algorithms, as pure state transitions.
//!
//! Each is a function `(state, now, cost) -> (outcome, new_state)` with no
//! I/O and no clock of its own, so the same code runs on every store and is
//! tested against brute-force oracles with proptest. A denied request leaves
//! the state as it was (only pruned), so denial never consumes quota.
//!
//! Each algorithm owns two types: the window it counts over (a [`Span`] for
//! sliding and GCRA, a calendar [`Window`] for fixed) and its state
//! ([`SlidingState`], [`GcraState`], [`FixedState`]). [`AlgorithmState`]
//! ties them together; [`evaluate`] picks the algorithm a [`Limit`] names.
//! A new transition (say, handing back an unused reservation) is one more
//! method on that trait, written once per algorithm against its own types.
//!
//! [`Span`]: crate::Span
//! [`Window`]: crate::Window

mod fixed;
mod gcra;
mod sliding;

pub use fixed::{FixedState, fixed, window_bounds};
pub use gcra::{GcraState, gcra};
pub use sliding::{SlidingState, sliding};

use crate::clock::Timestamp;
use crate::policy::{Algorithm, Limit};
use crate::store::LimitState;

/// What one limit says about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether this limit admits the request.
    pub allowed: bool,
    /// Quota left after the decision (after consuming, if allowed).
    pub remaining: u64,
    /// Milliseconds until capacity next frees up (0 if nothing is used).
    pub reset_after_ms: u64,
    /// If denied: milliseconds until this same request would be admitted.
    /// 0 when allowed.
    pub retry_after_ms: u64,
}

/// The state of one algorithm, with the window kind it counts over and its
/// pure transitions.
pub trait AlgorithmState: Default + Into<LimitState> {
    /// The window the algorithm counts over.
    type Window: Copy;

    /// Charges `cost` at `now` against `quota` per `window`: the outcome and
    /// the state after it (this state, pruned, if denied).
    fn consume(
        &self,
        quota: u64,
        window: Self::Window,
        now: Timestamp,
        cost: u64,
    ) -> (Outcome, Self);

    /// When this state stops mattering (after that it reads as empty), or
    /// `None` if it holds nothing worth storing.
    fn expires_at(&self, window: Self::Window, now: Timestamp) -> Option<Timestamp>;

    /// This algorithm's state, if `state` is one; a state of another
    /// algorithm (left by a policy change) is `None` and counts as empty.
    fn from_limit(state: &LimitState) -> Option<&Self>;
}

/// Evaluates one limit. Returns the outcome and, unless the limit holds
/// nothing worth storing, the state to store and when it expires.
pub fn evaluate(
    limit: &Limit,
    state: Option<&LimitState>,
    now: Timestamp,
    cost: u64,
) -> (Outcome, Option<(LimitState, Timestamp)>) {
    let quota = limit.amount.value.get();
    match limit.algorithm {
        Algorithm::Sliding(span) => step::<SlidingState>(quota, span, state, now, cost),
        Algorithm::Gcra(span) => step::<GcraState>(quota, span, state, now, cost),
        Algorithm::Fixed(window) => step::<FixedState>(quota, window, state, now, cost),
    }
}

fn step<S: AlgorithmState>(
    quota: u64,
    window: S::Window,
    state: Option<&LimitState>,
    now: Timestamp,
    cost: u64,
) -> (Outcome, Option<(LimitState, Timestamp)>) {
    let empty = S::default();
    let prev = state.and_then(S::from_limit).unwrap_or(&empty);
    let (outcome, next) = prev.consume(quota, window, now, cost);
    let stored = next
        .expires_at(window, now)
        .map(|expires| (next.into(), expires));
    (outcome, stored)
}

impl From<SlidingState> for LimitState {
    fn from(s: SlidingState) -> Self {
        LimitState::Sliding(s)
    }
}

impl From<GcraState> for LimitState {
    fn from(s: GcraState) -> Self {
        LimitState::Gcra(s)
    }
}

impl From<FixedState> for LimitState {
    fn from(s: FixedState) -> Self {
        LimitState::Fixed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Window;

    fn limit(raw: &str) -> Limit {
        raw.parse().unwrap()
    }

    #[test]
    fn each_limit_runs_its_own_algorithm_and_keeps_its_state() {
        let now = Timestamp(1_795_873_500_000);
        let (o, s) = evaluate(&limit("a=user:2/1h"), None, now, 1);
        assert!(o.allowed && o.remaining == 1);
        let entries = vec![(now.as_millis(), 1)];
        assert_eq!(
            s,
            Some((
                LimitState::Sliding(SlidingState { entries }),
                Timestamp(now.as_millis() + 3_600_000)
            ))
        );
        let (_, s) = evaluate(&limit("a=user:2/1h:gcra"), None, now, 1);
        let tat_ns = (now.as_millis() + 1_800_000) * 1_000_000;
        let state = LimitState::Gcra(GcraState { tat_ns, rem: 0 });
        assert_eq!(s, Some((state, Timestamp(now.as_millis() + 1_800_001))));
        let (_, s) = evaluate(&limit("a=user:2/1d:fixed"), None, now, 1);
        let start = 1_795_824_000_000; // that day, midnight UTC
        let state = LimitState::Fixed(FixedState { start, used: 1 });
        assert_eq!(s, Some((state, Timestamp(start + 86_400_000))));
    }

    #[test]
    fn a_state_of_another_algorithm_reads_as_empty() {
        let now = Timestamp(1_795_873_500_000);
        let sliding = LimitState::Sliding(SlidingState {
            entries: vec![(now.as_millis(), 5)],
        });
        let full = LimitState::Fixed(FixedState {
            start: 1_795_824_000_000,
            used: 5,
        });
        for (raw, stale) in [
            ("a=user:5/1d:fixed", &sliding),
            ("a=user:5/1d:gcra", &full),
            ("a=user:5/1d", &full),
        ] {
            let (o, _) = evaluate(&limit(raw), Some(stale), now, 1);
            assert!(o.allowed, "{raw}");
            assert_eq!(o.remaining, 4, "{raw}");
        }
        // The same state under its own algorithm is full.
        let (o, _) = evaluate(&limit("a=user:5/1d:fixed"), Some(&full), now, 1);
        assert!(!o.allowed);
    }

    #[test]
    fn nothing_is_stored_for_a_peek_at_an_empty_limit() {
        let now = Timestamp(1_000_000);
        for raw in ["a=user:5/1h", "a=user:5/1h:gcra", "a=user:5/1mo:fixed"] {
            let (o, s) = evaluate(&limit(raw), None, now, 0);
            assert_eq!((o.allowed, o.remaining, s), (true, 5, None), "{raw}");
        }
    }

    #[test]
    fn calendar_months_count_as_fixed_windows() {
        let l = limit("m=user:3/1mo:fixed");
        assert_eq!(l.algorithm, Algorithm::Fixed(Window::CalendarMonth));
        // 2026-11-28: the window is November, so it expires 31 days after
        // the first (the nominal month, never before the real one ends).
        let (_, s) = evaluate(&l, None, Timestamp(1_795_873_500_000), 1);
        let start = 1_793_491_200_000; // 2026-11-01T00:00:00Z
        let state = LimitState::Fixed(FixedState { start, used: 1 });
        assert_eq!(s, Some((state, Timestamp(start + 31 * 86_400_000))));
    }
}
