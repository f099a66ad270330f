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
//!         | 3 count limit* gcount grant* rcount reservation*   (upload mode)
//! limit  := name_len name_utf8 tag body
//! tag 0  := sliding: n  t0 c0  (dt_i c_i){n-1}   times ascending, dt = t_i - t_{i-1}
//! tag 1  := gcra:    tat_ns rem
//! tag 2  := fixed:   start used
//! grant  := key_len key_utf8 unique(16 bytes) fingerprint(16 bytes) expires_at n (remaining reset_at){n}
//! reservation := unique(16 bytes) granted_at expires_at size ct_len ct_utf8 flags
//!                [checksum(32 bytes)] [tier_len tier_utf8] n (name_len name_utf8 cost){n}
//! flags  := status (bits 0-1: 0 pending, 1 settled, 2 rejected)
//!           | 4 if a checksum follows | 8 if a tier follows
//! ```
//!
//! A state is written in the lowest format that holds it, so what stores
//! wrote before a format existed decodes, and encodes again, unchanged.

mod bound;
mod reservation;

pub use bound::{max_encoded_len, max_grants_len, max_reservations_len};

use crate::algorithm::{FixedState, GcraState, SlidingState};
use crate::clock::Timestamp;
use crate::store::{Grant, KeyState, LimitState};

/// The largest state one subject may need under a policy (checked at
/// configuration): a few write units on DynamoDB, far under its 400 KB item
/// limit. A sliding limit of 1000 uploads needs at most about 4 KB.
pub const MAX_STATE_BYTES: usize = 8 * 1024;

/// The largest state one user may need in upload mode, reservations
/// included ([`max_encoded_len`] plus [`max_reservations_len`], checked at
/// configuration). Reservations are bounded by count
/// ([`Reservation::MAX_PENDING`](crate::Reservation::MAX_PENDING) pending,
/// [`Reservation::MAX_DONE`](crate::Reservation::MAX_DONE) settled), about
/// 150 bytes each, so a user holding many unsettled grants has a state of
/// tens of KB: still well under DynamoDB's 400 KB item limit, with room
/// for the item's other attributes.
pub const MAX_RESERVED_STATE_BYTES: usize = 256 * 1024;

/// The format of a state without grants: what every store has written so
/// far, so a state without grants is byte for byte what it always was.
const FORMAT: u8 = 1;
/// The format of a state with grants.
const FORMAT_GRANTS: u8 = 2;
/// The format of a state with reservations (and grants, maybe none).
const FORMAT_RESERVATIONS: u8 = 3;
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
    let format = if !state.reservations.is_empty() {
        FORMAT_RESERVATIONS
    } else if !state.grants.is_empty() {
        FORMAT_GRANTS
    } else {
        FORMAT
    };
    out.push(format);
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
    if format >= FORMAT_GRANTS {
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
    if format >= FORMAT_RESERVATIONS {
        reservation::encode(&mut out, &state.reservations);
    }
    out
}

/// Decodes a state written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<KeyState, CodecError> {
    let mut r = Reader { bytes, pos: 0 };
    let format = r.byte()?;
    if !(FORMAT..=FORMAT_RESERVATIONS).contains(&format) {
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
    if format >= FORMAT_GRANTS {
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
    if format >= FORMAT_RESERVATIONS {
        state.reservations = reservation::decode(&mut r)?;
    }
    match r.remaining() {
        0 => Ok(state),
        n => Err(CodecError::Trailing(n)),
    }
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

    /// A length-prefixed UTF-8 string; `what` names it in the error.
    fn text(&mut self, what: &'static str) -> Result<String, CodecError> {
        let len = usize::try_from(self.varint()?).map_err(|_| CodecError::Truncated)?;
        std::str::from_utf8(self.take(len)?)
            .map(str::to_owned)
            .map_err(|_| CodecError::Malformed(what))
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
    use crate::reservation::{Reservation, ReservationStatus};
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

    fn reservation() -> impl Strategy<Value = Reservation> {
        (
            (any::<u64>(), any::<u64>(), any::<u64>(), "[ -~é]{0,40}"),
            proptest::option::of(any::<[u8; 32]>()),
            proptest::option::of("[a-z]{1,12}"),
            proptest::collection::vec(("[a-z_]{1,8}", any::<u64>()), 0..3),
            prop_oneof![
                Just(ReservationStatus::Pending),
                Just(ReservationStatus::Settled),
                Just(ReservationStatus::Rejected)
            ],
        )
            .prop_map(
                |((granted, expires, size, content_type), checksum, tier, charged, status)| {
                    Reservation {
                        granted_at: Timestamp(granted),
                        expires_at: Timestamp(expires),
                        size,
                        content_type,
                        checksum,
                        tier,
                        charged,
                        status,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips(
            limits in proptest::collection::btree_map("[a-z_é]{1,20}", limit_state(), 0..5),
            grants in proptest::collection::btree_map("[!-~]{1,64}", grant(), 0..4),
            reservations in proptest::collection::btree_map(any::<[u8; 16]>(), reservation(), 0..4),
        ) {
            let st = KeyState { limits, grants, reservations };
            let bytes = encode(&st);
            let format = if !st.reservations.is_empty() { 3 } else if !st.grants.is_empty() { 2 } else { 1 };
            prop_assert_eq!(bytes[0], format);
            prop_assert_eq!(decode(&bytes), Ok(st));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }

    /// What stores wrote before reservations existed (formats 1 and 2)
    /// decodes to a state without reservations and encodes back to the
    /// same bytes.
    #[test]
    fn states_written_before_reservations_decode_unchanged() {
        let format_1: &[u8] = &[
            1, 1, 7, b'u', b'p', b'l', b'o', b'a', b'd', b's', 0, 2, 0xe8, 0x07, 1, 0xf4, 0x03, 2,
        ];
        let want = KeyState {
            limits: BTreeMap::from([(
                "uploads".to_owned(),
                LimitState::Sliding(SlidingState {
                    entries: vec![(1_000, 1), (1_500, 2)],
                }),
            )]),
            ..KeyState::default()
        };
        assert_eq!(decode(format_1), Ok(want.clone()));
        assert_eq!(encode(&want), format_1);
        let mut format_2 = vec![2, 1, 1, b'r', 1, 9, 2, 1, 1, b'k'];
        format_2.extend([0xa1; 16]);
        format_2.extend([0xf1; 16]);
        format_2.extend([0xd0, 0x0f, 1, 3, 0x80, 0x01]);
        let want = KeyState {
            limits: BTreeMap::from([(
                "r".to_owned(),
                LimitState::Gcra(GcraState { tat_ns: 9, rem: 2 }),
            )]),
            grants: BTreeMap::from([(
                "k".to_owned(),
                Grant {
                    unique: [0xa1; 16],
                    fingerprint: [0xf1; 16],
                    expires_at: Timestamp(2_000),
                    limits: vec![(3, 128)],
                },
            )]),
            reservations: BTreeMap::new(),
        };
        assert_eq!(decode(&format_2), Ok(want.clone()));
        assert_eq!(encode(&want), format_2);
    }

    #[test]
    fn reservations_take_format_3_in_the_documented_layout() {
        let state = KeyState {
            reservations: BTreeMap::from([(
                [7; 16],
                Reservation {
                    granted_at: Timestamp(1_000),
                    expires_at: Timestamp(2_000),
                    size: 5,
                    content_type: "a/b".into(),
                    checksum: Some([9; 32]),
                    tier: Some("pro".into()),
                    charged: vec![("u".into(), 1)],
                    status: ReservationStatus::Settled,
                },
            )]),
            ..KeyState::default()
        };
        let mut want = vec![3, 0, 0, 1];
        want.extend([7; 16]);
        want.extend([0xe8, 0x07, 0xd0, 0x0f, 5, 3, b'a', b'/', b'b', 1 | 4 | 8]);
        want.extend([9; 32]);
        want.extend([3, b'p', b'r', b'o', 1, 1, b'u', 1]);
        assert_eq!(encode(&state), want);
        assert_eq!(decode(&want), Ok(state));
        // An unknown flag or status is refused, not guessed at.
        let flags = 4 + 16 + 2 + 2 + 1 + 4;
        for bad in [16, 3] {
            let mut bytes = want.clone();
            bytes[flags] = bad;
            assert!(matches!(decode(&bytes), Err(CodecError::Malformed(_))));
        }
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
