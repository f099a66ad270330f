use super::{AlgorithmState, Outcome};
use crate::clock::Timestamp;
use crate::policy::Span;
use crate::store::LimitState;

/// The state of a sliding limit: what it admitted and still counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlidingState {
    /// Admitted `(time_ms, cost)` pairs still in the window, oldest first;
    /// admissions in the same millisecond are one entry.
    pub entries: Vec<(u64, u64)>,
}

impl AlgorithmState for SlidingState {
    type Window = Span;

    fn consume(&self, quota: u64, span: Span, now: Timestamp, cost: u64) -> (Outcome, Self) {
        let (o, entries) = sliding(
            quota,
            span.as_millis(),
            &self.entries,
            now.as_millis(),
            cost,
        );
        (o, SlidingState { entries })
    }

    fn expires_at(&self, span: Span, _now: Timestamp) -> Option<Timestamp> {
        // The newest entry is the last to leave the window.
        self.entries
            .iter()
            .map(|(t, _)| Timestamp(t.saturating_add(span.as_millis())))
            .max()
    }

    fn from_limit(state: &LimitState) -> Option<&Self> {
        match state {
            LimitState::Sliding(s) => Some(s),
            _ => None,
        }
    }

    fn force(&self, _quota: u64, span: Span, now: Timestamp, cost: u64) -> Self {
        super::force::sliding(self, span, now, cost)
    }

    /// Takes `cost` off the entry admitted at `granted_at`, which holds every
    /// admission of that millisecond; an entry left at zero goes.
    fn release(
        &self,
        _quota: u64,
        span: Span,
        granted_at: Timestamp,
        cost: u64,
        now: Timestamp,
    ) -> Self {
        let entries = sliding_release(
            span.as_millis(),
            &self.entries,
            granted_at.as_millis(),
            cost,
            now.as_millis(),
        );
        SlidingState { entries }
    }
}

/// The sliding transition behind [`SlidingState::release`]: the entries in
/// the window at `now`, less `cost` taken off the entry at `granted_at`.
///
/// Entries are merged per millisecond, so the one at `granted_at` may hold
/// other admissions too: only `cost` leaves it. A clock running ahead can
/// leave two entries at the same millisecond (see [`sliding`]); the newest
/// gives first. An entry already out of the window is not there to release.
fn sliding_release(
    window_ms: u64,
    entries: &[(u64, u64)],
    granted_at: u64,
    cost: u64,
    now: u64,
) -> Vec<(u64, u64)> {
    let mut live: Vec<(u64, u64)> = entries
        .iter()
        .copied()
        .filter(|(t, _)| t.saturating_add(window_ms) > now)
        .collect();
    let mut left = cost;
    for (t, c) in live.iter_mut().rev() {
        if left == 0 {
            break;
        }
        if *t == granted_at {
            let taken = left.min(*c);
            *c -= taken;
            left -= taken;
        }
    }
    live.retain(|(_, c)| *c > 0);
    live
}

/// Exact sliding window: admits a request of `cost` at `now` if the costs
/// admitted in `(now - window, now]` plus `cost` stay within `quota`.
///
/// `entries` are admitted `(time_ms, cost)` pairs, oldest first. The returned
/// state holds only entries still inside the window, so it is O(quota) for
/// unit costs. Entries at the same millisecond are merged.
pub fn sliding(
    quota: u64,
    window_ms: u64,
    entries: &[(u64, u64)],
    now: u64,
    cost: u64,
) -> (Outcome, Vec<(u64, u64)>) {
    let mut live: Vec<(u64, u64)> = entries
        .iter()
        .copied()
        .filter(|(t, _)| t.saturating_add(window_ms) > now)
        .collect();
    let used: u64 = live.iter().map(|(_, c)| c).sum();
    let allowed = used.saturating_add(cost) <= quota;
    let mut retry_after_ms = 0;
    if allowed {
        if cost > 0 {
            match live.last_mut() {
                Some((t, c)) if *t == now => *c += cost,
                _ => {
                    live.push((now, cost));
                    // Another server's clock may be ahead of ours; keep order.
                    if live.len() > 1 && live[live.len() - 2].0 > now {
                        live.sort_by_key(|(t, _)| *t);
                    }
                }
            }
        }
    } else {
        // Walk the oldest entries out of the window until the request fits.
        let mut freed = 0;
        retry_after_ms = window_ms;
        for (t, c) in &live {
            freed += c;
            if used - freed + cost <= quota {
                retry_after_ms = (t + window_ms).saturating_sub(now);
                break;
            }
        }
    }
    let used_after: u64 = if allowed { used + cost } else { used };
    let reset_after_ms = live
        .first()
        .map(|(t, _)| (t + window_ms).saturating_sub(now))
        .unwrap_or(0);
    (
        Outcome {
            allowed,
            remaining: quota.saturating_sub(used_after),
            reset_after_ms,
            retry_after_ms,
        },
        live,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{outlook, release_right_after_consume_restores};
    use proptest::prelude::*;

    #[test]
    fn five_per_window_then_denied_until_the_oldest_leaves() {
        let mut state = vec![];
        for i in 0..5u64 {
            let (o, s) = sliding(5, 10_000, &state, 1_000 + i * 100, 1);
            assert!(o.allowed);
            assert_eq!(o.remaining, 4 - i);
            assert_eq!(o.reset_after_ms, 10_000 - i * 100);
            state = s;
        }
        let (o, s) = sliding(5, 10_000, &state, 2_000, 1);
        assert!(!o.allowed);
        assert_eq!(o.remaining, 0);
        assert_eq!(o.retry_after_ms, 9_000);
        assert_eq!(s, state, "a denial must not change the state");
        // At exactly t0 + W the oldest entry has left.
        let (o, _) = sliding(5, 10_000, &state, 11_000, 1);
        assert!(o.allowed);
        let (o, _) = sliding(5, 10_000, &state, 10_999, 1);
        assert!(!o.allowed);
    }

    #[test]
    fn byte_costs_wait_for_enough_room() {
        let state = vec![(0, 40), (1_000, 40)];
        let (o, _) = sliding(100, 10_000, &state, 2_000, 50);
        assert!(!o.allowed);
        // Freeing the first 40 leaves 40 used; 40 + 50 <= 100.
        assert_eq!(o.retry_after_ms, 8_000);
        let (o, _) = sliding(100, 10_000, &state, 2_000, 20);
        assert!(o.allowed);
        assert_eq!(o.remaining, 0);
    }

    #[test]
    fn zero_cost_peeks_store_nothing() {
        let (o, s) = sliding(5, 1_000, &[], 0, 0);
        assert!(o.allowed);
        assert_eq!(o.remaining, 5);
        assert_eq!(o.reset_after_ms, 0);
        assert!(s.is_empty());
    }

    /// Brute force: remember every admitted request forever and admit a new
    /// one iff the admitted cost in `(now - W, now]` plus its cost fits.
    fn oracle(history: &[(u64, u64)], quota: u64, w: u64, now: u64, cost: u64) -> bool {
        let used: u64 = history
            .iter()
            .filter(|(t, _)| *t + w > now && *t <= now)
            .map(|(_, c)| c)
            .sum();
        used + cost <= quota
    }

    proptest! {
        #[test]
        fn matches_the_oracle_and_never_over_admits(
            quota in 1u64..12,
            w in 1u64..5_000,
            steps in proptest::collection::vec((0u64..2_000, 1u64..4), 1..200),
        ) {
            let mut now = 0;
            let mut state = vec![];
            let mut history: Vec<(u64, u64)> = vec![];
            for (dt, cost) in steps {
                now += dt;
                let cost = cost.min(quota);
                let want = oracle(&history, quota, w, now, cost);
                let (o, s) = sliding(quota, w, &state, now, cost);
                prop_assert_eq!(o.allowed, want, "at {} cost {}", now, cost);
                if o.allowed {
                    history.push((now, cost));
                } else {
                    // The promised retry time is exact: earlier is denied,
                    // then is allowed (with no other traffic).
                    prop_assert!(o.retry_after_ms > 0);
                    prop_assert!(oracle(&history, quota, w, now + o.retry_after_ms, cost));
                    prop_assert!(!oracle(&history, quota, w, now + o.retry_after_ms - 1, cost));
                }
                state = s;
                prop_assert!(state.len() as u64 <= quota);
                // No window of length W ever holds more than the quota.
                for (t, _) in &history {
                    let in_window: u64 = history.iter().filter(|(u, _)| *u >= *t && *u < *t + w).map(|(_, c)| c).sum();
                    prop_assert!(in_window <= quota);
                }
            }
        }
    }

    fn span(ms: u64) -> Span {
        Span::from_millis(ms).unwrap()
    }

    /// Runs `(dt, cost)` steps from an empty state: the state, the time,
    /// and every admission made, as the oracle keeps them.
    fn admit_all(quota: u64, w: u64, steps: &[(u64, u64)]) -> (SlidingState, u64, Vec<(u64, u64)>) {
        let (mut state, mut now, mut history) = (SlidingState::default(), 0, vec![]);
        for &(dt, cost) in steps {
            now += dt;
            let cost = cost.min(quota);
            let (o, s) = state.consume(quota, span(w), Timestamp(now), cost);
            if o.allowed {
                history.push((now, cost));
            }
            state = s;
        }
        (state, now, history)
    }

    #[test]
    fn release_takes_the_cost_off_the_entry_of_its_millisecond() {
        let entries = vec![(1_000, 3), (1_500, 1), (2_000, 2)];
        let rel = |at, cost, now| sliding_release(10_000, &entries, at, cost, now);
        // Two of the three admitted at 1_000 come back.
        assert_eq!(rel(1_000, 2, 2_500), [(1_000, 1), (1_500, 1), (2_000, 2)]);
        // An entry left at zero goes; never more than it holds, nor from a
        // neighbour; nothing admitted at 1_200.
        assert_eq!(rel(1_500, 1, 2_500), [(1_000, 3), (2_000, 2)]);
        assert_eq!(rel(2_000, 9, 2_500), [(1_000, 3), (1_500, 1)]);
        assert_eq!(rel(1_200, 1, 2_500), entries);
        // Out of the window: pruned, nothing to hand back.
        assert_eq!(rel(1_000, 1, 11_000), [(1_500, 1), (2_000, 2)]);
        assert_eq!(rel(1_500, 1, 11_500), [(2_000, 2)]);
        // A clock running ahead split one millisecond into two entries.
        let (_, skewed) = sliding(9, 10_000, &[(1_000, 1), (3_000, 1)], 1_000, 2);
        assert_eq!(skewed, [(1_000, 1), (1_000, 2), (3_000, 1)]);
        let back = sliding_release(10_000, &skewed, 1_000, 3, 1_000);
        assert_eq!(back, [(3_000, 1)]);
    }

    proptest! {
        #[test]
        fn release_matches_an_oracle_that_forgets_the_admission(
            quota in 1u64..12,
            w in 1u64..5_000,
            steps in proptest::collection::vec(
                (0u64..2_000, 1u64..4, proptest::option::of(any::<prop::sample::Index>())),
                1..200,
            ),
        ) {
            let mut now = 0;
            let mut state = SlidingState::default();
            let mut history: Vec<(u64, u64)> = vec![];
            for (dt, cost, pick) in steps {
                now += dt;
                let at = Timestamp(now);
                match pick {
                    Some(i) if !history.is_empty() => {
                        let (t, c) = history.remove(i.index(history.len()));
                        state = state.release(quota, span(w), Timestamp(t), c, at);
                    }
                    _ => {
                        let cost = cost.min(quota);
                        let want = oracle(&history, quota, w, now, cost);
                        let (o, s) = state.consume(quota, span(w), at, cost);
                        prop_assert_eq!(o.allowed, want, "at {} cost {}", now, cost);
                        if o.allowed {
                            history.push((now, cost));
                        }
                        state = s;
                    }
                }
                let live: Vec<(u64, u64)> =
                    history.iter().copied().filter(|(t, _)| t + w > now).collect();
                let used: u64 = live.iter().map(|(_, c)| c).sum();
                let (peek, _) = state.consume(quota, span(w), at, 0);
                prop_assert_eq!(peek.remaining, quota - used);
                let reset = live.iter().map(|(t, _)| t + w - now).min().unwrap_or(0);
                prop_assert_eq!(peek.reset_after_ms, reset);
                prop_assert!(state.entries.iter().all(|&(t, c)| c > 0 && t + w > now));
                prop_assert_eq!(state.entries.iter().map(|(_, c)| c).sum::<u64>(), used);
            }
        }

        #[test]
        fn release_right_after_consume_restores_the_state(
            quota in 1u64..12,
            w in 1u64..5_000,
            steps in proptest::collection::vec((0u64..2_000, 1u64..4), 0..100),
            dt in 0u64..2_000,
            cost in 0u64..12,
            next in 1u64..12,
        ) {
            let (state, now, _) = admit_all(quota, w, &steps);
            let now = now + dt;
            release_right_after_consume_restores(&state, quota, span(w), now, cost, next, w / 3 + 1)?;
        }

        #[test]
        fn release_hands_back_at_most_its_cost_and_never_over_quota(
            quota in 1u64..1 << 40,
            w in 1u64..20_000,
            mut entries in proptest::collection::vec((0u64..40_000, 0u64..1 << 40), 0..20),
            pick in proptest::option::of(any::<prop::sample::Index>()),
            granted_at in 0u64..40_000,
            cost in any::<u64>(),
            now in 0u64..40_000,
        ) {
            entries.sort_by_key(|(t, _)| *t);
            let granted_at = match pick {
                Some(i) if !entries.is_empty() => entries[i.index(entries.len())].0,
                _ => granted_at,
            };
            let state = SlidingState { entries };
            let at = Timestamp(now);
            let back = state.release(quota, span(w), Timestamp(granted_at), cost, at);
            let before = state.consume(quota, span(w), at, 0).0.remaining;
            let after = back.consume(quota, span(w), at, 0).0.remaining;
            prop_assert!(before <= after && after <= quota);
            prop_assert!(after - before <= cost);
            let live = |s: &SlidingState| -> u64 {
                s.entries.iter().filter(|(t, _)| t + w > now).map(|(_, c)| c).sum()
            };
            let held: u64 = state
                .entries
                .iter()
                .filter(|&&(t, _)| t == granted_at && t + w > now)
                .map(|(_, c)| c)
                .sum();
            prop_assert_eq!(live(&state) - live(&back), cost.min(held));
        }

        #[test]
        fn release_never_overflows(
            entries in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..8),
            w in 1u64..,
            granted_at in any::<u64>(),
            cost in any::<u64>(),
            now in any::<u64>(),
        ) {
            let back = sliding_release(w, &entries, granted_at, cost, now);
            // Costs summed in u128: entries near u64::MAX never overflow.
            let live = |e: &[(u64, u64)]| -> u128 {
                e.iter()
                    .filter(|(t, _)| t.saturating_add(w) > now)
                    .map(|&(_, c)| u128::from(c))
                    .sum()
            };
            prop_assert!(back.iter().all(|&(t, c)| c > 0 && t.saturating_add(w) > now));
            prop_assert!(live(&back) <= live(&entries));
            prop_assert!(live(&entries) - live(&back) <= u128::from(cost));
        }

        #[test]
        fn releasing_an_admission_out_of_the_window_changes_nothing(
            quota in 1u64..12,
            w in 1u64..5_000,
            steps in proptest::collection::vec((0u64..2_000, 1u64..4), 1..100),
            pick in any::<prop::sample::Index>(),
            late in 0u64..5_000,
            next in 1u64..12,
        ) {
            let (state, now, history) = admit_all(quota, w, &steps);
            // The first step always fits an empty state.
            prop_assert!(!history.is_empty());
            let (t, c) = history[pick.index(history.len())];
            let now = now.max(t + w) + late;
            let back = state.release(quota, span(w), Timestamp(t), c, Timestamp(now));
            let step = w / 3 + 1;
            prop_assert_eq!(
                outlook(&back, quota, span(w), now, step, next),
                outlook(&state, quota, span(w), now, step, next)
            );
        }
    }
}
