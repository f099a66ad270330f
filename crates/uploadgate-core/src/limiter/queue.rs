//! Which requests share a batch: the limiter's registry of busy keys and
//! waiting requests.
//!
//! A request whose keys are idle (no batch in flight on them, nobody
//! waiting for them) leads a batch of its own at once, so a lone request
//! costs what it always did. Otherwise it waits. When a batch ends, the
//! waiting requests are scanned in arrival order and grouped: requests that
//! share a key, directly or through others, go into one batch, up to
//! [`MAX_BATCH_KEYS`] keys (a DynamoDB transaction takes at most 100
//! items); requests whose keys are still busy, or held by an earlier
//! request that must wait, keep waiting, so every key sees its requests in
//! arrival order. A waiting request whose caller has gone is dropped here,
//! never charged.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use futures_channel::oneshot;

use crate::domain::StateKey;

use super::decision::{Decision, LimiterError};
use super::eval::Ask;

/// Most keys one batch writes: the item limit of a DynamoDB transaction.
pub const MAX_BATCH_KEYS: usize = 100;

/// What a request is finally told.
pub(super) type Answer = Result<Decision, LimiterError>;

/// One request, in or on its way to a batch.
#[derive(Debug)]
pub(super) struct Job {
    /// Arrival order.
    pub(super) seq: u64,
    /// Its keys, in the order of the policy's subjects.
    pub(super) keys: Vec<StateKey>,
    /// What it asks.
    pub(super) ask: Ask,
    /// Where its answer goes.
    pub(super) answer: oneshot::Sender<Answer>,
}

impl Job {
    /// Whether its caller stopped waiting (its future was dropped).
    pub(super) fn abandoned(&self) -> bool {
        self.answer.is_canceled()
    }
}

/// A job waiting for its keys, and where to send the batch it joins.
#[derive(Debug)]
pub(super) struct Waiting<B> {
    pub(super) job: Job,
    pub(super) assign: oneshot::Sender<B>,
}

/// How a request enters the limiter.
#[derive(Debug)]
pub(super) enum Arrival<B> {
    /// Its keys were idle and are now its own: it runs a batch of one.
    Lead(Job),
    /// It waits; its batch (handle `B`) will come through here.
    Wait(oneshot::Receiver<B>),
}

/// The registry. `B` is the handle of a running batch.
#[derive(Debug)]
pub(super) struct Queue<B> {
    state: Mutex<State<B>>,
}

#[derive(Debug)]
struct State<B> {
    /// Keys of the batches in flight.
    busy: HashSet<StateKey>,
    /// Per key, how many waiting jobs have it.
    wanted: HashMap<StateKey, usize>,
    /// Waiting jobs, in arrival order.
    waiting: VecDeque<Waiting<B>>,
    next_seq: u64,
}

/// A batch being formed during a scan.
struct Forming<B> {
    jobs: Vec<Waiting<B>>,
    keys: HashSet<StateKey>,
}

impl<B> Default for Queue<B> {
    fn default() -> Self {
        Queue {
            state: Mutex::new(State {
                busy: HashSet::new(),
                wanted: HashMap::new(),
                waiting: VecDeque::new(),
                next_seq: 0,
            }),
        }
    }
}

impl<B> Queue<B> {
    fn lock(&self) -> MutexGuard<'_, State<B>> {
        // Every critical section leaves the sets consistent before anything
        // that could panic, so a poisoned registry is still valid.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a request. Returns how it proceeds and where its answer
    /// will come.
    pub(super) fn arrive(
        &self,
        keys: Vec<StateKey>,
        ask: Ask,
    ) -> (Arrival<B>, oneshot::Receiver<Answer>) {
        let (answer, answered) = oneshot::channel();
        let mut st = self.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        let job = Job {
            seq,
            keys,
            ask,
            answer,
        };
        let idle = job
            .keys
            .iter()
            .all(|k| !st.busy.contains(k) && !st.wanted.contains_key(k));
        if idle {
            st.busy.extend(job.keys.iter().cloned());
            return (Arrival::Lead(job), answered);
        }
        for k in &job.keys {
            *st.wanted.entry(k.clone()).or_default() += 1;
        }
        let (assign, assigned) = oneshot::channel();
        st.waiting.push_back(Waiting { job, assign });
        (Arrival::Wait(assigned), answered)
    }

    /// Frees the keys of a batch that ended and forms the next batches from
    /// the waiting jobs (their keys are busy when this returns). Each batch
    /// lists its jobs in arrival order.
    pub(super) fn release(&self, keys: &[StateKey]) -> Vec<Vec<Waiting<B>>> {
        let mut st = self.lock();
        for k in keys {
            st.busy.remove(k);
        }
        st.form()
    }

    /// Jobs waiting (for tests).
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }
}

impl<B> State<B> {
    fn unwant(&mut self, keys: &[StateKey]) {
        for k in keys {
            if let Some(n) = self.wanted.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    self.wanted.remove(k);
                }
            }
        }
    }

    fn form(&mut self) -> Vec<Vec<Waiting<B>>> {
        let mut forming: Vec<Forming<B>> = Vec::new();
        // Key -> the forming batch that holds it.
        let mut owner: HashMap<StateKey, usize> = HashMap::new();
        // Keys of jobs that keep waiting: later jobs on them wait too.
        let mut held: HashSet<StateKey> = HashSet::new();
        let mut keep = VecDeque::new();
        for w in std::mem::take(&mut self.waiting) {
            if w.job.abandoned() {
                self.unwant(&w.job.keys);
                continue;
            }
            let keys = &w.job.keys;
            if keys
                .iter()
                .any(|k| self.busy.contains(k) || held.contains(k))
            {
                held.extend(keys.iter().cloned());
                keep.push_back(w);
                continue;
            }
            let mut joined: Vec<usize> =
                keys.iter().filter_map(|k| owner.get(k).copied()).collect();
            joined.sort_unstable();
            joined.dedup();
            let fresh = keys.iter().filter(|k| !owner.contains_key(*k)).count();
            let total = fresh + joined.iter().map(|&b| forming[b].keys.len()).sum::<usize>();
            if total > MAX_BATCH_KEYS {
                held.extend(keys.iter().cloned());
                keep.push_back(w);
                continue;
            }
            let target = match joined.first() {
                Some(&t) => t,
                None => {
                    forming.push(Forming {
                        jobs: Vec::new(),
                        keys: HashSet::new(),
                    });
                    forming.len() - 1
                }
            };
            for &other in joined.iter().skip(1) {
                let moved = std::mem::take(&mut forming[other].jobs);
                let moved_keys = std::mem::take(&mut forming[other].keys);
                for k in &moved_keys {
                    owner.insert(k.clone(), target);
                }
                forming[target].jobs.extend(moved);
                forming[target].keys.extend(moved_keys);
            }
            for k in keys {
                owner.insert(k.clone(), target);
                forming[target].keys.insert(k.clone());
            }
            forming[target].jobs.push(w);
        }
        self.waiting = keep;
        let mut batches = Vec::new();
        for mut f in forming.into_iter().filter(|f| !f.jobs.is_empty()) {
            f.jobs.sort_by_key(|w| w.job.seq);
            for w in &f.jobs {
                self.unwant(&w.job.keys);
            }
            self.busy.extend(f.keys);
            batches.push(f.jobs);
        }
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UserId;

    fn user(u: &str) -> StateKey {
        StateKey::user(&UserId::parse(u).unwrap())
    }

    fn ip(n: u8) -> StateKey {
        StateKey::ip(std::net::IpAddr::from([10, 0, 0, n]))
    }

    type Q = Queue<()>;

    /// Arrives and keeps the receivers alive (the caller is waiting).
    fn ask() -> Ask {
        Ask {
            size: 1,
            policy: std::sync::Arc::new("u=user:1/1h".parse().expect("a policy")),
            grant: None,
            user: None,
            reservation: None,
            tier: None,
        }
    }

    fn arrive(q: &Q, keys: &[StateKey], held: &mut Vec<Box<dyn std::any::Any>>) -> bool {
        let (arrival, answer) = q.arrive(keys.to_vec(), ask());
        held.push(Box::new(answer));
        match arrival {
            Arrival::Lead(job) => {
                held.push(Box::new(job));
                true
            }
            Arrival::Wait(rx) => {
                held.push(Box::new(rx));
                false
            }
        }
    }

    fn seqs(batches: &[Vec<Waiting<()>>]) -> Vec<Vec<u64>> {
        batches
            .iter()
            .map(|b| b.iter().map(|w| w.job.seq).collect())
            .collect()
    }

    #[test]
    fn idle_keys_lead_at_once_and_busy_ones_wait() {
        let q = Q::default();
        let mut h = vec![];
        assert!(arrive(&q, &[user("a"), ip(1)], &mut h));
        assert!(arrive(&q, &[user("b"), ip(2)], &mut h), "disjoint keys");
        assert!(!arrive(&q, &[user("c"), ip(1)], &mut h), "ip 1 is busy");
        // user c is wanted by a waiting job: a later request on it waits
        // behind it, though its own keys are not busy.
        assert!(!arrive(&q, &[user("c"), ip(3)], &mut h));
        assert_eq!(q.waiting(), 2);
        assert_eq!(
            seqs(&q.release(&[user("b"), ip(2)])),
            Vec::<Vec<u64>>::new()
        );
        // Releasing ip 1 frees seq 2, which shares user c with seq 3.
        assert_eq!(seqs(&q.release(&[user("a"), ip(1)])), [vec![2, 3]]);
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn jobs_sharing_keys_transitively_form_one_batch_in_arrival_order() {
        let q = Q::default();
        let mut h = vec![];
        assert!(arrive(&q, &[user("x"), ip(1)], &mut h));
        assert!(arrive(&q, &[user("y"), ip(2)], &mut h));
        // 2, 3: ip 1; 4: ip 2; 5 joins 3 (user b) and 4 (user d); 6 alone.
        assert!(!arrive(&q, &[user("a"), ip(1)], &mut h));
        assert!(!arrive(&q, &[user("b"), ip(1)], &mut h));
        assert!(!arrive(&q, &[user("d"), ip(2)], &mut h));
        assert!(!arrive(&q, &[user("b"), ip(2)], &mut h));
        assert!(arrive(&q, &[user("e"), ip(9)], &mut h));
        let mut busy = q.release(&[user("x"), ip(1)]);
        // ip 2 is still busy: 4 and 5 wait, and 5 holds user b, so 3 may go
        // only because it came before 5.
        assert_eq!(seqs(&busy), [vec![2, 3]]);
        busy.extend(q.release(&[user("y"), ip(2)]));
        assert_eq!(seqs(&busy[1..]), [vec![4]]);
        // 5 needs user b (batch [2, 3]) and ip 2 (batch [4]).
        assert_eq!(q.waiting(), 1);
        assert_eq!(
            seqs(&q.release(&[user("a"), user("b"), ip(1)])),
            Vec::<Vec<u64>>::new()
        );
        assert_eq!(seqs(&q.release(&[user("d"), ip(2)])), [vec![5]]);
    }

    #[test]
    fn separate_groups_become_separate_batches_and_merge_when_bridged() {
        let q = Q::default();
        let mut h = vec![];
        assert!(arrive(&q, &[ip(1), ip(2), ip(3)], &mut h));
        assert!(!arrive(&q, &[user("a"), ip(1)], &mut h)); // 1
        assert!(!arrive(&q, &[user("b"), ip(2)], &mut h)); // 2
        assert!(!arrive(&q, &[user("c"), ip(3)], &mut h)); // 3
        assert!(!arrive(&q, &[user("b"), ip(3)], &mut h)); // 4 bridges 2 and 3
        assert_eq!(
            seqs(&q.release(&[ip(1), ip(2), ip(3)])),
            [vec![1], vec![2, 3, 4]]
        );
    }

    #[test]
    fn a_batch_holds_at_most_a_hundred_keys() {
        let q = Q::default();
        let mut h = vec![];
        assert!(arrive(&q, &[ip(1)], &mut h));
        for i in 0..150 {
            assert!(!arrive(&q, &[user(&format!("u{i}")), ip(1)], &mut h));
        }
        let batches = q.release(&[ip(1)]);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].len(), MAX_BATCH_KEYS - 1, "99 users and the ip");
        assert_eq!(batches[0].last().map(|w| w.job.seq), Some(99));
        assert_eq!(q.waiting(), 51);
        let keys: Vec<StateKey> = batches[0].iter().flat_map(|w| w.job.keys.clone()).collect();
        let next = q.release(&keys);
        assert_eq!(next[0].len(), 51);
        assert_eq!(next[0][0].job.seq, 100);
    }

    #[test]
    fn a_waiting_job_whose_caller_left_is_dropped_uncharged() {
        let q = Q::default();
        let mut h = vec![];
        assert!(arrive(&q, &[ip(1)], &mut h));
        let (gone, gone_answer) = q.arrive(vec![user("gone"), ip(1)], ask());
        drop((gone, gone_answer));
        assert!(!arrive(&q, &[user("stays"), ip(1)], &mut h));
        let batches = q.release(&[ip(1)]);
        assert_eq!(seqs(&batches), [vec![2]]);
        // The dropped job no longer holds its user key.
        assert!(arrive(&q, &[user("gone")], &mut h));
    }
}
