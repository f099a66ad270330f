//! The writer thread: every compare-and-swap of a store goes through it.
//!
//! It takes all operations queued while the previous commit was syncing
//! (group commit), applies them in arrival order inside one redb write
//! transaction and commits it with `Durability::Immediate` (fsync) before
//! any of their callers gets an answer: one fsync per batch instead of one
//! per request, and an admitted upload is on disk before its URL is handed
//! out. Each operation checks its versions against the state left by the
//! ones before it, exactly as if they had run one after the other; one that
//! fails its check writes nothing and the others go on.

use std::sync::{Arc, mpsc};

use redb::{Database, ReadableTable};
use uploadgate_core::{CasOutcome, StoreError, Version, Write};

use crate::record::{self, EXPIRY, META, NEXT_VERSION, STATE, backend};

/// Most compare-and-swaps committed together.
const MAX_GROUP: usize = 512;

/// One compare-and-swap waiting for the writer thread.
struct Job {
    writes: Vec<Write>,
    reply: tokio::sync::oneshot::Sender<Result<CasOutcome, StoreError>>,
}

/// The writer thread and its queue. Dropping it closes the queue and waits
/// for the thread, so the database is closed when the store is (a reopen in
/// the same process then succeeds).
#[derive(Debug)]
pub(crate) struct Writer {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread on `db`.
    pub(crate) fn start(db: Arc<Database>) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("uploadgate-file-writer".into())
            .spawn(move || write_loop(&db, &jobs))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues one compare-and-swap and waits for its commit.
    pub(crate) async fn submit(&self, writes: Vec<Write>) -> Result<CasOutcome, StoreError> {
        let stopped = || StoreError::Backend("the file store's writer thread has stopped".into());
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job { writes, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
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

/// One compare-and-swap inside the group's transaction: every check first,
/// then the writes, so a job that fails writes nothing.
fn apply(
    state: &mut redb::Table<&'static str, &'static [u8]>,
    expiry: &mut redb::Table<(u64, &'static str), ()>,
    next: &mut Version,
    writes: &[Write],
) -> Result<Result<CasOutcome, StoreError>, StoreError> {
    let mut current = Vec::with_capacity(writes.len());
    let mut failed = Vec::new();
    for w in writes {
        let cur = match record::read_current(state, w.key.as_str()) {
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
    let mut versions = Vec::with_capacity(writes.len());
    for (w, old_expiry) in writes.iter().zip(current) {
        let key = w.key.as_str();
        if let Some(old) = old_expiry {
            expiry.remove((old.0, key)).map_err(backend)?;
        }
        let record = record::encode(*next, w.expire_at, &w.state);
        state.insert(key, record.as_slice()).map_err(backend)?;
        expiry.insert((w.expire_at.0, key), ()).map_err(backend)?;
        versions.push(*next);
        *next += 1;
    }
    Ok(Ok(CasOutcome::Committed(versions)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FileStore;
    use crate::tests::{plant_corrupt_record, state};
    use uploadgate_core::{StateKey, Store, Timestamp, UserId, Versioned};

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
}
