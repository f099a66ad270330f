//! The file's format version, and the conversion of older files at open.
//!
//! `meta["format"]` names the layout of the records. Format 1 (this build)
//! stores each state in the compact codec, like every other store. Files
//! written before formats were numbered carry no marker: they are format 0,
//! the same record header followed by the JSON of the state.
//!
//! Opening a format 0 file converts every record inside the open's single
//! write transaction, which also sets the marker: a crash before its commit
//! leaves the JSON file as it was, to be converted at the next open, so a
//! file is never half converted. Versions, expiries, the expiry index and
//! the version counter are kept as they are. A record whose JSON does not
//! parse is left as it is: it still reads as corrupt, as it did before, and
//! `quota reset` removes it. Opening never fails because of one bad key.
//!
//! A file of a newer format than this build knows is refused before
//! anything is written, so an older build can never misread or downgrade it.
//! The `meta` table keeps its name and types in every format for that.

use std::collections::BTreeMap;
use std::ops::Bound;

use redb::{ReadableTable, WriteTransaction};
use uploadgate_core::{FixedState, GcraState, KeyState, LimitState, SlidingState, codec};

use crate::record::{self, META, STATE};

/// The format this build writes.
pub(crate) const FORMAT: u64 = 1;
/// The format of files written before the marker existed.
const JSON_FORMAT: u64 = 0;
const FORMAT_KEY: &str = "format";
/// Records converted per read of the table, to bound memory on big files.
const BATCH: usize = 10_000;

/// Why a file could not be brought to [`FORMAT`].
#[derive(Debug)]
pub(crate) enum FormatError {
    /// The file is in a newer format.
    TooNew(u64),
    /// The database failed.
    Db(redb::Error),
}

impl<E: Into<redb::Error>> From<E> for FormatError {
    fn from(e: E) -> Self {
        FormatError::Db(e.into())
    }
}

/// Brings the file to [`FORMAT`] inside `tx`, which the caller commits.
/// Returns how many records were converted.
pub(crate) fn upgrade(tx: &WriteTransaction) -> Result<u64, FormatError> {
    let found = tx.open_table(META)?.get(FORMAT_KEY)?.map(|g| g.value());
    // Every format so far is either the JSON one or this one; a format 2
    // adds its conversion from 1 here.
    match found {
        Some(FORMAT) => Ok(0),
        None | Some(JSON_FORMAT) => {
            let converted = convert_json_records(tx)?;
            tx.open_table(META)?.insert(FORMAT_KEY, FORMAT)?;
            Ok(converted)
        }
        Some(newer) => Err(FormatError::TooNew(newer)),
    }
}

/// Rewrites every format 0 record in the codec, a batch of keys at a time.
fn convert_json_records(tx: &WriteTransaction) -> Result<u64, redb::Error> {
    let mut table = tx.open_table(STATE)?;
    let mut after: Option<String> = None;
    let mut converted = 0;
    loop {
        let mut last = None;
        let mut batch = Vec::new();
        {
            let lower = match &after {
                Some(k) => Bound::Excluded(k.as_str()),
                None => Bound::Unbounded,
            };
            for entry in table.range::<&str>((lower, Bound::Unbounded))?.take(BATCH) {
                let (key, raw) = entry?;
                if let Some(record) = from_json(raw.value()) {
                    batch.push((key.value().to_owned(), record));
                }
                last = Some(key.value().to_owned());
            }
        }
        for (key, record) in &batch {
            table.insert(key.as_str(), record.as_slice())?;
        }
        converted += batch.len() as u64;
        match last {
            Some(key) => after = Some(key),
            None => return Ok(converted),
        }
    }
}

/// A format 0 record in format 1, or `None` if it does not parse.
fn from_json(raw: &[u8]) -> Option<Vec<u8>> {
    let (version, expire_at, json) = record::split(raw)?;
    let state: JsonKeyState = serde_json::from_slice(json).ok()?;
    Some(record::join(
        version,
        expire_at,
        &codec::encode(&state.into()),
    ))
}

/// The state as format 0 wrote it (serde of the core's former types).
#[derive(serde::Deserialize)]
struct JsonKeyState {
    #[serde(rename = "l")]
    limits: BTreeMap<String, JsonLimitState>,
}

#[derive(serde::Deserialize)]
enum JsonLimitState {
    #[serde(rename = "s")]
    Sliding(Vec<(u64, u64)>),
    #[serde(rename = "g")]
    Gcra { tat_ns: u64, rem: u64 },
    #[serde(rename = "f")]
    Fixed { start: u64, used: u64 },
}

impl From<JsonKeyState> for KeyState {
    fn from(json: JsonKeyState) -> Self {
        let limits = json.limits.into_iter().map(|(name, limit)| {
            let state = match limit {
                JsonLimitState::Sliding(entries) => LimitState::Sliding(SlidingState { entries }),
                JsonLimitState::Gcra { tat_ns, rem } => LimitState::Gcra(GcraState { tat_ns, rem }),
                JsonLimitState::Fixed { start, used } => {
                    LimitState::Fixed(FixedState { start, used })
                }
            };
            (name, state)
        });
        KeyState {
            grants: Default::default(),
            reservations: Default::default(),
            limits: limits.collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileStore, OpenError};
    use redb::{Database, ReadableDatabase};
    use uploadgate_core::{Reset, StateKey, Store, StoreError, Timestamp, UserId, Versioned};

    fn json_record(version: u64, expire_at: u64, json: &str) -> Vec<u8> {
        record::join(version, Timestamp(expire_at), json.as_bytes())
    }

    /// Writes a format 0 file: no marker, JSON records.
    fn write_json_file(dir: &std::path::Path, records: &[(&str, Vec<u8>)]) {
        let db = Database::create(dir.join(FileStore::FILE_NAME)).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut state = tx.open_table(STATE).unwrap();
            for (key, raw) in records {
                state.insert(*key, raw.as_slice()).unwrap();
            }
            tx.open_table(META)
                .unwrap()
                .insert(record::NEXT_VERSION, 40)
                .unwrap();
        }
        tx.commit().unwrap();
    }

    fn format_of(dir: &std::path::Path) -> Option<u64> {
        let db = Database::open(dir.join(FileStore::FILE_NAME)).unwrap();
        let tx = db.begin_read().unwrap();
        let meta = tx.open_table(META).unwrap();
        meta.get(FORMAT_KEY).unwrap().map(|g| g.value())
    }

    #[test]
    fn every_kind_of_json_state_converts() {
        let raw = json_record(
            3,
            99,
            r#"{"l":{"a":{"s":[[5,1],[7,2]]},"b":{"g":{"tat_ns":11,"rem":4}},"c":{"f":{"start":0,"used":9}}}}"#,
        );
        let (v, e) = record::decode("k", &from_json(&raw).unwrap()).unwrap();
        let want = KeyState {
            grants: Default::default(),
            reservations: Default::default(),
            limits: BTreeMap::from([
                (
                    "a".into(),
                    LimitState::Sliding(SlidingState {
                        entries: vec![(5, 1), (7, 2)],
                    }),
                ),
                (
                    "b".into(),
                    LimitState::Gcra(GcraState { tat_ns: 11, rem: 4 }),
                ),
                (
                    "c".into(),
                    LimitState::Fixed(FixedState { start: 0, used: 9 }),
                ),
            ]),
        };
        assert_eq!(
            (v, e),
            (
                Versioned {
                    version: 3,
                    state: want
                },
                Timestamp(99)
            )
        );
        assert_eq!(from_json(&json_record(3, 99, "{not json")), None);
        assert_eq!(from_json(b"short"), None);
    }

    /// A record that did not parse before the upgrade still reads as
    /// corrupt after it, and does not stop the others from converting.
    #[tokio::test]
    async fn a_bad_record_is_left_alone_and_the_rest_converts() {
        let dir = tempfile::tempdir().unwrap();
        let good = json_record(12, 500, r#"{"l":{"u":{"s":[[1,1]]}}}"#);
        let bad = json_record(13, 500, r#"{"l":{"u":{"zz":1}}}"#);
        write_json_file(
            dir.path(),
            &[
                ("user#good", good),
                ("user#bad", bad.clone()),
                ("user#tiny", b"x".to_vec()),
            ],
        );
        let store = FileStore::open(dir.path()).unwrap();
        let key = |u: &str| StateKey::user(&UserId::parse(u).unwrap());
        let got = store.load(&[key("good")]).await.unwrap();
        assert_eq!(got[0].as_ref().map(|v| v.version), Some(12));
        for k in ["bad", "tiny"] {
            assert!(
                matches!(store.load(&[key(k)]).await, Err(StoreError::Corrupt { .. })),
                "{k}"
            );
        }
        assert!(store.delete(&key("bad")).await.unwrap());
        drop(store);
        assert_eq!(format_of(dir.path()), Some(FORMAT));
    }

    #[test]
    fn a_new_file_is_marked_with_this_format() {
        let dir = tempfile::tempdir().unwrap();
        drop(FileStore::open(dir.path()).unwrap());
        assert_eq!(format_of(dir.path()), Some(FORMAT));
    }

    #[test]
    fn a_newer_format_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(FileStore::FILE_NAME)).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert(FORMAT_KEY, FORMAT + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        let err = FileStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                OpenError::TooNew {
                    found: 2,
                    known: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("format 2") && msg.contains("newer"), "{msg}");
        assert_eq!(format_of(dir.path()), Some(FORMAT + 1));
        // Nothing was created either.
        let db = Database::open(dir.path().join(FileStore::FILE_NAME)).unwrap();
        let tx = db.begin_read().unwrap();
        assert!(tx.open_table(STATE).is_err());
    }
}
