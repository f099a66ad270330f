//! A durable, embedded state store for uploadgate, on [redb].
//!
//! Compare-and-swaps go to one writer thread (module `writer`), which applies
//! them in arrival order inside a redb write transaction and commits it with
//! `Durability::Immediate` (fsync) before any of their callers gets an
//! answer, so an admitted upload is on disk before its URL is handed out and
//! state survives `kill -9`. The operations that arrive while a commit is
//! syncing share the next transaction (group commit). redb serialises write
//! transactions, which makes the version check and the write one atomic step
//! across any number of keys.
//!
//! States are stored in the compact codec, as on every store, behind a
//! small header (module `record`). The file carries a format version:
//! opening a file of an older format converts it in place, and a newer one
//! is refused (module `format`).
//!
//! The usage ledger lives in the same file, in tables of its own
//! ([`FileStore::ledger`], module `ledger`), so one data directory holds
//! everything `uploadgate serve` keeps.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable};
use uploadgate_core::{
    CasOutcome, Reset, StateKey, Store, StoreError, Timestamp, Versioned, Write,
};

mod format;
mod ledger;
mod record;
mod writer;

pub use ledger::FileLedger;

use format::FormatError;
use record::{EXPIRY, META, STATE, backend};
use writer::Writer;

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
    /// The file was written by a newer uploadgate, in a format this build
    /// does not know. Nothing was changed.
    #[error(
        "{path} is in file store format {found}, newer than the format {known} this build knows; run a newer uploadgate, or use another --data-dir"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its format.
        found: u64,
        /// The newest format this build knows.
        known: u64,
    },
    /// The writer thread could not be started.
    #[error("cannot start the file store's writer thread")]
    Writer(#[source] std::io::Error),
    /// redb refused to open the file, or it could not be prepared (created,
    /// or converted from an older format).
    #[error("cannot open state database {path}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// The redb error.
        #[source]
        source: redb::Error,
    },
}

/// The embedded durable store. Cheap to clone; clones share the database
/// and its writer thread.
#[derive(Clone, Debug)]
pub struct FileStore {
    db: Arc<Database>,
    path: PathBuf,
    writer: Arc<Writer>,
}

impl FileStore {
    /// File name of the database inside the data directory.
    pub const FILE_NAME: &'static str = "uploadgate.redb";

    /// Opens (or creates) the store in `data_dir`, converting a file of an
    /// older format to the current one.
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
        // One transaction checks the format, converts an older file, and
        // creates the tables, so readers never see them missing.
        let prepare = || -> Result<(), FormatError> {
            let tx = db.begin_write()?;
            format::upgrade(&tx)?;
            tx.open_table(STATE)?;
            tx.open_table(EXPIRY)?;
            tx.open_table(META)?;
            tx.open_table(ledger::USAGE)?;
            tx.open_table(ledger::USAGE_BY_USER)?;
            tx.commit()?;
            Ok(())
        };
        prepare().map_err(|e| match e {
            FormatError::TooNew(found) => OpenError::TooNew {
                path: path.clone(),
                found,
                known: format::FORMAT,
            },
            FormatError::Db(source) => OpenError::Database {
                path: path.clone(),
                source,
            },
        })?;
        let db = Arc::new(db);
        let writer = Writer::start(Arc::clone(&db)).map_err(OpenError::Writer)?;
        Ok(FileStore {
            db,
            path,
            writer: Arc::new(writer),
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

impl Store for FileStore {
    async fn load(&self, keys: &[StateKey]) -> Result<Vec<Option<Versioned>>, StoreError> {
        let keys: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(backend)?;
            let table = tx.open_table(STATE).map_err(backend)?;
            keys.iter()
                .map(|k| Ok(record::read_current(&table, k)?.map(|(v, _)| v)))
                .collect()
        })
        .await
    }

    async fn compare_and_swap(&self, writes: Vec<Write>) -> Result<CasOutcome, StoreError> {
        self.writer.submit(writes).await
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

impl Reset for FileStore {
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
                    .map(|raw| record::split(raw.value()).map(|(_, e, _)| e));
                match old {
                    Some(exp) => {
                        // A corrupt record is still deleted; only the index
                        // entry of one without a header may linger, and
                        // purge skips missing keys.
                        if let Some(exp) = exp {
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
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use uploadgate_core::{KeyState, LimitState, SlidingState, UserId};

    #[tokio::test]
    async fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let key = StateKey::user(&UserId::parse("alice").unwrap());
        let st = KeyState {
            grants: Default::default(),
            reservations: Default::default(),
            limits: BTreeMap::from([(
                "uploads".into(),
                LimitState::Sliding(SlidingState {
                    entries: vec![(5, 1)],
                }),
            )]),
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

    /// Writes a record too short to decode under `key`.
    pub(crate) fn plant_corrupt_record(store: &FileStore, key: &str) {
        let tx = store.db.begin_write().unwrap();
        tx.open_table(STATE)
            .unwrap()
            .insert(key, b"short".as_slice())
            .unwrap();
        tx.commit().unwrap();
    }

    pub(crate) fn state(n: u64) -> KeyState {
        KeyState {
            grants: Default::default(),
            reservations: Default::default(),
            limits: BTreeMap::from([(
                "uploads".into(),
                LimitState::Sliding(SlidingState {
                    entries: vec![(n, 1)],
                }),
            )]),
        }
    }

    /// Concurrent compare-and-swaps through the writer thread: every one is
    /// answered, versions are unique, and all of them are on disk after a
    /// reopen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_all_commit_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let n = 200u64;
        let versions = {
            let store = FileStore::open(dir.path()).unwrap();
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let w = Write {
                            key: StateKey::user(&UserId::parse(&format!("u{i}")).unwrap()),
                            expected: None,
                            state: state(i),
                            expire_at: Timestamp(10),
                        };
                        match store.compare_and_swap(vec![w]).await.unwrap() {
                            CasOutcome::Committed(v) => v[0],
                            c => panic!("{c:?}"),
                        }
                    })
                })
                .collect();
            let mut versions = Vec::new();
            for t in tasks {
                versions.push(t.await.unwrap());
            }
            versions
        };
        let mut unique = versions.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), n as usize);
        let store = FileStore::open(dir.path()).unwrap();
        let keys: Vec<_> = (0..n)
            .map(|i| StateKey::user(&UserId::parse(&format!("u{i}")).unwrap()))
            .collect();
        let got = store.load(&keys).await.unwrap();
        for (i, (g, v)) in got.iter().zip(&versions).enumerate() {
            assert_eq!(
                g,
                &Some(Versioned {
                    version: *v,
                    state: state(i as u64)
                })
            );
        }
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
        plant_corrupt_record(&store, "user#x");
        let key = StateKey::user(&UserId::parse("x").unwrap());
        let err = store.load(&[key]).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { ref key, .. } if key == "user#x"),
            "{err:?}"
        );
    }
}
