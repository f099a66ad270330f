use super::{AlgorithmState, Outcome};
use crate::clock::Timestamp;
use crate::policy::Span;
use crate::store::LimitState;

const NS_PER_MS: u128 = 1_000_000;

/// The state of a GCRA limit: its theoretical arrival time (TAT), exactly,
/// as `tat_ns + rem / quota` nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcraState {
    /// Whole nanoseconds.
    pub tat_ns: u64,
    /// Fraction, in units of 1/quota ns.
    pub rem: u64,
}

impl AlgorithmState for GcraState {
    type Window = Span;

    fn consume(&self, quota: u64, span: Span, now: Timestamp, cost: u64) -> (Outcome, Self) {
        let tat = (self.tat_ns, self.rem);
        let (o, (tat_ns, rem)) = gcra(quota, span.as_millis(), tat, now.as_millis(), cost);
        (o, GcraState { tat_ns, rem })
    }

    fn expires_at(&self, _span: Span, now: Timestamp) -> Option<Timestamp> {
        // A TAT in the past is the same as no state at all.
        let live = self.tat_ns > now.as_millis().saturating_mul(1_000_000);
        live.then(|| Timestamp(self.tat_ns.saturating_add(1).div_ceil(1_000_000)))
    }

    fn from_limit(state: &LimitState) -> Option<&Self> {
        match state {
            LimitState::Gcra(s) => Some(s),
            _ => None,
        }
    }
}

/// Generic cell rate algorithm: `quota` per `window_ms`, with a burst of
/// `quota`. The state is the theoretical arrival time (TAT), kept exactly as
/// the rational `tat_ns + rem / quota` nanoseconds since the epoch, so that
/// byte-rate emission intervals (a window divided by millions of bytes) never
/// round: `(tat_ns, rem)` with `rem < quota`.
///
/// A request of `cost` advances the TAT by `cost * window / quota` and is
/// admitted iff the new TAT is at most one window ahead of now.
pub fn gcra(
    quota: u64,
    window_ms: u64,
    tat: (u64, u64),
    now_ms: u64,
    cost: u64,
) -> (Outcome, (u64, u64)) {
    let q = u128::from(quota);
    let w = u128::from(window_ms) * NS_PER_MS;
    let now = u128::from(now_ms) * NS_PER_MS;
    // Everything below is in units of 1/quota ns.
    let now_s = now * q;
    let limit_s = (now + w) * q;
    let tat_s = (u128::from(tat.0) * q + u128::from(tat.1)).max(now_s);
    let new_tat_s = tat_s + u128::from(cost) * w;
    let allowed = new_tat_s <= limit_s;
    let tat_after = if allowed { new_tat_s } else { tat_s };
    let remaining = ((limit_s - tat_after.min(limit_s)) / w).min(q);
    // Nanoseconds from now until the TAT `s` is at most one window ahead.
    let wait = |s: u128| s.div_ceil(q).saturating_sub(w + now);
    let reset_after = if remaining >= q {
        0
    } else {
        wait(tat_after + (remaining + 1) * w)
    };
    let retry_after = if allowed { 0 } else { wait(new_tat_s) };
    let stored = (
        u64::try_from(tat_after / q).unwrap_or(u64::MAX),
        u64::try_from(tat_after % q).unwrap_or(0),
    );
    (
        Outcome {
            allowed,
            remaining: remaining as u64,
            reset_after_ms: ns_to_ms_ceil(reset_after),
            retry_after_ms: ns_to_ms_ceil(retry_after).max(u64::from(!allowed)),
        },
        stored,
    )
}

fn ns_to_ms_ceil(ns: u128) -> u64 {
    u64::try_from(ns.div_ceil(NS_PER_MS)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn burst_then_one_per_interval() {
        // 30 per minute: a burst of 30, then one every 2 s.
        let mut tat = (0, 0);
        for i in 0..30 {
            let (o, t) = gcra(30, 60_000, tat, 1_000_000, 1);
            assert!(o.allowed, "request {i}");
            assert_eq!(o.remaining, 29 - i);
            tat = t;
        }
        let (o, t) = gcra(30, 60_000, tat, 1_000_000, 1);
        assert!(!o.allowed);
        assert_eq!(t, tat);
        assert_eq!(o.retry_after_ms, 2_000);
        assert_eq!(o.reset_after_ms, 2_000);
        assert!(!gcra(30, 60_000, tat, 1_001_999, 1).0.allowed);
        assert!(gcra(30, 60_000, tat, 1_002_000, 1).0.allowed);
    }

    #[test]
    fn byte_rates_do_not_round_to_zero() {
        // 50 MiB per day: a 1-byte upload still moves the TAT.
        let (o, tat) = gcra(50 << 20, 86_400_000, (0, 0), 0, 1);
        assert!(o.allowed);
        assert!(tat > (0, 0));
        assert_eq!(o.remaining, (50 << 20) - 1);
        // Exactly the rest of the burst still fits, and not a byte more.
        assert!(gcra(50 << 20, 86_400_000, tat, 0, (50 << 20) - 1).0.allowed);
        assert!(!gcra(50 << 20, 86_400_000, tat, 0, 50 << 20).0.allowed);
    }

    /// The definition of GCRA as a leaky bucket, in exact rationals: the
    /// level (in units of cost, scaled by `w` to stay integral) drains at
    /// `quota / w` per ms, never below zero; a request is admitted iff the
    /// level plus its cost stays within the quota.
    struct Bucket {
        scaled_level: u128, // level * w
        last: u64,
    }

    proptest! {
        #[test]
        fn agrees_with_a_leaky_bucket(
            quota in 1u64..50,
            w in 1u64..10_000,
            steps in proptest::collection::vec((0u64..3_000, 1u64..5), 1..100),
        ) {
            let mut now = 1_000u64;
            let mut tat = (0u64, 0u64);
            let mut b = Bucket { scaled_level: 0, last: now };
            for (dt, cost) in steps {
                now += dt;
                let cost = cost.min(quota);
                let drained = u128::from(now - b.last) * u128::from(quota);
                b.scaled_level = b.scaled_level.saturating_sub(drained);
                b.last = now;
                let want = b.scaled_level + u128::from(cost) * u128::from(w) <= u128::from(quota) * u128::from(w);
                let (o, t) = gcra(quota, w, tat, now, cost);
                prop_assert_eq!(o.allowed, want);
                if o.allowed {
                    b.scaled_level += u128::from(cost) * u128::from(w);
                } else {
                    prop_assert!(o.retry_after_ms >= 1);
                    // Retry-after is exact: one ms earlier is still denied.
                    prop_assert!(gcra(quota, w, t, now + o.retry_after_ms, cost).0.allowed);
                    prop_assert!(!gcra(quota, w, t, now + o.retry_after_ms - 1, cost).0.allowed);
                }
                // Remaining is exactly the largest cost that would fit now.
                let r = o.remaining;
                if r > 0 { prop_assert!(gcra(quota, w, t, now, r).0.allowed); }
                if r < quota { prop_assert!(!gcra(quota, w, t, now, r + 1).0.allowed); }
                tat = t;
            }
        }
    }
}
