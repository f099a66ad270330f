//! The database layout: three tables, and the record one key's state is
//! stored as.
//!
//! `state` maps a key to `version (8 bytes LE) | expire_at (8 bytes LE) |
//! state`, the state in the compact [`codec`], the very bytes the DynamoDB
//! store keeps in its `st` attribute: one encoding of state for every store.
//! The version and expiry stay outside the codec because they belong to the
//! store, not to the limits. `expiry` indexes `(expire_at, key)` so idle keys
//! are purged by a range scan instead of a full walk. `meta` holds the
//! version counter, which only grows, so versions are never reused even
//! across deletes, and the file's format (see [`crate::format`]).
//!
//! The usage ledger's two tables (`usage`, `usage_by_user`) are laid out in
//! [`crate::ledger`]. Adding them needed no new format: a build that does
//! not know them never opens them.

use redb::{ReadableTable, TableDefinition};
use uploadgate_core::{KeyState, StoreError, Timestamp, Version, Versioned, codec};

pub(crate) const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
pub(crate) const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
/// Keeps its name and types in every format, so any build can read the
/// format marker in it.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const NEXT_VERSION: &str = "next_version";

/// Length of the record header: version and expiry.
const HEADER: usize = 16;

pub(crate) fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(Box::new(e.into()))
}

/// A record's header and its state bytes, or `None` if it is too short to
/// hold a header.
pub(crate) fn split(raw: &[u8]) -> Option<(Version, Timestamp, &[u8])> {
    let (v, rest) = raw.split_first_chunk::<8>()?;
    let (e, state) = rest.split_first_chunk::<8>()?;
    Some((
        u64::from_le_bytes(*v),
        Timestamp(u64::from_le_bytes(*e)),
        state,
    ))
}

/// A record from its parts; `state` is already encoded.
pub(crate) fn join(version: Version, expire_at: Timestamp, state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + state.len());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&expire_at.0.to_le_bytes());
    out.extend_from_slice(state);
    out
}

pub(crate) fn encode(version: Version, expire_at: Timestamp, state: &KeyState) -> Vec<u8> {
    join(version, expire_at, &codec::encode(state))
}

pub(crate) fn decode(key: &str, raw: &[u8]) -> Result<(Versioned, Timestamp), StoreError> {
    let corrupt = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Corrupt {
        key: key.to_owned(),
        source,
    };
    let (version, expire_at, bytes) =
        split(raw).ok_or_else(|| corrupt("record shorter than its header".into()))?;
    let state = codec::decode(bytes).map_err(|e| corrupt(Box::new(e)))?;
    Ok((Versioned { version, state }, expire_at))
}

pub(crate) fn read_current(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<(Versioned, Timestamp)>, StoreError> {
    match table.get(key).map_err(backend)? {
        Some(raw) => decode(key, raw.value()).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use uploadgate_core::{GcraState, LimitState};

    #[test]
    fn records_round_trip_and_short_ones_are_corrupt() {
        let state = KeyState {
            grants: Default::default(),
            reservations: Default::default(),
            limits: BTreeMap::from([(
                "rate".to_owned(),
                LimitState::Gcra(GcraState { tat_ns: 9, rem: 2 }),
            )]),
        };
        let raw = encode(7, Timestamp(1_000), &state);
        assert_eq!(&raw[HEADER..], codec::encode(&state).as_slice());
        let (v, e) = decode("k", &raw).unwrap();
        assert_eq!((v.version, v.state, e), (7, state, Timestamp(1_000)));
        for short in [&raw[..0], &raw[..15]] {
            assert!(matches!(
                decode("k", short),
                Err(StoreError::Corrupt { key, .. }) if key == "k"
            ));
        }
    }
}
