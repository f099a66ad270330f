//! The pure part of deciding a batch: the policy's algorithms applied to
//! one view of the batch's keys, job after job in arrival order.
//!
//! An admitted job's new states are what the next job sees; a denied job
//! changes nothing. The pass ends with one answer per job and the writes
//! of the keys that admitted jobs changed, all conditioned on the versions
//! of the view, so the whole batch commits in one compare-and-swap or not
//! at all. No I/O here: the driver (module `drive`) feeds views in and
//! carries writes out.

use std::time::Duration;

use crate::algorithm::{Outcome, evaluate as run_limit};
use crate::clock::Timestamp;
use crate::domain::StateKey;
use crate::policy::Policy;
use crate::store::{KeyState, Versioned, Write};

use super::decision::{Decision, LimitStatus};

/// A job as a pass sees it: its keys as positions in the batch's keys, in
/// the order of the policy's subjects, and the upload's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Member {
    pub(super) keys: Vec<usize>,
    pub(super) size: u64,
}

/// The result of a pass.
#[derive(Debug)]
pub(super) enum Pass {
    /// A job was denied by limits whose keys the store has not vouched for
    /// yet (the view may come from a cache): confirm these keys (positions
    /// in the batch's keys) and run the pass again.
    Confirm(Vec<usize>),
    /// Every job has its answer (`attempts` still 0); `writes` commits the
    /// admitted ones (empty if none was admitted).
    Decided {
        decisions: Vec<Decision>,
        writes: Vec<Write>,
    },
}

/// Applies `members`, in order, to the view `base` of `keys`. `confirmed`
/// says, per key, whether a denial on it may stand without asking the store.
pub(super) fn pass(
    policy: &Policy,
    keys: &[StateKey],
    base: &[Option<Versioned>],
    confirmed: &[bool],
    members: &[Member],
    now: Timestamp,
) -> Pass {
    // Per key: the state the admitted jobs so far leave, if any changed it.
    let mut work: Vec<Option<(KeyState, Timestamp)>> = vec![None; keys.len()];
    let mut decisions = Vec::with_capacity(members.len());
    for m in members {
        let current: Vec<Option<&KeyState>> = m
            .keys
            .iter()
            .map(|&i| match &work[i] {
                Some((state, _)) => Some(state),
                None => base[i].as_ref().map(|v| &v.state),
            })
            .collect();
        let (decision, states) = evaluate(policy, &current, now, Some(m.size));
        if decision.allowed {
            for (&i, state) in m.keys.iter().zip(states) {
                work[i] = Some(state);
            }
            decisions.push(decision);
            continue;
        }
        let subjects = policy.subjects();
        let mut unconfirmed: Vec<usize> = decision
            .violated()
            .filter_map(|l| subjects.iter().position(|s| *s == l.limit.subject))
            .filter_map(|p| m.keys.get(p).copied())
            .filter(|&i| !confirmed[i])
            .collect();
        if !unconfirmed.is_empty() {
            unconfirmed.sort_unstable();
            unconfirmed.dedup();
            return Pass::Confirm(unconfirmed);
        }
        decisions.push(denial(policy, &current, now, &decision));
    }
    let writes = work
        .into_iter()
        .enumerate()
        .filter_map(|(i, w)| {
            w.map(|(state, expire_at)| Write {
                key: keys[i].clone(),
                expected: base[i].as_ref().map(|v| v.version),
                state,
                expire_at,
            })
        })
        .collect();
    Pass::Decided { decisions, writes }
}

/// What a denied request is told: what is left without its cost, and when
/// each limit that denied it would admit it.
pub(super) fn denial(
    policy: &Policy,
    current: &[Option<&KeyState>],
    now: Timestamp,
    denied: &Decision,
) -> Decision {
    let (mut report, _) = evaluate(policy, current, now, None);
    for (r, d) in report.limits.iter_mut().zip(&denied.limits) {
        r.retry_after = d.retry_after;
    }
    report.allowed = false;
    report
}

/// Runs every limit for an upload of `size` bytes (`None`: a read that
/// charges nothing) on `current`, one state per subject of the policy, in
/// its order; returns the decision and, per subject, the new state and when
/// it expires.
pub(super) fn evaluate(
    policy: &Policy,
    current: &[Option<&KeyState>],
    now: Timestamp,
    size: Option<u64>,
) -> (Decision, Vec<(KeyState, Timestamp)>) {
    let subjects = policy.subjects();
    let mut states: Vec<(KeyState, Timestamp)> = vec![(KeyState::default(), now); current.len()];
    let mut limits = Vec::with_capacity(policy.limits().len());
    let mut allowed = true;
    for limit in policy.limits() {
        // `current` follows `subjects()`, so every limit has its state.
        let i = subjects
            .iter()
            .position(|s| *s == limit.subject)
            .unwrap_or(0);
        let prev = current
            .get(i)
            .copied()
            .flatten()
            .and_then(|s| s.limits.get(limit.name.as_str()));
        let cost = size.map_or(0, |s| limit.amount.cost_of(s));
        let (o, state): (Outcome, _) = run_limit(limit, prev, now, cost);
        allowed &= o.allowed;
        if let (Some((state, expires)), Some(slot)) = (state, states.get_mut(i)) {
            slot.1 = slot.1.max(expires);
            slot.0.limits.insert(limit.name.as_str().to_owned(), state);
        }
        limits.push(LimitStatus {
            limit: limit.clone(),
            remaining: o.remaining,
            reset_after: Duration::from_millis(o.reset_after_ms),
            retry_after: (!o.allowed).then(|| Duration::from_millis(o.retry_after_ms)),
        });
    }
    (
        Decision {
            allowed,
            limits,
            attempts: 0,
            contention: None,
        },
        states,
    )
}

/// What a job is told when its batch gave up on contention: what is left on
/// the last authoritative view, without its cost (it was not charged).
pub(super) fn contention(
    policy: &Policy,
    base: &[Option<Versioned>],
    member: &Member,
    now: Timestamp,
    retry_after: Duration,
) -> Decision {
    let current: Vec<Option<&KeyState>> = member
        .keys
        .iter()
        .map(|&i| base[i].as_ref().map(|v| &v.state))
        .collect();
    let (mut report, _) = evaluate(policy, &current, now, None);
    report.allowed = false;
    report.contention = Some(super::decision::Contention { retry_after });
    report
}
