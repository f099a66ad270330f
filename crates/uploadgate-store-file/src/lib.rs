//! A durable, embedded state store for uploadgate, on [redb].
//!
//! Every compare-and-swap is one redb write transaction, committed with
//! `Durability::Immediate` (fsync) before the caller gets its answer, so an
//! admitted upload is on disk before its URL is handed out and state survives
//! `kill -9`. redb serialises write transactions, which makes the version
//! check and the write one atomic step across any number of keys.
//!
//! Tables: `state` maps a key to `version | expire_at | JSON state`;
//! `expiry` indexes `(expire_at, key)` so idle keys are purged by a range
//! scan instead of a full walk; `meta` holds the version counter, which only
//! grows, so versions are never reused even across deletes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use uploadgate_core::{
    CasOutcome, KeyState, StateKey, Store, StoreError, Timestamp, Version, Versioned, Write,
};

const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_VERSION: &str = "next_version";
/// Keys purged per transaction, so a purge never holds the writer for long.
const PURGE_BATCH: usize = 10_000;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the database.
    #[error("{path} is in use by another uploadgate process (stop it, or use another --data-dir)")]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// redb refused to open the file.
    #[error("cannot open state database {path}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// The redb error.
        #[source]
        source: redb::Error,
    },
}

/// The embedded durable store. Cheap to clone; clones share the database.
#[derive(Clone, Debug)]
pub struct FileStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl FileStore {
    /// File name of the database inside the data directory.
    pub const FILE_NAME: &'static str = "uploadgate.redb";

    /// Opens (or creates) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(|source| OpenError::Dir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(Self::FILE_NAME);
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse { path: path.clone() },
            e => OpenError::Database {
                path: path.clone(),
                source: e.into(),
            },
        })?;
        // Create the tables up front so readers never see them missing.
        let init = || -> Result<(), redb::Error> {
            let tx = db.begin_write()?;
            tx.open_table(STATE)?;
            tx.open_table(EXPIRY)?;
            tx.open_table(META)?;
            tx.commit()?;
            Ok(())
        };
        init().map_err(|source| OpenError::Database {
            path: path.clone(),
            source,
        })?;
        Ok(FileStore {
            db: Arc::new(db),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?
    }
}

fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(Box::new(e.into()))
}

fn encode(version: Version, expire_at: Timestamp, state: &KeyState) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&expire_at.0.to_le_bytes());
    serde_json::to_writer(&mut out, state).map_err(|e| StoreError::Backend(Box::new(e)))?;
    Ok(out)
}

fn decode(key: &str, raw: &[u8]) -> Result<(Versioned, Timestamp), StoreError> {
    let corrupt = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Corrupt {
        key: key.to_owned(),
        source,
    };
    if raw.len() < 16 {
        return Err(corrupt("record shorter than its header".into()));
    }
    let (v, rest) = raw.split_at(8);
    let (e, json) = rest.split_at(8);
    let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    let state: KeyState = serde_json::from_slice(json).map_err(|e| corrupt(Box::new(e)))?;
    Ok((
        Versioned {
            version: u64_of(v),
            state,
        },
        Timestamp(u64_of(e)),
    ))
}

fn read_current(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<(Versioned, Timestamp)>, StoreError> {
    match table.get(key).map_err(backend)? {
        Some(raw) => decode(key, raw.value()).map(Some),
        None => Ok(None),
    }
}

impl Store for FileStore {
    async fn load(&self, keys: &[StateKey]) -> Result<Vec<Option<Versioned>>, StoreError> {
        let keys: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(backend)?;
            let table = tx.open_table(STATE).map_err(backend)?;
            keys.iter()
                .map(|k| Ok(read_current(&table, k)?.map(|(v, _)| v)))
                .collect()
        })
        .await
    }

    async fn compare_and_swap(&self, writes: Vec<Write>) -> Result<CasOutcome, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            let mut versions = Vec::with_capacity(writes.len());
            {
                let mut state = tx.open_table(STATE).map_err(backend)?;
                let mut expiry = tx.open_table(EXPIRY).map_err(backend)?;
                let mut meta = tx.open_table(META).map_err(backend)?;
                let mut current = Vec::with_capacity(writes.len());
                let mut failed = Vec::new();
                for w in &writes {
                    let cur = read_current(&state, w.key.as_str())?;
                    if cur.as_ref().map(|(v, _)| v.version) != w.expected {
                        failed.push((w.key.clone(), cur.as_ref().map(|(v, _)| v.clone())));
                    }
                    current.push(cur);
                }
                if !failed.is_empty() {
                    // Dropping the transaction aborts it; nothing was written.
                    return Ok(CasOutcome::Conflict(failed));
                }
                let mut next = meta
                    .get(NEXT_VERSION)
                    .map_err(backend)?
                    .map(|g| g.value())
                    .unwrap_or(1);
                for (w, cur) in writes.iter().zip(current) {
                    let key = w.key.as_str();
                    if let Some((_, old_expiry)) = cur {
                        expiry.remove((old_expiry.0, key)).map_err(backend)?;
                    }
                    let record = encode(next, w.expire_at, &w.state)?;
                    state.insert(key, record.as_slice()).map_err(backend)?;
                    expiry.insert((w.expire_at.0, key), ()).map_err(backend)?;
                    versions.push(next);
                    next += 1;
                }
                meta.insert(NEXT_VERSION, next).map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(CasOutcome::Committed(versions))
        })
        .await
    }

    async fn delete(&self, key: &StateKey) -> Result<bool, StoreError> {
        let key = key.as_str().to_owned();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            let existed = {
                let mut state = tx.open_table(STATE).map_err(backend)?;
                let mut expiry = tx.open_table(EXPIRY).map_err(backend)?;
                let old = state
                    .remove(key.as_str())
                    .map_err(backend)?
                    .map(|raw| decode(&key, raw.value()).map(|(_, e)| e));
                match old {
                    Some(exp) => {
                        // A corrupt record is still deleted; only its index
                        // entry may linger, and purge skips missing keys.
                        if let Ok(exp) = exp {
                            expiry.remove((exp.0, key.as_str())).map_err(backend)?;
                        }
                        true
                    }
                    None => false,
                }
            };
            tx.commit().map_err(backend)?;
            Ok(existed)
        })
        .await
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.blocking(move |db| {
            let mut total = 0u64;
            loop {
                let tx = db.begin_write().map_err(backend)?;
                let n = {
                    let mut state = tx.open_table(STATE).map_err(backend)?;
                    let mut expiry = tx.open_table(EXPIRY).map_err(backend)?;
                    let due: Vec<(u64, String)> = expiry
                        .range::<(u64, &str)>(..(now.0, ""))
                        .map_err(backend)?
                        .take(PURGE_BATCH)
                        .map(|r| r.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
                        .collect::<Result<_, _>>()
                        .map_err(backend)?;
                    for (at, key) in &due {
                        expiry.remove((*at, key.as_str())).map_err(backend)?;
                        state.remove(key.as_str()).map_err(backend)?;
                    }
                    due.len()
                };
                tx.commit().map_err(backend)?;
                total += n as u64;
                if n < PURGE_BATCH {
                    return Ok(total);
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use uploadgate_core::{LimitState, UserId};

    #[tokio::test]
    async fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let key = StateKey::user(&UserId::parse("alice").unwrap());
        let st = KeyState {
            limits: BTreeMap::from([("uploads".into(), LimitState::Sliding(vec![(5, 1)]))]),
        };
        let version = {
            let store = FileStore::open(dir.path()).unwrap();
            let w = Write {
                key: key.clone(),
                expected: None,
                state: st.clone(),
                expire_at: Timestamp(10),
            };
            match store.compare_and_swap(vec![w]).await.unwrap() {
                CasOutcome::Committed(v) => v[0],
                c => panic!("{c:?}"),
            }
        };
        let store = FileStore::open(dir.path()).unwrap();
        let got = store.load(&[key]).await.unwrap();
        assert_eq!(got[0], Some(Versioned { version, state: st }));
    }

    #[tokio::test]
    async fn a_second_process_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let _first = FileStore::open(dir.path()).unwrap();
        let err = FileStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, OpenError::InUse { .. }), "{err:?}");
        assert!(err.to_string().contains("in use"), "{err}");
    }

    #[tokio::test]
    async fn corrupt_records_are_reported_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        {
            let tx = store.db.begin_write().unwrap();
            tx.open_table(STATE)
                .unwrap()
                .insert("user#x", b"short".as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let key = StateKey::user(&UserId::parse("x").unwrap());
        let err = store.load(&[key]).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { ref key, .. } if key == "user#x"),
            "{err:?}"
        );
    }
}
