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
}
