//! The forced charge behind [`AlgorithmState::force`](super::AlgorithmState::force):
//! consume without asking the limit, for an upload that landed after its
//! reservation was released (a late settle). Usage is never lost, so it is
//! charged even past the limit; the limit then denies until enough of it
//! has left the window, exactly as if it had been admitted.
//!
//! Written here, one function per algorithm, so each algorithm's module
//! keeps to its own transitions and tests.

use super::{FixedState, GcraState, SlidingState, window_bounds};
use crate::clock::Timestamp;
use crate::policy::{Span, Window};

const NS_PER_MS: u128 = 1_000_000;

/// Sliding: the entries still in the window at `now`, plus `cost` at `now`
/// (merged into an entry of the same millisecond, as admissions are).
pub(super) fn sliding(state: &SlidingState, span: Span, now: Timestamp, cost: u64) -> SlidingState {
    let (w, now) = (span.as_millis(), now.as_millis());
    let mut entries: Vec<(u64, u64)> = state
        .entries
        .iter()
        .copied()
        .filter(|(t, _)| t.saturating_add(w) > now)
        .collect();
    if cost > 0 {
        match entries.iter_mut().rev().find(|(t, _)| *t == now) {
            Some((_, c)) => *c = c.saturating_add(cost),
            None => {
                entries.push((now, cost));
                // Another server's clock may be ahead of ours; keep order.
                entries.sort_by_key(|(t, _)| *t);
            }
        }
    }
    SlidingState { entries }
}

/// Fixed: `cost` added to the usage of the window of `now` (usage of
/// another window reads as zero there).
pub(super) fn fixed(state: &FixedState, window: Window, now: Timestamp, cost: u64) -> FixedState {
    let (start, _) = window_bounds(window, now.as_millis());
    let used = if state.start == start { state.used } else { 0 };
    FixedState {
        start,
        used: used.saturating_add(cost),
    }
}

/// GCRA: `TAT = max(TAT, now) + cost` emission intervals (`window /
/// quota` each), exactly, as admitting does but with no bound.
pub(super) fn gcra(
    state: &GcraState,
    quota: u64,
    span: Span,
    now: Timestamp,
    cost: u64,
) -> GcraState {
    if quota == 0 {
        return *state;
    }
    // In units of 1/quota ns, as in `gcra`.
    let q = u128::from(quota);
    let w = u128::from(span.as_millis()) * NS_PER_MS;
    let now_s = (u128::from(now.as_millis()) * NS_PER_MS).saturating_mul(q);
    let tat_s = (u128::from(state.tat_ns) * q + u128::from(state.rem)).max(now_s);
    let after = tat_s.saturating_add(u128::from(cost).saturating_mul(w));
    match u64::try_from(after / q) {
        Ok(tat_ns) => GcraState {
            tat_ns,
            rem: u64::try_from(after % q).unwrap_or(0),
        },
        // Past the end of time: the farthest TAT there is.
        Err(_) => GcraState {
            tat_ns: u64::MAX,
            rem: quota - 1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::AlgorithmState;
    use proptest::prelude::*;
    use std::num::NonZeroU64;

    fn span(ms: u64) -> Span {
        Span::from_millis(ms).unwrap()
    }

    fn win(ms: u64) -> Window {
        Window::Span(Span::new(NonZeroU64::new(ms).unwrap()))
    }

    #[test]
    fn sliding_force_goes_past_the_limit_and_the_limit_then_waits() {
        let s = SlidingState {
            entries: vec![(1_000, 2), (2_000, 1)],
        };
        let f = s.force(3, span(10_000), Timestamp(2_000), 2);
        assert_eq!(f.entries, [(1_000, 2), (2_000, 3)]);
        let f = f.force(3, span(10_000), Timestamp(3_000), 1);
        assert_eq!(f.entries, [(1_000, 2), (2_000, 3), (3_000, 1)]);
        // 6 used of 3: denied until 3 have left (at 2_000 + 10_000).
        let (o, _) = f.consume(3, span(10_000), Timestamp(3_000), 1);
        assert_eq!(
            (o.allowed, o.remaining, o.retry_after_ms),
            (false, 0, 9_000)
        );
        let (o, _) = f.consume(3, span(10_000), Timestamp(12_000), 1);
        assert_eq!((o.allowed, o.remaining), (true, 1));
        // Out of the window at 11_000: pruned; zero cost stores nothing new.
        let f = f.force(3, span(10_000), Timestamp(11_000), 0);
        assert_eq!(f.entries, [(2_000, 3), (3_000, 1)]);
    }

    #[test]
    fn fixed_force_adds_to_the_current_window_only() {
        let s = FixedState {
            start: 5_000,
            used: 3,
        };
        let f = s.force(3, win(1_000), Timestamp(5_500), 2);
        assert_eq!(
            f,
            FixedState {
                start: 5_000,
                used: 5
            }
        );
        assert!(!f.consume(3, win(1_000), Timestamp(5_999), 1).0.allowed);
        assert!(f.consume(3, win(1_000), Timestamp(6_000), 1).0.allowed);
        let f = s.force(3, win(1_000), Timestamp(6_100), 2);
        assert_eq!(
            f,
            FixedState {
                start: 6_000,
                used: 2
            }
        );
    }

    #[test]
    fn gcra_force_moves_the_tat_from_now_or_from_where_it_was() {
        // 30 per minute: one interval is 2 s.
        let w = span(60_000);
        let idle = GcraState {
            tat_ns: 500_000_000_000,
            rem: 0,
        };
        let f = idle.force(30, w, Timestamp(1_000_000), 3);
        assert_eq!(
            f,
            GcraState {
                tat_ns: 1_006_000_000_000,
                rem: 0
            }
        );
        // A full bucket, forced further: a TAT beyond one window ahead.
        let (_, full) = GcraState::default().consume(30, w, Timestamp(1_000_000), 30);
        let f = full.force(30, w, Timestamp(1_000_000), 2);
        assert_eq!(f.tat_ns, 1_064_000_000_000);
        let (o, _) = f.consume(30, w, Timestamp(1_000_000), 1);
        assert_eq!(
            (o.allowed, o.remaining, o.retry_after_ms),
            (false, 0, 6_000)
        );
        // Byte rates stay exact: a third of an interval is a remainder.
        let f = GcraState::default().force(3, span(1), Timestamp(0), 1);
        assert_eq!(
            f,
            GcraState {
                tat_ns: 333_333,
                rem: 1
            }
        );
        let f = GcraState::default().force(1, span(u64::MAX), Timestamp(u64::MAX), u64::MAX);
        assert_eq!(
            f,
            GcraState {
                tat_ns: u64::MAX,
                rem: 0
            }
        );
    }

    /// The sliding oracle of `sliding.rs`: the cost admitted (or forced) in
    /// `(now - W, now]`.
    fn used_sliding(history: &[(u64, u64)], w: u64, now: u64) -> u64 {
        history
            .iter()
            .filter(|(t, _)| *t + w > now && *t <= now)
            .map(|(_, c)| c)
            .sum()
    }

    /// The fixed oracle of `fixed.rs`: the cost in the window of `now`.
    fn used_fixed(history: &[(u64, u64)], w: u64, now: u64) -> u64 {
        history
            .iter()
            .filter(|(t, _)| t / w == now / w)
            .map(|(_, c)| c)
            .sum()
    }

    proptest! {
        /// A forced charge is an admission the limit did not get to refuse:
        /// the oracle remembers it like any other.
        #[test]
        fn sliding_force_matches_the_oracle(
            quota in 1u64..12,
            w in 1u64..5_000,
            steps in proptest::collection::vec((0u64..2_000, 0u64..8, any::<bool>()), 1..200),
        ) {
            let (mut now, mut state, mut history) = (0, SlidingState::default(), vec![]);
            for (dt, cost, forced) in steps {
                now += dt;
                let at = Timestamp(now);
                if forced {
                    state = state.force(quota, span(w), at, cost);
                    history.push((now, cost));
                } else {
                    let want = used_sliding(&history, w, now) + cost <= quota;
                    let (o, s) = state.consume(quota, span(w), at, cost);
                    prop_assert_eq!(o.allowed, want);
                    if o.allowed {
                        history.push((now, cost));
                    }
                    state = s;
                }
                let used = used_sliding(&history, w, now);
                let (peek, _) = state.consume(quota, span(w), at, 0);
                prop_assert_eq!(peek.remaining, quota.saturating_sub(used));
                prop_assert_eq!(state.entries.iter().map(|(_, c)| c).sum::<u64>(), used);
            }
        }

        #[test]
        fn fixed_force_matches_the_oracle(
            quota in 1u64..20,
            w in 1u64..10_000,
            steps in proptest::collection::vec((0u64..3_000, 0u64..8, any::<bool>()), 1..100),
        ) {
            let (mut now, mut state, mut history) = (0, FixedState::default(), vec![]);
            for (dt, cost, forced) in steps {
                now += dt;
                let at = Timestamp(now);
                if forced {
                    state = state.force(quota, win(w), at, cost);
                    history.push((now, cost));
                } else {
                    let want = used_fixed(&history, w, now) + cost <= quota;
                    let (o, s) = state.consume(quota, win(w), at, cost);
                    prop_assert_eq!(o.allowed, want);
                    if o.allowed {
                        history.push((now, cost));
                    }
                    state = s;
                }
                let used = used_fixed(&history, w, now);
                let (peek, _) = state.consume(quota, win(w), at, 0);
                prop_assert_eq!(peek.remaining, quota.saturating_sub(used));
                if used > 0 {
                    prop_assert_eq!(state, FixedState { start: now / w * w, used });
                }
            }
        }

        /// The leaky bucket of `gcra.rs`, where a forced charge pours in its
        /// cost whatever the level (it may overflow the bucket, which then
        /// refuses until it has drained below the quota again).
        #[test]
        fn gcra_force_agrees_with_a_leaky_bucket(
            quota in 1u64..50,
            w in 1u64..10_000,
            steps in proptest::collection::vec((0u64..3_000, 0u64..8, any::<bool>()), 1..100),
        ) {
            let (q, wq) = (u128::from(quota), u128::from(w));
            let mut now = 1_000u64;
            let mut state = GcraState::default();
            // The level times `w`, draining `quota` per ms.
            let (mut level, mut last) = (0u128, now);
            for (dt, cost, forced) in steps {
                now += dt;
                level = level.saturating_sub(u128::from(now - last) * q);
                last = now;
                let at = Timestamp(now);
                if forced {
                    state = state.force(quota, span(w), at, cost);
                    level += u128::from(cost) * wq;
                } else {
                    let want = level + u128::from(cost) * wq <= q * wq;
                    let (o, s) = state.consume(quota, span(w), at, cost);
                    prop_assert_eq!(o.allowed, want);
                    if o.allowed {
                        level += u128::from(cost) * wq;
                    }
                    state = s;
                }
                // The TAT is the level read as time ahead of now.
                let now_s = u128::from(now) * NS_PER_MS * q;
                let tat_s = u128::from(state.tat_ns) * q + u128::from(state.rem);
                prop_assert_eq!(tat_s.saturating_sub(now_s), level * NS_PER_MS);
                let (peek, _) = state.consume(quota, span(w), at, 0);
                prop_assert_eq!(u128::from(peek.remaining), (q * wq).saturating_sub(level) / wq);
            }
        }
    }
}
