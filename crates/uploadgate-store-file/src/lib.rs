//! A durable, embedded state store for uploadgate, on [redb].
//!
//! Compare-and-swaps go to one writer thread, which applies them in arrival
//! order inside a redb write transaction and commits it with
//! `Durability::Immediate` (fsync) before any of their callers gets an
//! answer, so an admitted upload is on disk before its URL is handed out and
//! state survives `kill -9`. The operations that arrive while a commit is
//! syncing share the next transaction (group commit): one fsync for the whole
//! batch instead of one per request. Each operation checks its versions
//! against the state left by the ones before it, exactly as if they had run
//! one after the other; one that fails its check writes nothing and the
//! others go on. redb serialises write transactions, which makes the version
//! check and the write one atomic step across any number of keys.
//!
//! Tables: `state` maps a key to `version | expire_at | JSON state`;
//! `expiry` indexes `(expire_at, key)` so idle keys are purged by a range
//! scan instead of a full walk; `meta` holds the version counter, which only
//! grows, so versions are never reused even across deletes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

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
/// Most compare-and-swaps committed together.
const MAX_GROUP: usize = 512;

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
    /// The writer thread could not be started.
    #[error("cannot start the file store's writer thread")]
    Writer(#[source] std::io::Error),
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

/// The embedded durable store. Cheap to clone; clones share the database
/// and its writer thread.
#[derive(Clone, Debug)]
pub struct FileStore {
    db: Arc<Database>,
    path: PathBuf,
    writer: Arc<Writer>,
}

/// One compare-and-swap waiting for the writer thread.
struct Job {
    writes: Vec<Write>,
    reply: tokio::sync::oneshot::Sender<Result<CasOutcome, StoreError>>,
}

/// The writer thread and its queue. Dropping the last handle closes the
/// queue and waits for the thread, so the database is closed when the store
/// is (a reopen in the same process then succeeds).
#[derive(Debug)]
struct Writer {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(t) = self.thread.take() {
            // A panic in the writer has already failed its callers.
            let _ = t.join();
        }
    }
}

/// A batch commit failed: every caller in the batch gets this, and nothing
/// of the batch was written.
#[derive(Debug, thiserror::Error)]
#[error("the group commit failed")]
struct GroupCommitFailed(#[source] Arc<StoreError>);

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
        let db = Arc::new(db);
        let (queue, jobs) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("uploadgate-file-writer".into())
            .spawn({
                let db = Arc::clone(&db);
                move || write_loop(&db, &jobs)
            })
            .map_err(OpenError::Writer)?;
        Ok(FileStore {
            db,
            path,
            writer: Arc::new(Writer {
                queue: Some(queue),
                thread: Some(thread),
            }),
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

/// The writer thread: takes every job queued so far (at least one, at most
/// [`MAX_GROUP`]), applies them in one transaction, commits, answers.
fn write_loop(db: &Database, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        match commit_group(db, &group) {
            Ok(outcomes) => {
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    // A caller that gave up (its request was cancelled) no
                    // longer listens; its write stands, as it would have.
                    let _ = job.reply.send(outcome);
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for job in group {
                    let _ = job
                        .reply
                        .send(Err(StoreError::Backend(Box::new(GroupCommitFailed(
                            Arc::clone(&e),
                        )))));
                }
            }
        }
    }
}

/// One transaction for a group. The outer error fails the whole group
/// (nothing committed); an inner error fails one job, which wrote nothing.
fn commit_group(
    db: &Database,
    group: &[Job],
) -> Result<Vec<Result<CasOutcome, StoreError>>, StoreError> {
    let tx = db.begin_write().map_err(backend)?;
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut state = tx.open_table(STATE).map_err(backend)?;
        let mut expiry = tx.open_table(EXPIRY).map_err(backend)?;
        let mut meta = tx.open_table(META).map_err(backend)?;
        let mut next = meta
            .get(NEXT_VERSION)
            .map_err(backend)?
            .map(|g| g.value())
            .unwrap_or(1);
        for job in group {
            outcomes.push(apply(&mut state, &mut expiry, &mut next, &job.writes)?);
        }
        meta.insert(NEXT_VERSION, next).map_err(backend)?;
    }
    tx.commit().map_err(backend)?;
    Ok(outcomes)
}

/// One compare-and-swap inside the group's transaction: every check and
/// every record first, then the writes, so a job that fails writes nothing.
fn apply(
    state: &mut redb::Table<&'static str, &'static [u8]>,
    expiry: &mut redb::Table<(u64, &'static str), ()>,
    next: &mut Version,
    writes: &[Write],
) -> Result<Result<CasOutcome, StoreError>, StoreError> {
    let mut current = Vec::with_capacity(writes.len());
    let mut failed = Vec::new();
    for w in writes {
        let cur = match read_current(state, w.key.as_str()) {
            Ok(cur) => cur,
            Err(e) => return Ok(Err(e)),
        };
        if cur.as_ref().map(|(v, _)| v.version) != w.expected {
            failed.push((w.key.clone(), cur.as_ref().map(|(v, _)| v.clone())));
        }
        current.push(cur.map(|(_, expire_at)| expire_at));
    }
    if !failed.is_empty() {
        return Ok(Ok(CasOutcome::Conflict(failed)));
    }
    let mut records = Vec::with_capacity(writes.len());
    for (i, w) in writes.iter().enumerate() {
        match encode(*next + i as u64, w.expire_at, &w.state) {
            Ok(r) => records.push(r),
            Err(e) => return Ok(Err(e)),
        }
    }
    let mut versions = Vec::with_capacity(writes.len());
    for ((w, old_expiry), record) in writes.iter().zip(current).zip(records) {
        let key = w.key.as_str();
        if let Some(old) = old_expiry {
            expiry.remove((old.0, key)).map_err(backend)?;
        }
        state.insert(key, record.as_slice()).map_err(backend)?;
        expiry.insert((w.expire_at.0, key), ()).map_err(backend)?;
        versions.push(*next);
        *next += 1;
    }
    Ok(Ok(CasOutcome::Committed(versions)))
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
        let stopped = || StoreError::Backend("the file store's writer thread has stopped".into());
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer
            .queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job { writes, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
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
    use uploadgate_core::{LimitState, SlidingState, UserId};

    #[tokio::test]
    async fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let key = StateKey::user(&UserId::parse("alice").unwrap());
        let st = KeyState {
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
    fn plant_corrupt_record(store: &FileStore, key: &str) {
        let tx = store.db.begin_write().unwrap();
        tx.open_table(STATE)
            .unwrap()
            .insert(key, b"short".as_slice())
            .unwrap();
        tx.commit().unwrap();
    }

    fn state(n: u64) -> KeyState {
        KeyState {
            limits: BTreeMap::from([(
                "uploads".into(),
                LimitState::Sliding(SlidingState {
                    entries: vec![(n, 1)],
                }),
            )]),
        }
    }

    fn job(
        writes: Vec<Write>,
    ) -> (
        Job,
        tokio::sync::oneshot::Receiver<Result<CasOutcome, StoreError>>,
    ) {
        let (reply, rx) = tokio::sync::oneshot::channel();
        (Job { writes, reply }, rx)
    }

    /// Jobs in one group behave as if run one after the other: a later job
    /// sees an earlier one's write (and conflicts on it), and a job that
    /// fails writes nothing, not even its keys that were fine.
    #[tokio::test]
    async fn a_group_runs_its_jobs_in_order_and_isolates_failures() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        plant_corrupt_record(&store, "user#bad");
        let key = |u: &str| StateKey::user(&UserId::parse(u).unwrap());
        let write = |k: &StateKey, expected, n| Write {
            key: k.clone(),
            expected,
            state: state(n),
            expire_at: Timestamp(100 + n),
        };
        let (a, b, bad) = (key("a"), key("b"), key("bad"));
        let (j1, _) = job(vec![write(&a, None, 1)]);
        // Fails on its second key (corrupt): its first key must stay absent.
        let (j2, _) = job(vec![write(&b, None, 2), write(&bad, None, 2)]);
        // Expects `a` absent, but j1 created it in this same transaction.
        let (j3, _) = job(vec![write(&a, None, 3)]);
        let (j4, _) = job(vec![write(&b, None, 4)]);
        let outcomes = commit_group(&store.db, &[j1, j2, j3, j4]).unwrap();

        let v1 = match &outcomes[0] {
            Ok(CasOutcome::Committed(v)) => v[0],
            o => panic!("{o:?}"),
        };
        assert!(
            matches!(&outcomes[1], Err(StoreError::Corrupt { key, .. }) if key == "user#bad"),
            "{:?}",
            outcomes[1]
        );
        match &outcomes[2] {
            Ok(CasOutcome::Conflict(c)) => assert_eq!(
                c,
                &vec![(
                    a.clone(),
                    Some(Versioned {
                        version: v1,
                        state: state(1)
                    })
                )]
            ),
            o => panic!("{o:?}"),
        }
        let v4 = match &outcomes[3] {
            Ok(CasOutcome::Committed(v)) => v[0],
            o => panic!("{o:?}"),
        };
        assert!(v4 > v1);
        let got = store.load(&[a, b]).await.unwrap();
        assert_eq!(
            got[0],
            Some(Versioned {
                version: v1,
                state: state(1)
            })
        );
        // `b` holds j4's state: j2 wrote nothing.
        assert_eq!(
            got[1],
            Some(Versioned {
                version: v4,
                state: state(4)
            })
        );
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
