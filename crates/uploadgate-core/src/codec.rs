//! A compact binary encoding of [`KeyState`], and the worst-case size of a
//! policy's state under it.
//!
//! Remote stores pay per byte (DynamoDB bills writes per started KB and
//! refuses items over 400 KB), so state is stored as LEB128 varints with
//! sliding-window times delta-encoded: a sliding limit of 1000 uploads in a
//! 3 h window takes about 3 KB, `uploads=user:5/3h` about 30 bytes.
//!
//! Layout (all integers unsigned LEB128):
//!
//! ```text
//! state  := 1 count limit*                 (no grants: the common case)
//!         | 2 count limit* gcount grant*   (with grants under idempotency keys)
//! limit  := name_len name_utf8 tag body
//! tag 0  := sliding: n  t0 c0  (dt_i c_i){n-1}   times ascending, dt = t_i - t_{i-1}
//! tag 1  := gcra:    tat_ns rem
//! tag 2  := fixed:   start used
//! grant  := key_len key_utf8 unique(16 bytes) fingerprint(16 bytes) expires_at n (remaining reset_at){n}
//! ```

use crate::algorithm::{FixedState, GcraState, SlidingState};
use crate::clock::Timestamp;
use crate::domain::Subject;
use crate::policy::{Algorithm, Limit, Policy, Unit, Window};
use crate::store::{Grant, KeyState, LimitState};

/// The largest state one subject may need under a policy (checked at
/// configuration): a few write units on DynamoDB, far under its 400 KB item
/// limit. A sliding limit of 1000 uploads needs at most about 4 KB.
pub const MAX_STATE_BYTES: usize = 8 * 1024;

/// The format of a state without grants: what every store has written so
/// far, so a state without grants is byte for byte what it always was.
const FORMAT: u8 = 1;
/// The format of a state with grants.
const FORMAT_GRANTS: u8 = 2;
const TAG_SLIDING: u8 = 0;
const TAG_GCRA: u8 = 1;
const TAG_FIXED: u8 = 2;
/// The longest LEB128 encoding of a u64.
const MAX_VARINT: usize = 10;

/// Why bytes did not decode to a [`KeyState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes end in the middle of a value.
    #[error("state is truncated")]
    Truncated,
    /// The first byte names a format this build does not know.
    #[error("unknown state format {0}")]
    Format(u8),
    /// A limit has an unknown algorithm tag.
    #[error("unknown limit tag {0}")]
    Tag(u8),
    /// A varint overflows u64, a name is not UTF-8, or times go backwards.
    #[error("malformed state: {0}")]
    Malformed(&'static str),
    /// Bytes are left over after the last limit.
    #[error("{0} trailing bytes after the state")]
    Trailing(usize),
}

/// Encodes a state.
pub fn encode(state: &KeyState) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.push(if state.grants.is_empty() {
        FORMAT
    } else {
        FORMAT_GRANTS
    });
    put(&mut out, state.limits.len() as u64);
    for (name, limit) in &state.limits {
        put(&mut out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
        match limit {
            LimitState::Sliding(SlidingState { entries }) => {
                out.push(TAG_SLIDING);
                put(&mut out, entries.len() as u64);
                let mut prev = 0;
                for (i, &(t, c)) in entries.iter().enumerate() {
                    // Entries are kept in time order by the algorithm; a
                    // (never produced) out-of-order entry is stored as is
                    // by clamping its delta, which keeps encode total.
                    put(&mut out, if i == 0 { t } else { t.saturating_sub(prev) });
                    put(&mut out, c);
                    prev = prev.max(t);
                }
            }
            LimitState::Gcra(GcraState { tat_ns, rem }) => {
                out.push(TAG_GCRA);
                put(&mut out, *tat_ns);
                put(&mut out, *rem);
            }
            LimitState::Fixed(FixedState { start, used }) => {
                out.push(TAG_FIXED);
                put(&mut out, *start);
                put(&mut out, *used);
            }
        }
    }
    if !state.grants.is_empty() {
        put(&mut out, state.grants.len() as u64);
        for (key, g) in &state.grants {
            put(&mut out, key.len() as u64);
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&g.unique);
            out.extend_from_slice(&g.fingerprint);
            put(&mut out, g.expires_at.0);
            put(&mut out, g.limits.len() as u64);
            for &(remaining, reset_at) in &g.limits {
                put(&mut out, remaining);
                put(&mut out, reset_at);
            }
        }
    }
    out
}

/// Decodes a state written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<KeyState, CodecError> {
    let mut r = Reader { bytes, pos: 0 };
    let format = r.byte()?;
    if format != FORMAT && format != FORMAT_GRANTS {
        return Err(CodecError::Format(format));
    }
    let count = r.varint()?;
    let mut state = KeyState::default();
    for _ in 0..count {
        let len = usize::try_from(r.varint()?).map_err(|_| CodecError::Truncated)?;
        let name = std::str::from_utf8(r.take(len)?)
            .map_err(|_| CodecError::Malformed("limit name is not UTF-8"))?
            .to_owned();
        let limit = match r.byte()? {
            TAG_SLIDING => {
                let n = r.varint()?;
                // Each entry takes at least two bytes; refuse a count the
                // input cannot hold before allocating for it.
                if n > (r.remaining() / 2) as u64 {
                    return Err(CodecError::Truncated);
                }
                let mut entries = Vec::with_capacity(n as usize);
                let mut t = 0u64;
                for i in 0..n {
                    let d = r.varint()?;
                    t = if i == 0 {
                        d
                    } else {
                        t.checked_add(d)
                            .ok_or(CodecError::Malformed("time overflows"))?
                    };
                    entries.push((t, r.varint()?));
                }
                LimitState::Sliding(SlidingState { entries })
            }
            TAG_GCRA => LimitState::Gcra(GcraState {
                tat_ns: r.varint()?,
                rem: r.varint()?,
            }),
            TAG_FIXED => LimitState::Fixed(FixedState {
                start: r.varint()?,
                used: r.varint()?,
            }),
            tag => return Err(CodecError::Tag(tag)),
        };
        state.limits.insert(name, limit);
    }
    if format == FORMAT_GRANTS {
        let count = r.varint()?;
        for _ in 0..count {
            let len = usize::try_from(r.varint()?).map_err(|_| CodecError::Truncated)?;
            let key = std::str::from_utf8(r.take(len)?)
                .map_err(|_| CodecError::Malformed("idempotency key is not UTF-8"))?
                .to_owned();
            let mut grant = Grant {
                unique: r.array()?,
                fingerprint: r.array()?,
                expires_at: Timestamp(r.varint()?),
                limits: Vec::new(),
            };
            let n = r.varint()?;
            if n > (r.remaining() / 2) as u64 {
                return Err(CodecError::Truncated);
            }
            for _ in 0..n {
                grant.limits.push((r.varint()?, r.varint()?));
            }
            state.grants.insert(key, grant);
        }
    }
    match r.remaining() {
        0 => Ok(state),
        n => Err(CodecError::Trailing(n)),
    }
}

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

fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, CodecError> {
        let b = *self.bytes.get(self.pos).ok_or(CodecError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).ok_or(CodecError::Truncated)?;
        let s = self.bytes.get(self.pos..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(CodecError::Malformed("varint overflows u64"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::Malformed("varint overflows u64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::sliding;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn limit_state() -> impl Strategy<Value = LimitState> {
        prop_oneof![
            proptest::collection::vec((any::<u64>(), any::<u64>()), 0..40).prop_map(|mut v| {
                v.sort_by_key(|e| e.0);
                LimitState::Sliding(SlidingState { entries: v })
            }),
            (any::<u64>(), any::<u64>())
                .prop_map(|(tat_ns, rem)| LimitState::Gcra(GcraState { tat_ns, rem })),
            (any::<u64>(), any::<u64>())
                .prop_map(|(start, used)| LimitState::Fixed(FixedState { start, used })),
        ]
    }

    fn grant() -> impl Strategy<Value = Grant> {
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u64>(),
            proptest::collection::vec((any::<u64>(), any::<u64>()), 0..4),
        )
            .prop_map(|(unique, fingerprint, exp, limits)| Grant {
                unique,
                fingerprint,
                expires_at: Timestamp(exp),
                limits,
            })
    }

    proptest! {
        #[test]
        fn round_trips(
            limits in proptest::collection::btree_map("[a-z_é]{1,20}", limit_state(), 0..5),
            grants in proptest::collection::btree_map("[!-~]{1,64}", grant(), 0..4),
        ) {
            let st = KeyState { limits, grants };
            prop_assert_eq!(decode(&encode(&st)), Ok(st));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }

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
                let st = KeyState { grants: BTreeMap::new(), limits: BTreeMap::from([
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

    #[test]
    fn refuses_malformed_input() {
        assert_eq!(decode(&[]), Err(CodecError::Truncated));
        assert_eq!(decode(&[9, 0]), Err(CodecError::Format(9)));
        assert_eq!(decode(&[1, 1, 1, b'a', 7]), Err(CodecError::Tag(7)));
        assert_eq!(decode(&[1, 0, 0]), Err(CodecError::Trailing(1)));
        assert_eq!(
            decode(&[1, 1, 1, b'a', 0, 100, 1]),
            Err(CodecError::Truncated)
        );
        assert!(matches!(
            decode(&[
                1, 1, 1, b'a', 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0
            ]),
            Err(CodecError::Malformed(_))
        ));
    }
}
