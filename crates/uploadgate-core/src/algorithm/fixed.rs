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
            (start, start + w)
        }
        Window::CalendarMonth => {
            let secs = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
            let date = OffsetDateTime::from_unix_timestamp(secs)
                .map(|t| t.date())
                .unwrap_or(Date::MIN);
            let first = |y: i32, m: Month| {
                Date::from_calendar_date(y, m, 1)
                    .map(|d| d.midnight().assume_utc().unix_timestamp())
                    .unwrap_or(0)
            };
            let start = first(date.year(), date.month());
            let (ny, nm) = match date.month() {
                Month::December => (date.year() + 1, Month::January),
                m => (date.year(), m.next()),
            };
            let end = first(ny, nm);
            (start as u64 * 1000, end as u64 * 1000)
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
}
