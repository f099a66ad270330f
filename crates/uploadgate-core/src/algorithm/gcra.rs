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

    fn force(&self, quota: u64, span: Span, now: Timestamp, cost: u64) -> Self {
        super::force::gcra(self, quota, span, now, cost)
    }

    /// Moves the TAT back by `cost` emission intervals, never before `now`
    /// (a TAT at or before `now` already means full capacity, and stays as
    /// it is). The charge drained out of the bucket by `granted_at + window`
    /// at the latest (its TAT was at most one window ahead), so the TAT never
    /// moves back by more than what is left of that: a charge from a window
    /// ago or more hands nothing back.
    fn release(
        &self,
        quota: u64,
        span: Span,
        granted_at: Timestamp,
        cost: u64,
        now: Timestamp,
    ) -> Self {
        let tat = (self.tat_ns, self.rem);
        let (tat_ns, rem) = gcra_release(
            quota,
            span.as_millis(),
            tat,
            granted_at.as_millis(),
            cost,
            now.as_millis(),
        );
        GcraState { tat_ns, rem }
    }
}

/// The GCRA transition behind [`GcraState::release`], on the exact TAT
/// `(tat_ns, rem)` (see [`gcra`]).
fn gcra_release(
    quota: u64,
    window_ms: u64,
    tat: (u64, u64),
    granted_at_ms: u64,
    cost: u64,
    now_ms: u64,
) -> (u64, u64) {
    if quota == 0 {
        return tat;
    }
    let q = u128::from(quota);
    let w = u128::from(window_ms) * NS_PER_MS;
    // In units of 1/quota ns, as in `gcra`.
    let now_s = (u128::from(now_ms) * NS_PER_MS).saturating_mul(q);
    let tat_s = u128::from(tat.0) * q + u128::from(tat.1);
    if tat_s <= now_s {
        return tat;
    }
    let undrained_ms = granted_at_ms
        .saturating_add(window_ms)
        .saturating_sub(now_ms);
    let back = u128::from(cost)
        .saturating_mul(w)
        .min((u128::from(undrained_ms) * NS_PER_MS).saturating_mul(q));
    let after = tat_s.saturating_sub(back).max(now_s);
    (
        u64::try_from(after / q).unwrap_or(u64::MAX),
        u64::try_from(after % q).unwrap_or(0),
    )
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
    use crate::algorithm::{outlook, release_right_after_consume_restores};
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

    fn span(ms: u64) -> Span {
        Span::from_millis(ms).unwrap()
    }

    /// The TAT in units of 1/quota ns: exactly, as `gcra` computes.
    fn scaled(s: GcraState, quota: u64) -> u128 {
        u128::from(s.tat_ns) * u128::from(quota) + u128::from(s.rem)
    }

    /// Runs `(dt, cost)` steps from an empty state at 1 s: the state, the
    /// time, and every charge `(granted_at, cost)` admitted.
    fn admit_all(quota: u64, w: u64, steps: &[(u64, u64)]) -> (GcraState, u64, Vec<(u64, u64)>) {
        let (mut state, mut now, mut charges) = (GcraState::default(), 1_000, vec![]);
        for &(dt, cost) in steps {
            now += dt;
            let cost = cost.min(quota);
            let (o, s) = state.consume(quota, span(w), Timestamp(now), cost);
            if o.allowed {
                charges.push((now, cost));
            }
            state = s;
        }
        (state, now, charges)
    }

    #[test]
    fn release_moves_the_tat_back_but_not_before_now() {
        // 30 per minute, the whole burst spent at once: one interval is 2 s.
        let (w, t0) = (span(60_000), Timestamp(1_000_000));
        let (o, full) = GcraState::default().consume(30, w, t0, 30);
        assert!(o.allowed && o.remaining == 0);
        let one = full.release(30, w, t0, 1, t0);
        assert_eq!(
            one,
            GcraState {
                tat_ns: 1_058_000_000_000,
                rem: 0
            }
        );
        assert!(one.consume(30, w, t0, 1).0.allowed);
        assert!(!one.consume(30, w, t0, 2).0.allowed);
        // All of it back: the TAT stops at now, full capacity, nothing to
        // store; more than was charged gives no more than that.
        let all = full.release(30, w, t0, 30, t0);
        assert_eq!(
            all,
            GcraState {
                tat_ns: 1_000_000_000_000,
                rem: 0
            }
        );
        assert_eq!(all.expires_at(w, t0), None);
        assert_eq!(full.release(30, w, t0, 1_000, t0), all);
        assert_eq!(all.consume(30, w, t0, 0).0.remaining, 30);
        assert!(!all.consume(30, w, t0, 31).0.allowed);
        // 20 s later 10 have drained; handing back 5 of the burst frees 5 more.
        let later = Timestamp(1_020_000);
        let five = full.release(30, w, t0, 5, later);
        assert_eq!(five.consume(30, w, later, 0).0.remaining, 15);
        // A minute later the burst has drained by itself: if new traffic
        // filled the bucket again, releasing the old burst hands nothing back.
        let again = Timestamp(1_060_000);
        let (o, busy) = full.consume(30, w, again, 30);
        assert!(o.allowed);
        assert_eq!(busy.release(30, w, t0, 30, again), busy);
        // Byte rates: one byte back from 50 MiB a day is exact too.
        let (day, bytes) = (span(86_400_000), 50 << 20);
        let (_, one_byte) = GcraState::default().consume(bytes, day, t0, 1);
        let back = one_byte.release(bytes, day, t0, 1, t0);
        assert_eq!(
            back,
            GcraState {
                tat_ns: 1_000_000_000_000,
                rem: 0
            }
        );
    }

    proptest! {
        /// The bucket of `agrees_with_a_leaky_bucket`, where a release takes
        /// out what is left of the charge: its cost, less what has drained
        /// since (all of it by one window after the grant).
        #[test]
        fn release_agrees_with_a_leaky_bucket(
            quota in 1u64..50,
            w in 1u64..10_000,
            steps in proptest::collection::vec(
                (0u64..3_000, 1u64..5, proptest::option::of(any::<prop::sample::Index>())),
                1..100,
            ),
        ) {
            let (q, wq) = (u128::from(quota), u128::from(w));
            let mut now = 1_000u64;
            let mut state = GcraState::default();
            let mut b = Bucket { scaled_level: 0, last: now };
            let mut charges: Vec<(u64, u64)> = vec![];
            for (dt, cost, pick) in steps {
                now += dt;
                b.scaled_level = b.scaled_level.saturating_sub(u128::from(now - b.last) * q);
                b.last = now;
                match pick {
                    Some(i) if !charges.is_empty() => {
                        let (g, c) = charges.remove(i.index(charges.len()));
                        let undrained = u128::from((g + w).saturating_sub(now)) * q;
                        let left = (u128::from(c) * wq).min(undrained);
                        b.scaled_level = b.scaled_level.saturating_sub(left);
                        state = state.release(quota, span(w), Timestamp(g), c, Timestamp(now));
                    }
                    _ => {
                        let cost = cost.min(quota);
                        let want = b.scaled_level + u128::from(cost) * wq <= q * wq;
                        let (o, s) = state.consume(quota, span(w), Timestamp(now), cost);
                        prop_assert_eq!(o.allowed, want);
                        if o.allowed {
                            b.scaled_level += u128::from(cost) * wq;
                            charges.push((now, cost));
                        }
                        state = s;
                    }
                }
                // The TAT is the bucket's level read as time ahead of now.
                let now_s = u128::from(now) * NS_PER_MS * q;
                let ahead = scaled(state, quota).saturating_sub(now_s);
                prop_assert_eq!(ahead, b.scaled_level * NS_PER_MS);
                let (peek, _) = state.consume(quota, span(w), Timestamp(now), 0);
                prop_assert_eq!(u128::from(peek.remaining), (q * wq - b.scaled_level) / wq);
            }
        }

        /// The TAT after a release is `max(now, TAT - cost * w / quota)` while
        /// the charge can still be in the bucket, and never moves otherwise.
        #[test]
        fn release_moves_the_tat_back_by_cost_intervals(
            quota in prop_oneof![1u64..64, 1u64..1 << 30],
            w in prop_oneof![1u64..100_000, 1u64..1 << 30],
            now in 0u64..1 << 42,
            // The TAT, in thousandths of a window after now (or before it).
            ahead in 0u64..1_500,
            behind in any::<bool>(),
            rem in any::<u64>(),
            age in prop_oneof![Just(0u64), 0u64..1 << 31],
            cost in prop_oneof![0u64..64, 0u64..1 << 40],
        ) {
            let (now_ns, offset) = (now * 1_000_000, w * 1_000 * ahead);
            let tat_ns = if behind { now_ns.saturating_sub(offset) } else { now_ns + offset };
            let state = GcraState { tat_ns, rem: rem % quota };
            let granted_at = now.saturating_sub(age);
            let back = state.release(quota, span(w), Timestamp(granted_at), cost, Timestamp(now));
            // In ns, times quota: TAT, now, one interval (w / quota).
            let (q, tat) = (u128::from(quota), scaled(state, quota));
            let now_q = u128::from(now) * 1_000_000 * q;
            let interval_q = u128::from(w) * 1_000_000;
            let want = if tat <= now_q {
                tat
            } else if age == 0 && cost <= quota {
                now_q.max(tat.saturating_sub(u128::from(cost) * interval_q))
            } else {
                let undrained_q = u128::from((granted_at + w).saturating_sub(now)) * 1_000_000 * q;
                now_q.max(tat.saturating_sub((u128::from(cost) * interval_q).min(undrained_q)))
            };
            prop_assert_eq!(scaled(back, quota), want);
            prop_assert!(back.rem < quota);
        }

        #[test]
        fn release_right_after_consume_restores_the_state(
            quota in 1u64..50,
            w in 1u64..10_000,
            steps in proptest::collection::vec((0u64..3_000, 1u64..5), 0..100),
            dt in 0u64..3_000,
            cost in 0u64..50,
            next in 1u64..50,
        ) {
            let (state, now, _) = admit_all(quota, w, &steps);
            let now = now + dt;
            release_right_after_consume_restores(&state, quota, span(w), now, cost, next, w / 3 + 1)?;
        }

        /// Even a release of something never charged: never above a burst,
        /// never less capacity, never more back than its cost.
        #[test]
        fn release_never_gives_more_than_full_capacity(
            quota in 1u64..50,
            w in 1u64..10_000,
            steps in proptest::collection::vec((0u64..3_000, 1u64..5), 0..100),
            dt in 0u64..20_000,
            age in 0u64..20_000,
            cost in any::<u64>(),
        ) {
            let (state, now, _) = admit_all(quota, w, &steps);
            let now = now + dt;
            let at = Timestamp(now);
            let granted_at = Timestamp(now.saturating_sub(age));
            let back = state.release(quota, span(w), granted_at, cost, at);
            let before = state.consume(quota, span(w), at, 0).0.remaining;
            let after = back.consume(quota, span(w), at, 0).0.remaining;
            prop_assert!(before <= after && after <= quota);
            prop_assert!(after - before <= cost);
            prop_assert!(!back.consume(quota, span(w), at, quota + 1).0.allowed);
            prop_assert_eq!(back.consume(quota, span(w), at, quota).0.allowed, after == quota);
        }

        #[test]
        fn release_never_overflows(
            quota in any::<u64>(),
            w in 1u64..,
            tat_ns in any::<u64>(),
            rem in any::<u64>(),
            granted_at in any::<u64>(),
            cost in any::<u64>(),
            now in any::<u64>(),
        ) {
            let state = GcraState { tat_ns, rem };
            let at = Timestamp(now);
            let back = state.release(quota, span(w), Timestamp(granted_at), cost, at);
            if quota == 0 {
                prop_assert_eq!(back, state);
            } else {
                // Never later than it was, nor earlier than now unless it was.
                let now_s = (u128::from(now) * NS_PER_MS).saturating_mul(u128::from(quota));
                let (was, is) = (scaled(state, quota), scaled(back, quota));
                prop_assert!(is <= was && is >= was.min(now_s));
            }
        }

        #[test]
        fn releasing_a_charge_a_window_old_changes_nothing(
            quota in 1u64..50,
            w in 1u64..10_000,
            steps in proptest::collection::vec((0u64..3_000, 1u64..5), 1..100),
            pick in any::<prop::sample::Index>(),
            late in 0u64..10_000,
            next in 1u64..50,
        ) {
            let (state, now, charges) = admit_all(quota, w, &steps);
            prop_assert!(!charges.is_empty());
            let (g, c) = charges[pick.index(charges.len())];
            let now = now.max(g + w) + late;
            let back = state.release(quota, span(w), Timestamp(g), c, Timestamp(now));
            prop_assert_eq!(back, state);
            let step = w / 3 + 1;
            prop_assert_eq!(
                outlook(&back, quota, span(w), now, step, next),
                outlook(&state, quota, span(w), now, step, next)
            );
        }
    }
}
