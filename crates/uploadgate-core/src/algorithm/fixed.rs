use time::{Date, Month, OffsetDateTime};

use super::{AlgorithmState, Outcome};
use crate::clock::Timestamp;
use crate::policy::Window;
use crate::store::LimitState;

const DAY_MS: u64 = 86_400_000;
const WEEK_MS: u64 = 7 * DAY_MS;
/// 1970-01-05, the first Monday after the epoch.
const FIRST_MONDAY_MS: u64 = 4 * DAY_MS;

/// The state of a fixed limit: how much the current window has used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FixedState {
    /// Start of the window the usage belongs to, ms since the epoch.
    pub start: u64,
    /// Amount used in that window.
    pub used: u64,
}

impl AlgorithmState for FixedState {
    type Window = Window;

    fn consume(&self, quota: u64, window: Window, now: Timestamp, cost: u64) -> (Outcome, Self) {
        let prev = Some((self.start, self.used));
        let (o, start, used) = fixed(quota, window, prev, now.as_millis(), cost);
        (o, FixedState { start, used })
    }

    fn expires_at(&self, window: Window, _now: Timestamp) -> Option<Timestamp> {
        (self.used > 0).then(|| Timestamp(self.start.saturating_add(window.nominal_ms())))
    }

    fn from_limit(state: &LimitState) -> Option<&Self> {
        match state {
            LimitState::Fixed(s) => Some(s),
            _ => None,
        }
    }

    fn force(&self, _quota: u64, window: Window, now: Timestamp, cost: u64) -> Self {
        super::force::fixed(self, window, now, cost)
    }

    /// Subtracts `cost` if `granted_at` falls in the window of `now`. Usage
    /// of an earlier window (or, from a clock running ahead, a later one)
    /// reads as zero at `now`, so it goes.
    fn release(
        &self,
        _quota: u64,
        window: Window,
        granted_at: Timestamp,
        cost: u64,
        now: Timestamp,
    ) -> Self {
        let (start, _) = window_bounds(window, now.as_millis());
        if self.start != start {
            return FixedState::default();
        }
        let (granted_start, _) = window_bounds(window, granted_at.as_millis());
        let used = if granted_start == start {
            self.used.saturating_sub(cost)
        } else {
            self.used
        };
        FixedState { start, used }
    }
}

/// The UTC calendar window containing `now_ms`, as `[start, end)` in ms.
///
/// Fixed lengths are aligned to the epoch, so days start at midnight UTC and
/// hours on the hour; multiples of a week start on Monday. `1mo` is the
/// calendar month.
pub fn window_bounds(window: Window, now_ms: u64) -> (u64, u64) {
    match window {
        Window::Span(w) => {
            let w = w.as_millis();
            let offset = if w % WEEK_MS == 0 { FIRST_MONDAY_MS } else { 0 };
            let since = now_ms.saturating_sub(offset);
            let start = offset + since / w * w;
            (start, start.saturating_add(w))
        }
        Window::CalendarMonth => {
            // Past the last date `time` knows (9999-12-31) the last month
            // never ends, rather than wrapping around.
            let secs = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
            let date = OffsetDateTime::from_unix_timestamp(secs)
                .map(|t| t.date())
                .unwrap_or(Date::MAX);
            let first_ms = |y: i32, m: Month| {
                let secs = Date::from_calendar_date(y, m, 1)
                    .map(|d| d.midnight().assume_utc().unix_timestamp());
                secs.map_or(u64::MAX, |s| {
                    u64::try_from(s).unwrap_or(0).saturating_mul(1000)
                })
            };
            let (ny, nm) = match date.month() {
                Month::December => (date.year() + 1, Month::January),
                m => (date.year(), m.next()),
            };
            (first_ms(date.year(), date.month()), first_ms(ny, nm))
        }
    }
}

/// Fixed calendar window: admits while the amount used in the current window
/// plus `cost` stays within `quota`; usage starts from zero in each window.
/// `prev` is the stored `(window_start, used)`. Returns the outcome and the
/// new `(window_start, used)`.
pub fn fixed(
    quota: u64,
    window: Window,
    prev: Option<(u64, u64)>,
    now_ms: u64,
    cost: u64,
) -> (Outcome, u64, u64) {
    let (start, end) = window_bounds(window, now_ms);
    let used = match prev {
        Some((s, u)) if s == start => u,
        _ => 0,
    };
    let allowed = used.saturating_add(cost) <= quota;
    let used_after = if allowed { used + cost } else { used };
    let to_end = end.saturating_sub(now_ms);
    (
        Outcome {
            allowed,
            remaining: quota - used_after.min(quota),
            reset_after_ms: to_end,
            retry_after_ms: if allowed { 0 } else { to_end },
        },
        start,
        used_after,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{outlook, release_right_after_consume_restores};
    use crate::policy::Span;
    use proptest::prelude::*;
    use std::num::NonZeroU64;

    fn win(ms: u64) -> Window {
        Window::Span(Span::new(NonZeroU64::new(ms).unwrap()))
    }

    #[test]
    fn days_align_to_utc_midnight() {
        // 2026-11-28T13:45:00Z
        let now = 1_795_873_500_000;
        let (s, e) = window_bounds(win(DAY_MS), now);
        assert_eq!(s, 1_795_824_000_000); // 2026-11-28T00:00:00Z
        assert_eq!(e - s, DAY_MS);
    }

    #[test]
    fn weeks_start_on_monday() {
        let now = 1_795_873_500_000; // a Saturday
        let (s, _) = window_bounds(win(WEEK_MS), now);
        let d = OffsetDateTime::from_unix_timestamp((s / 1000) as i64).unwrap();
        assert_eq!(d.weekday(), time::Weekday::Monday);
        assert_eq!(
            d.date(),
            Date::from_calendar_date(2026, Month::November, 23).unwrap()
        );
    }

    #[test]
    fn months_are_calendar_months() {
        let now = 1_795_873_500_000; // November 2026
        let (s, e) = window_bounds(Window::CalendarMonth, now);
        let s = OffsetDateTime::from_unix_timestamp((s / 1000) as i64).unwrap();
        let e = OffsetDateTime::from_unix_timestamp((e / 1000) as i64).unwrap();
        assert_eq!(
            s.date(),
            Date::from_calendar_date(2026, Month::November, 1).unwrap()
        );
        assert_eq!(
            e.date(),
            Date::from_calendar_date(2026, Month::December, 1).unwrap()
        );
        let dec = 1_796_083_200_000 + 1; // 2026-12-01T00:00:00.001Z
        let (_, e) = window_bounds(Window::CalendarMonth, dec + 30 * DAY_MS);
        let e = OffsetDateTime::from_unix_timestamp((e / 1000) as i64).unwrap();
        assert_eq!(
            e.date(),
            Date::from_calendar_date(2027, Month::January, 1).unwrap()
        );
    }

    #[test]
    fn quota_resets_at_the_window_edge() {
        let w = win(1_000);
        let (o, s, u) = fixed(2, w, None, 5_100, 1);
        assert!(o.allowed);
        assert_eq!((s, u, o.remaining, o.reset_after_ms), (5_000, 1, 1, 900));
        let (o, s, u) = fixed(2, w, Some((s, u)), 5_200, 1);
        assert!(o.allowed);
        let (o, _, u2) = fixed(2, w, Some((s, u)), 5_999, 1);
        assert!(!o.allowed);
        assert_eq!((u2, o.retry_after_ms), (2, 1));
        let (o, s, u) = fixed(2, w, Some((s, u)), 6_000, 1);
        assert!(o.allowed);
        assert_eq!((s, u), (6_000, 1));
    }

    proptest! {
        /// Definition: within each aligned window the admitted cost is the
        /// greedy prefix that fits the quota.
        #[test]
        fn admits_greedily_per_window(
            quota in 1u64..20,
            w in 1u64..10_000,
            steps in proptest::collection::vec((0u64..3_000, 1u64..5), 1..100),
        ) {
            let mut now = 0;
            let mut state = None;
            let mut per_window = std::collections::HashMap::<u64, u64>::new();
            for (dt, cost) in steps {
                now += dt;
                let (o, s, u) = fixed(quota, win(w), state, now, cost);
                let idx = now / w;
                let used = per_window.entry(idx).or_default();
                prop_assert_eq!(o.allowed, *used + cost <= quota);
                if o.allowed { *used += cost; }
                prop_assert_eq!(u, *used);
                prop_assert_eq!(s, idx * w);
                state = Some((s, u));
            }
        }
    }

    /// Runs `(dt, cost)` steps from an empty state: the state, the time,
    /// and every admission made.
    fn admit_all(quota: u64, w: u64, steps: &[(u64, u64)]) -> (FixedState, u64, Vec<(u64, u64)>) {
        let (mut state, mut now, mut history) = (FixedState::default(), 0, vec![]);
        for &(dt, cost) in steps {
            now += dt;
            let (o, s) = state.consume(quota, win(w), Timestamp(now), cost);
            if o.allowed {
                history.push((now, cost));
            }
            state = s;
        }
        (state, now, history)
    }

    /// Brute force: the admitted cost in the window of `now`.
    fn used_in_window(history: &[(u64, u64)], w: u64, now: u64) -> u64 {
        history
            .iter()
            .filter(|(t, _)| t / w == now / w)
            .map(|(_, c)| c)
            .sum()
    }

    #[test]
    fn release_hands_back_only_within_the_current_window() {
        let w = win(1_000);
        let s = FixedState {
            start: 5_000,
            used: 3,
        };
        let rel = |g, cost, now| s.release(9, w, Timestamp(g), cost, Timestamp(now));
        assert_eq!(
            rel(5_100, 2, 5_900),
            FixedState {
                start: 5_000,
                used: 1
            }
        );
        assert_eq!(
            rel(5_100, 7, 5_900),
            FixedState {
                start: 5_000,
                used: 0
            }
        );
        // Granted in the window before: its usage no longer counts.
        assert_eq!(rel(4_999, 2, 5_900), s);
        // This window is over: its usage reads as zero, and so does the result.
        assert_eq!(rel(5_100, 2, 6_000), FixedState::default());
        assert_eq!(rel(5_100, 2, 6_000).expires_at(w, Timestamp(6_000)), None);
        // Calendar months: November 2026, granted on the 28th.
        let nov = 1_793_491_200_000;
        let s = FixedState {
            start: nov,
            used: 3,
        };
        let month = |g, now| s.release(9, Window::CalendarMonth, Timestamp(g), 2, Timestamp(now));
        let (nov_28, nov_30, dec_1) = (nov + 27 * DAY_MS, nov + 29 * DAY_MS, nov + 30 * DAY_MS);
        assert_eq!(
            month(nov_28, nov_30),
            FixedState {
                start: nov,
                used: 1
            }
        );
        assert_eq!(month(nov - 1, nov_30), s);
        assert_eq!(month(nov_28, dec_1), FixedState::default());
    }

    fn any_window() -> impl Strategy<Value = Window> {
        prop_oneof![
            Just(Window::CalendarMonth),
            (1u64..40 * DAY_MS).prop_map(win),
            (1u64..5).prop_map(|n| win(n * WEEK_MS)),
        ]
    }

    proptest! {
        #[test]
        fn release_matches_an_oracle_that_forgets_the_admission(
            quota in 1u64..20,
            w in 1u64..10_000,
            steps in proptest::collection::vec(
                (0u64..3_000, 1u64..5, proptest::option::of(any::<prop::sample::Index>())),
                1..100,
            ),
        ) {
            let mut now = 0;
            let mut state = FixedState::default();
            let mut history: Vec<(u64, u64)> = vec![];
            for (dt, cost, pick) in steps {
                now += dt;
                let at = Timestamp(now);
                match pick {
                    Some(i) if !history.is_empty() => {
                        let (t, c) = history.remove(i.index(history.len()));
                        state = state.release(quota, win(w), Timestamp(t), c, at);
                    }
                    _ => {
                        let want = used_in_window(&history, w, now) + cost <= quota;
                        let (o, s) = state.consume(quota, win(w), at, cost);
                        prop_assert_eq!(o.allowed, want);
                        if o.allowed {
                            history.push((now, cost));
                        }
                        state = s;
                    }
                }
                let used = used_in_window(&history, w, now);
                let (peek, _) = state.consume(quota, win(w), at, 0);
                prop_assert_eq!(peek.remaining, quota - used);
                if used > 0 {
                    prop_assert_eq!(state, FixedState { start: now / w * w, used });
                } else {
                    prop_assert_eq!(state.expires_at(win(w), at), None);
                }
            }
        }

        #[test]
        fn release_right_after_consume_restores_the_state(
            quota in 1u64..20,
            w in 1u64..10_000,
            steps in proptest::collection::vec((0u64..3_000, 1u64..5), 0..100),
            dt in 0u64..3_000,
            cost in 0u64..20,
            next in 1u64..20,
        ) {
            let (state, now, _) = admit_all(quota, w, &steps);
            let now = now + dt;
            release_right_after_consume_restores(&state, quota, win(w), now, cost, next, w / 3 + 1)?;
        }

        #[test]
        fn release_hands_back_at_most_its_cost_and_never_over_quota(
            quota in 1u64..,
            window in any_window(),
            start in any::<u64>(),
            current in any::<bool>(),
            used in any::<u64>(),
            granted_at in any::<u64>(),
            same in any::<bool>(),
            cost in any::<u64>(),
            now in any::<u64>(),
        ) {
            let (now_start, _) = window_bounds(window, now);
            let start = if current { now_start } else { start };
            let granted_at = if same { now } else { granted_at };
            let state = FixedState { start, used };
            let at = Timestamp(now);
            let back = state.release(quota, window, Timestamp(granted_at), cost, at);
            let before = state.consume(quota, window, at, 0).0.remaining;
            let after = back.consume(quota, window, at, 0).0.remaining;
            prop_assert!(before <= after && after <= quota);
            prop_assert!(after - before <= cost);
            let want = if start != now_start {
                FixedState::default()
            } else if window_bounds(window, granted_at).0 == now_start {
                FixedState { start, used: used.saturating_sub(cost) }
            } else {
                state
            };
            prop_assert_eq!(back, want);
        }

        #[test]
        fn releasing_an_admission_of_an_earlier_window_changes_nothing(
            quota in 1u64..20,
            w in 1u64..10_000,
            steps in proptest::collection::vec((0u64..3_000, 1u64..5), 1..100),
            pick in any::<prop::sample::Index>(),
            late in 0u64..20_000,
            next in 1u64..20,
        ) {
            let (state, now, history) = admit_all(quota, w, &steps);
            prop_assume!(!history.is_empty());
            let (t, c) = history[pick.index(history.len())];
            let (_, end) = window_bounds(win(w), t);
            let now = now.max(end) + late;
            let back = state.release(quota, win(w), Timestamp(t), c, Timestamp(now));
            let step = w / 3 + 1;
            prop_assert_eq!(
                outlook(&back, quota, win(w), now, step, next),
                outlook(&state, quota, win(w), now, step, next)
            );
        }
    }
}
