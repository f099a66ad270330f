//! The worst-case size of a policy's state under the codec, checked at
//! configuration so that no subject's state can outgrow what a store takes.

use super::MAX_VARINT;
use crate::domain::Subject;
use crate::policy::{Algorithm, Limit, Policy, Unit, Window};
use crate::reservation::Reservation;
use crate::store::Grant;

/// The largest encoding the state of `subject`'s limits can reach under
/// `policy`, or `None` if nothing bounds it.
///
/// A sliding limit keeps one entry per admitted upload still in its window
/// (entries in the same millisecond merge). For a count limit that is at most
/// its quota. A byte limit admits any number of small uploads, so its entry
/// count is bounded only by a count limit on the same subject: one allowing
/// `n` per `w` admits at most `n * (ceil(W / w) + 1)` uploads in any window
/// `W`, whatever its algorithm. Without such a limit the state is unbounded
/// and the answer is `None`.
pub fn max_encoded_len(policy: &Policy, subject: Subject) -> Option<usize> {
    let limits: Vec<&Limit> = policy
        .limits()
        .iter()
        .filter(|l| l.subject == subject)
        .collect();
    let mut total = 1 + MAX_VARINT;
    for l in &limits {
        total += MAX_VARINT + l.name.as_str().len() + 1;
        total += match l.algorithm {
            Algorithm::Gcra(_) | Algorithm::Fixed(_) => 2 * MAX_VARINT,
            Algorithm::Sliding(span) => {
                let window = span.as_millis();
                let quota = l.amount.value.get();
                let uploads = match l.amount.unit {
                    Unit::Uploads => Some(quota),
                    Unit::Bytes => limits
                        .iter()
                        .filter(|c| c.amount.unit == Unit::Uploads)
                        .map(|c| uploads_bound(c, window))
                        .min(),
                }?;
                let entries = uploads.min(quota).min(window);
                // Count, then the first time (absolute) and the deltas,
                // which sum to less than the window, then the costs, which
                // sum to at most the quota.
                MAX_VARINT
                    + MAX_VARINT
                    + sum_varint_bound(entries.saturating_sub(1), window)?
                    + sum_varint_bound(entries, quota)?
            }
        };
    }
    Some(total + max_grants_len(policy))
}

/// The largest encoding of the grants one key can hold under `policy`:
/// at most [`Grant::MAX_PER_KEY`], each with one (remaining, reset) pair
/// per limit of the policy.
pub fn max_grants_len(policy: &Policy) -> usize {
    MAX_VARINT
        + Grant::MAX_PER_KEY
            * (MAX_VARINT
                + Grant::MAX_KEY_LEN
                + 32
                + 2 * MAX_VARINT
                + policy.limits().len() * 2 * MAX_VARINT)
}

/// The largest encoding of the reservations one user's key can hold under
/// `policy` ([`Reservation::MAX_PENDING`] pending and
/// [`Reservation::MAX_DONE`] settled or rejected ones), when no content
/// type is longer than `content_type_len` bytes and no tier name longer
/// than `tier_len`. Comes on top of [`max_encoded_len`] in upload mode.
pub fn max_reservations_len(policy: &Policy, content_type_len: usize, tier_len: usize) -> usize {
    let charged: usize = policy
        .limits()
        .iter()
        .filter(|l| l.subject == Subject::User)
        .map(|l| MAX_VARINT + l.name.as_str().len() + MAX_VARINT)
        .sum();
    let one = 16
        + 3 * MAX_VARINT
        + MAX_VARINT
        + content_type_len
        + 1
        + 32
        + MAX_VARINT
        + tier_len
        + MAX_VARINT
        + charged;
    MAX_VARINT + (Reservation::MAX_PENDING + Reservation::MAX_DONE) * one
}

/// How many uploads a count limit admits in any span of `span_ms`.
fn uploads_bound(count: &Limit, span_ms: u64) -> u64 {
    let w = match count.window() {
        Window::Span(span) => span.as_millis(),
        // The shortest month bounds how many month windows a span touches.
        Window::CalendarMonth => 28 * 86_400_000,
    };
    count
        .amount
        .value
        .get()
        .saturating_mul(span_ms.div_ceil(w).saturating_add(1))
}

/// An upper bound on the encoded length of `n` varints whose sum is at
/// most `sum`. `len(v) <= 1 + log2(v) / 7` for `v >= 1` (and `len(0) = 1`),
/// which is concave, so the total is largest when the values are equal.
fn sum_varint_bound(n: u64, sum: u64) -> Option<usize> {
    if n == 0 {
        return Some(0);
    }
    let mean = (sum as f64 / n as f64).max(1.0);
    let bound = (n as f64 * (1.0 + mean.log2() / 7.0)).ceil() as u64 + 1;
    usize::try_from(bound).ok()
}

#[cfg(test)]
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{SlidingState, sliding};
    use crate::codec::{encode, put};
    use crate::store::{KeyState, LimitState};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        #[test]
        fn varint_len_matches_the_encoding(v in any::<u64>()) {
            let mut out = vec![];
            put(&mut out, v);
            prop_assert_eq!(out.len(), varint_len(v));
        }

        #[test]
        fn sum_bound_holds(values in proptest::collection::vec(0u64..(1 << 40), 1..50)) {
            let total: usize = values.iter().map(|v| varint_len(*v)).sum();
            let bound = sum_varint_bound(values.len() as u64, values.iter().sum()).unwrap();
            prop_assert!(total <= bound, "{} > {}", total, bound);
        }

        /// Whatever a policy's limits admit, the state stays within the
        /// computed bound.
        #[test]
        fn real_states_stay_within_the_bound(
            gaps in proptest::collection::vec(1u64..20_000, 1..400),
            sizes in proptest::collection::vec(1u64..60_000_000, 1..400),
        ) {
            let policy: Policy = "uploads=user:300/1h;volume=user:50MiB/2h".parse().unwrap();
            let bound = max_encoded_len(&policy, Subject::User).unwrap();
            let (mut a, mut b) = (vec![], vec![]);
            let mut now = 1_800_000_000_000u64;
            for (gap, size) in gaps.iter().zip(sizes.iter().cycle()) {
                now += gap;
                let (oa, na) = sliding(300, 3_600_000, &a, now, 1);
                let (ob, nb) = sliding(50 << 20, 7_200_000, &b, now, *size);
                if oa.allowed && ob.allowed {
                    (a, b) = (na, nb);
                }
                let st = KeyState { grants: BTreeMap::new(), reservations: BTreeMap::new(), limits: BTreeMap::from([
                    ("uploads".to_owned(), LimitState::Sliding(SlidingState { entries: a.clone() })),
                    ("volume".to_owned(), LimitState::Sliding(SlidingState { entries: b.clone() })),
                ]) };
                prop_assert!(encode(&st).len() <= bound);
            }
        }
    }

    #[test]
    fn a_thousand_uploads_in_three_hours_fit_in_a_few_kb() {
        let entries: Vec<(u64, u64)> = (0..1000)
            .map(|i| (1_800_000_000_000 + i * 10_800, 1))
            .collect();
        let st = KeyState {
            grants: BTreeMap::new(),
            reservations: BTreeMap::new(),
            limits: BTreeMap::from([(
                "uploads".to_owned(),
                LimitState::Sliding(SlidingState { entries }),
            )]),
        };
        let len = encode(&st).len();
        assert!((2_000..4_000).contains(&len), "{len}");
        let policy: Policy = "uploads=user:1000/3h".parse().unwrap();
        let bound = max_encoded_len(&policy, Subject::User).unwrap() - max_grants_len(&policy);
        assert!(len <= bound && bound < 4_200, "{len} <= {bound}");
        // The documented default is tiny.
        let policy: Policy = "uploads=user:5/3h".parse().unwrap();
        assert!(max_encoded_len(&policy, Subject::User).unwrap() - max_grants_len(&policy) < 150);
        // Grants under idempotency keys fit beside them.
        assert!(max_encoded_len(&policy, Subject::User).unwrap() < 1_500);
    }

    #[test]
    fn full_reservations_stay_within_their_bound() {
        use crate::clock::Timestamp;
        use crate::reservation::ReservationStatus;
        let policy: Policy = "uploads=user:1000/3h;volume=user:10GiB/1d;burst=ip:9/1m"
            .parse()
            .unwrap();
        let bound = max_reservations_len(&policy, 40, 12);
        let reservation = |i: u64, status| Reservation {
            granted_at: Timestamp(u64::MAX - i),
            expires_at: Timestamp(u64::MAX),
            size: u64::MAX,
            content_type: "x".repeat(40),
            checksum: Some([0xff; 32]),
            tier: Some("t".repeat(12)),
            charged: vec![("uploads".into(), 1), ("volume".into(), u64::MAX)],
            status,
        };
        let mut st = KeyState::default();
        for i in 0..(Reservation::MAX_PENDING + Reservation::MAX_DONE) as u64 {
            let status = if i < Reservation::MAX_PENDING as u64 {
                ReservationStatus::Pending
            } else {
                ReservationStatus::Settled
            };
            let mut unique = [0; 16];
            unique[..8].copy_from_slice(&i.to_be_bytes());
            st.reservations.insert(unique, reservation(i, status));
        }
        let len = encode(&st).len() - encode(&KeyState::default()).len();
        assert!(len <= bound, "{len} <= {bound}");
        assert!(
            bound < 2 * len,
            "the bound is not wildly loose: {bound} vs {len}"
        );
    }

    #[test]
    fn byte_limits_need_a_count_limit_to_be_bounded() {
        let unbounded: Policy = "volume=user:50MiB/24h;uploads=ip:5/1h".parse().unwrap();
        assert_eq!(max_encoded_len(&unbounded, Subject::User), None);
        let bounded: Policy = "volume=user:50MiB/24h;uploads=user:5/3h".parse().unwrap();
        // 5 per 3 h admits at most 5 * (8 + 1) = 45 uploads in 24 h.
        let n = max_encoded_len(&bounded, Subject::User).unwrap() - max_grants_len(&bounded);
        assert!(n < 600, "{n}");
        let gcra: Policy = "volume=user:50MiB/24h:gcra".parse().unwrap();
        assert!(max_encoded_len(&gcra, Subject::User).unwrap() - max_grants_len(&gcra) < 64);
    }
}
