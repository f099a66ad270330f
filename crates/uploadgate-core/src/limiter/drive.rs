//! Running one batch against the store: read the view, decide every job
//! (module `eval`), commit with one compare-and-swap, retry on the state a
//! conflict hands back, answer each job.
//!
//! # Who drives a batch
//!
//! A request that found its keys idle runs its batch of one inline, exactly
//! as a lone request always ran. A coalesced batch is a shared future
//! ([`Shared`]): every caller in it polls the same future, so whichever
//! caller is still there drives it, and dropping any of them strands
//! nobody. With a [`Runtime`](super::Runtime) the batch is also spawned, so
//! it finishes even if every caller leaves.
//!
//! # Never twice
//!
//! A job is in exactly one batch and the batch writes it in at most one
//! committed compare-and-swap; after a commit, or a store error (which may
//! hide a write that happened), the batch answers and ends, never retries.
//! A conflict means nothing was written, and the retry recomputes every job
//! on the returned state. A job whose caller left before an attempt is
//! left out of it, uncharged.
//!
//! When a batch ends, or is dropped midway, its keys are freed and the
//! requests that waited on them form the next batches ([`Release`]).

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::Shared;

use crate::clock::Clock;
use crate::domain::StateKey;
use crate::policy::Policy;
use crate::store::{CasOutcome, Store, StoreError};

use super::decision::{Contention, Decision, LimiterError, fan_out};
use super::eval::{self, Member, Pass};
use super::queue::{Job, Queue, Waiting};
use super::runtime::{Backoff, Runtime, Task, jitter_seed};

/// A running coalesced batch, as its callers hold it.
pub(super) type Handle = Shared<Task>;

/// What every batch of a limiter shares.
pub(super) struct Core<S, C> {
    pub(super) policy: Arc<Policy>,
    /// Named policies (quota tiers), each a policy of its own.
    pub(super) tiers: Vec<(String, Arc<Policy>)>,
    /// Every limit definition of `policy` and `tiers`, and the settlement
    /// grace.
    pub(super) rules: super::rules::Rules,
    pub(super) store: S,
    pub(super) clock: C,
    pub(super) queue: Queue<Handle>,
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for Core<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("policy", &self.policy)
            .field("tiers", &self.tiers)
            .field("store", &self.store)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// How batches run: the runtime, if any, and the retry schedule.
#[derive(Clone)]
pub(super) struct Settings {
    pub(super) runtime: Option<Arc<dyn Runtime>>,
    pub(super) backoff: Backoff,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("runtime", &self.runtime.as_ref().map(|_| "given"))
            .field("backoff", &self.backoff)
            .finish()
    }
}

/// A batch, ready to run: decides and answers its jobs (in arrival order),
/// then frees its keys and starts the batches waiting on them. The keys are
/// freed however the future ends: completed, dropped midway, or dropped
/// before it was ever polled (every caller left before it started).
pub(super) fn run<S: Store, C: Clock>(
    core: Arc<Core<S, C>>,
    settings: Settings,
    jobs: Vec<Job>,
) -> impl Future<Output = ()> + Send + 'static {
    // Made here, not in the future's body, so that it exists (and frees
    // the keys when dropped) even if the future is never polled.
    let release = Release {
        core,
        settings,
        keys: keys_of(&jobs),
    };
    async move {
        let r = &release;
        let mut jobs = jobs;
        while let Err((concerned, e)) = decide(&r.core, &r.settings, jobs).await {
            // The jobs the failure does not concern are decided again.
            jobs = fail(concerned, e);
            if jobs.is_empty() {
                break;
            }
        }
    }
}

/// The keys of `jobs` in order of first appearance.
fn keys_of(jobs: &[Job]) -> Vec<StateKey> {
    let mut keys: Vec<StateKey> = Vec::new();
    for k in jobs.iter().flat_map(|j| &j.keys) {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    keys
}

/// The keys of `jobs` in order of first appearance, and each job's keys as
/// positions among them.
fn union(jobs: &[Job]) -> (Vec<StateKey>, Vec<Member>) {
    let keys = keys_of(jobs);
    let members = jobs
        .iter()
        .map(|j| Member {
            keys: j
                .keys
                .iter()
                .filter_map(|k| keys.iter().position(|x| x == k))
                .collect(),
            ask: j.ask.clone(),
        })
        .collect();
    (keys, members)
}

/// Starts a coalesced batch and hands it to its callers.
fn dispatch<S: Store, C: Clock>(
    core: &Arc<Core<S, C>>,
    settings: &Settings,
    batch: Vec<Waiting<Handle>>,
) {
    let (jobs, assigns): (Vec<Job>, Vec<_>) = batch.into_iter().map(|w| (w.job, w.assign)).unzip();
    let task = run(Arc::clone(core), settings.clone(), jobs);
    // A panic ends the batch, not every caller polling it: they find their
    // answer missing (`LimiterError::Abandoned`).
    let task: Task = Box::pin(AssertUnwindSafe(task).catch_unwind().map(|_| ()));
    let handle = task.shared();
    if let Some(rt) = &settings.runtime {
        rt.spawn(Box::pin(handle.clone()));
    }
    for assign in assigns {
        // A caller that left gets nothing; its job is skipped.
        let _ = assign.send(handle.clone());
    }
}

/// Frees a batch's keys when it ends, however it ends, and starts what
/// waited on them.
struct Release<S: Store, C: Clock> {
    core: Arc<Core<S, C>>,
    settings: Settings,
    keys: Vec<StateKey>,
}

impl<S: Store, C: Clock> Drop for Release<S, C> {
    fn drop(&mut self) {
        for batch in self.core.queue.release(&self.keys) {
            dispatch(&self.core, &self.settings, batch);
        }
    }
}

/// Decides `jobs` and sends each its answer; on a store error, hands the
/// jobs still unanswered back with it.
async fn decide<S: Store, C: Clock>(
    core: &Core<S, C>,
    settings: &Settings,
    mut jobs: Vec<Job>,
) -> Result<(), (Vec<Job>, StoreError)> {
    let (keys, mut members) = union(&jobs);
    let keys = keys.as_slice();
    let mut base = match core.store.load_cached(keys).await {
        Ok(view) => view,
        Err(e) => return Err((jobs, e)),
    };
    let mut confirmed = vec![false; keys.len()];
    let attempts = settings.backoff.attempts();
    for attempt in 1..=attempts {
        let mut i = 0;
        while i < jobs.len() {
            if jobs[i].abandoned() {
                jobs.remove(i);
                members.remove(i);
            } else {
                i += 1;
            }
        }
        if jobs.is_empty() {
            return Ok(());
        }
        let now = core.clock.now();
        let (decisions, writes) = loop {
            match eval::pass(&core.rules, keys, &base, &confirmed, &members, now) {
                Pass::Decided { decisions, writes } => break (decisions, writes),
                Pass::Confirm(denied_on) => {
                    // A denial may rest on a cached view: the store vouches
                    // for it or hands back the truth, once per key.
                    let asked: Vec<StateKey> = denied_on.iter().map(|&i| keys[i].clone()).collect();
                    for &i in &denied_on {
                        confirmed[i] = true;
                    }
                    match core.store.refresh_for_denial(&asked).await {
                        Ok(None) => {}
                        Ok(Some(fresh)) => {
                            for (&i, state) in denied_on.iter().zip(fresh) {
                                base[i] = state;
                            }
                        }
                        Err(e) => return Err((jobs, e)),
                    }
                }
            }
        };
        if writes.is_empty() {
            answer(jobs, decisions, attempt);
            return Ok(());
        }
        match core.store.compare_and_swap(writes).await {
            Ok(CasOutcome::Committed(_)) => {
                answer(jobs, decisions, attempt);
                return Ok(());
            }
            Ok(CasOutcome::Conflict(current)) => {
                for (key, state) in current {
                    if let Some(i) = keys.iter().position(|k| *k == key) {
                        base[i] = state;
                    }
                }
            }
            Err(e) => return Err((jobs, e)),
        }
        if attempt < attempts
            && let Some(rt) = &settings.runtime
        {
            rt.sleep(settings.backoff.pause(attempt, jitter_seed()))
                .await;
        }
    }
    // Every attempt lost to other writers: a denial, not an outage.
    let now = core.clock.now();
    for (job, member) in jobs.into_iter().zip(&members) {
        let mut d = eval::contention(&core.rules, &base, member, now, Contention::RETRY_AFTER);
        d.attempts = attempts;
        let _ = job.answer.send(Ok(d));
    }
    Ok(())
}

fn answer(jobs: Vec<Job>, decisions: Vec<Decision>, attempt: u32) {
    for (job, d) in jobs.into_iter().zip(decisions) {
        // A caller that left no longer listens; its charge stands, as it
        // would have had it waited.
        let _ = job.answer.send(Ok(Decision {
            attempts: attempt,
            ..d
        }));
    }
}

/// Answers the jobs a store error concerns with it, and returns the others.
/// A corrupt record concerns only the jobs on its key: one bad record must
/// not fail every request coalesced with it. Any other failure concerns all.
fn fail(jobs: Vec<Job>, err: StoreError) -> Vec<Job> {
    let (concerned, rest): (Vec<Job>, Vec<Job>) = match &err {
        StoreError::Corrupt { key, .. } => jobs
            .into_iter()
            .partition(|j| j.keys.iter().any(|k| k.as_str() == key)),
        _ => (jobs, Vec::new()),
    };
    let (concerned, rest) = if concerned.is_empty() {
        (rest, Vec::new())
    } else {
        (concerned, rest)
    };
    let n = concerned.len();
    for (job, e) in concerned.into_iter().zip(fan_out(err, n)) {
        let _ = job.answer.send(Err(LimiterError::Store(e)));
    }
    rest
}
