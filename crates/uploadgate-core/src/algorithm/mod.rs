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
//! A new transition is one more method on that trait, written once per
//! algorithm against its own types: [`AlgorithmState::release`] hands back
//! an unused reservation, and [`release`] dispatches it as `evaluate` does;
//! [`AlgorithmState::force`] charges an upload that landed after its
//! reservation was released, past the limit if need be ([`force`]).
//!
//! [`Span`]: crate::Span
//! [`Window`]: crate::Window

mod fixed;
mod force;
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

    /// Hands back `cost` that [`consume`](Self::consume) charged at
    /// `granted_at` (the `now` it was called with), seen at `now`: the state
    /// as if that charge had not been made, as far as it still counts.
    ///
    /// A charge counts for at most one window after it was made, so a
    /// release whose charge has left the window (or, for fixed, whose window
    /// is over) changes nothing the next decision sees. Release never hands
    /// back more than `cost`, never lifts a limit above full capacity, and
    /// never takes capacity away. Like `consume`, it also prunes what has
    /// expired by `now`. Releasing the same charge twice is the caller's
    /// error; it is bounded (no underflow) but may hand back another charge
    /// made in the same millisecond or window.
    fn release(
        &self,
        quota: u64,
        window: Self::Window,
        granted_at: Timestamp,
        cost: u64,
        now: Timestamp,
    ) -> Self;

    /// Charges `cost` at `now` without asking the limit: the state as if
    /// [`consume`](Self::consume) had admitted it, even past `quota` (sliding
    /// adds the entry, fixed adds to the window of `now`, GCRA sets the TAT
    /// to `max(TAT, now) + cost` emission intervals). Usage past the quota
    /// makes the limit deny until enough of it has left the window. Prunes
    /// what has expired by `now`, as `consume` does.
    fn force(&self, quota: u64, window: Self::Window, now: Timestamp, cost: u64) -> Self;
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

/// Hands back `cost` that `limit` charged at `granted_at`, seen at `now`
/// (see [`AlgorithmState::release`]). Returns the state to store and when
/// it expires, or `None` if the limit then holds nothing worth storing. A
/// state of another algorithm (left by a policy change) reads as empty, so
/// there is nothing to release and the result is `None`.
pub fn release(
    limit: &Limit,
    state: Option<&LimitState>,
    granted_at: Timestamp,
    cost: u64,
    now: Timestamp,
) -> Option<(LimitState, Timestamp)> {
    let quota = limit.amount.value.get();
    match limit.algorithm {
        Algorithm::Sliding(span) => {
            hand_back::<SlidingState>(quota, span, state, granted_at, cost, now)
        }
        Algorithm::Gcra(span) => hand_back::<GcraState>(quota, span, state, granted_at, cost, now),
        Algorithm::Fixed(window) => {
            hand_back::<FixedState>(quota, window, state, granted_at, cost, now)
        }
    }
}

fn hand_back<S: AlgorithmState>(
    quota: u64,
    window: S::Window,
    state: Option<&LimitState>,
    granted_at: Timestamp,
    cost: u64,
    now: Timestamp,
) -> Option<(LimitState, Timestamp)> {
    let prev = state.and_then(S::from_limit)?;
    let next = prev.release(quota, window, granted_at, cost, now);
    next.expires_at(window, now)
        .map(|expires| (next.into(), expires))
}

/// Charges `cost` to `limit` at `now` whatever it allows (see
/// [`AlgorithmState::force`]). Returns the state to store and when it
/// expires, or `None` if the limit then holds nothing worth storing (a zero
/// cost on an empty limit). A state of another algorithm reads as empty.
pub fn force(
    limit: &Limit,
    state: Option<&LimitState>,
    now: Timestamp,
    cost: u64,
) -> Option<(LimitState, Timestamp)> {
    let quota = limit.amount.value.get();
    match limit.algorithm {
        Algorithm::Sliding(span) => charge::<SlidingState>(quota, span, state, now, cost),
        Algorithm::Gcra(span) => charge::<GcraState>(quota, span, state, now, cost),
        Algorithm::Fixed(window) => charge::<FixedState>(quota, window, state, now, cost),
    }
}

fn charge<S: AlgorithmState>(
    quota: u64,
    window: S::Window,
    state: Option<&LimitState>,
    now: Timestamp,
    cost: u64,
) -> Option<(LimitState, Timestamp)> {
    let empty = S::default();
    let next = state
        .and_then(S::from_limit)
        .unwrap_or(&empty)
        .force(quota, window, now, cost);
    next.expires_at(window, now)
        .map(|expires| (next.into(), expires))
}

/// What a request of `cost` would get from `state` at `now` and at three
/// later times, `step` ms apart: the part of a state the next decisions see.
#[cfg(test)]
fn outlook<S: AlgorithmState>(
    state: &S,
    quota: u64,
    window: S::Window,
    now: u64,
    step: u64,
    cost: u64,
) -> Vec<Outcome> {
    (0..4)
        .map(|k| {
            state
                .consume(quota, window, Timestamp(now + k * step), cost)
                .0
        })
        .collect()
}

/// The law every algorithm's `release` keeps, checked by each one's
/// property test: charging `cost` (cut to what `state` has left) at `now`
/// and releasing it at once gives back the pruned state, and the same
/// outlook as never charging it.
#[cfg(test)]
fn release_right_after_consume_restores<S>(
    state: &S,
    quota: u64,
    window: S::Window,
    now: u64,
    cost: u64,
    next: u64,
    step: u64,
) -> Result<(), proptest::test_runner::TestCaseError>
where
    S: AlgorithmState + PartialEq + std::fmt::Debug,
{
    let at = Timestamp(now);
    let (peek, pruned) = state.consume(quota, window, at, 0);
    let cost = cost % (peek.remaining + 1);
    let (o, charged) = state.consume(quota, window, at, cost);
    proptest::prop_assert!(o.allowed);
    let back = charged.release(quota, window, at, cost, at);
    proptest::prop_assert_eq!(&back, &pruned);
    proptest::prop_assert_eq!(
        outlook(&back, quota, window, now, step, next),
        outlook(state, quota, window, now, step, next)
    );
    Ok(())
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

    #[test]
    fn release_hands_back_through_the_algorithm_of_the_limit() {
        let now = Timestamp(1_795_873_500_000);
        for raw in ["a=user:2/1h", "a=user:2/1h:gcra", "a=user:2/1d:fixed"] {
            let l = limit(raw);
            let (_, one) = evaluate(&l, None, now, 1);
            let (_, two) = evaluate(&l, one.as_ref().map(|(s, _)| s), now, 1);
            assert_ne!(one, two, "{raw}");
            // One of two back: the state (and expiry) of one charge.
            let back = release(&l, two.as_ref().map(|(s, _)| s), now, 1, now);
            assert_eq!(back, one, "{raw}");
            // The last one back: nothing left worth storing.
            let back = release(&l, one.as_ref().map(|(s, _)| s), now, 1, now);
            assert_eq!(back, None, "{raw}");
            assert_eq!(release(&l, None, now, 1, now), None, "{raw}");
        }
    }

    #[test]
    fn force_charges_through_the_algorithm_of_the_limit_past_its_quota() {
        let now = Timestamp(1_795_873_500_000);
        for raw in ["a=user:2/1h", "a=user:2/1h:gcra", "a=user:2/1d:fixed"] {
            let l = limit(raw);
            let (_, full) = evaluate(&l, None, now, 2);
            let forced = force(&l, full.as_ref().map(|(s, _)| s), now, 1);
            // Three charged of two: the next one waits, and what a denial
            // sees is what three admissions would have left.
            let (o, _) = evaluate(&l, forced.as_ref().map(|(s, _)| s), now, 1);
            assert!(!o.allowed, "{raw}");
            let (_, one) = evaluate(&l, None, now, 1);
            let back = release(&l, forced.as_ref().map(|(s, _)| s), now, 1, now);
            assert_eq!(back, full, "{raw}");
            assert_eq!(force(&l, None, now, 1), one, "{raw}");
            assert_eq!(force(&l, None, now, 0), None, "{raw}");
        }
        // Another algorithm's state reads as empty: one charge from zero.
        let (_, sliding) = evaluate(&limit("a=user:5/1d"), None, now, 3);
        let l = limit("a=user:5/1d:fixed");
        let (_, one) = evaluate(&l, None, now, 1);
        assert_eq!(force(&l, sliding.as_ref().map(|(s, _)| s), now, 1), one);
    }

    #[test]
    fn release_from_a_state_of_another_algorithm_is_nothing() {
        let now = Timestamp(1_795_873_500_000);
        let (_, sliding) = evaluate(&limit("a=user:5/1d"), None, now, 3);
        let sliding = sliding.map(|(s, _)| s);
        for raw in ["a=user:5/1d:fixed", "a=user:5/1d:gcra"] {
            assert_eq!(release(&limit(raw), sliding.as_ref(), now, 1, now), None);
        }
        // Under its own algorithm, the same state gets one back.
        let back = release(&limit("a=user:5/1d"), sliding.as_ref(), now, 1, now);
        let entries = vec![(now.as_millis(), 2)];
        let expires = Timestamp(now.as_millis() + 86_400_000);
        assert_eq!(
            back,
            Some((LimitState::Sliding(SlidingState { entries }), expires))
        );
    }
}
