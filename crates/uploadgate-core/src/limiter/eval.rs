//! The pure part of deciding a batch: each job's policy applied to one view
//! of the batch's keys, job after job in arrival order.
//!
//! An admitted job's new states are what the next job sees; a denied job
//! changes nothing. The pass ends with one answer per job and the writes
//! of the keys that admitted jobs changed, all conditioned on the versions
//! of the view, so the whole batch commits in one compare-and-swap or not
//! at all. No I/O here: the driver (module `drive`) feeds views in and
//! carries writes out.
//!
//! A key's state may hold more than the job's policy knows: limits of other
//! quota tiers (a user who changed tier keeps what they used) and grants
//! made under idempotency keys, and (in upload mode) reservations. A write
//! carries them over: a foreign limit is brought up to date by its own
//! definition (from any policy the limiter knows), and dropped once it
//! holds nothing; expired grants are dropped; reservations follow module
//! `reserve`, which also releases due ones in the view every job sees.

use std::sync::Arc;
use std::time::Duration;

use crate::algorithm::{Outcome, evaluate as run_limit};
use crate::clock::Timestamp;
use crate::domain::StateKey;
use crate::policy::Policy;
use crate::reservation::ReservationRequest;
use crate::store::{Grant, KeyState, Versioned, Write};

use super::decision::{Decision, GrantOutcome, GrantRequest, LimitStatus};
use super::reserve;
use super::rules::Rules;

/// What a job asks: its size, the policy it is judged by, and the grant to
/// record, with the position (among the job's keys) of the key that keeps
/// it. In upload mode, also the position of the user's key (whose due
/// reservations every decision releases) and the reservation to record
/// there, with the tier it is charged under.
#[derive(Clone, Debug)]
pub(super) struct Ask {
    pub(super) size: u64,
    pub(super) policy: Arc<Policy>,
    pub(super) grant: Option<(GrantRequest, usize)>,
    pub(super) user: Option<usize>,
    pub(super) reservation: Option<Box<ReservationRequest>>,
    pub(super) tier: Option<String>,
}

/// A job as a pass sees it: its keys as positions in the batch's keys (the
/// policy's subjects in order, then the grant's holder if it is not one of
/// them), and what it asks.
#[derive(Clone, Debug)]
pub(super) struct Member {
    pub(super) keys: Vec<usize>,
    pub(super) ask: Ask,
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
    rules: &Rules,
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
        let mut current: Vec<Option<&KeyState>> = m
            .keys
            .iter()
            .map(|&i| match &work[i] {
                Some((state, _)) => Some(state),
                None => base[i].as_ref().map(|v| &v.state),
            })
            .collect();
        let released = released(rules, m.ask.user, &current, now);
        if let (Some(state), Some(u)) = (&released, m.ask.user) {
            current[u] = Some(state);
        }
        let policy = &m.ask.policy;
        if let Some(answer) = earlier_grant(m, &current, now) {
            decisions.push(answer);
            continue;
        }
        let (mut decision, mut states) = evaluate(policy, rules, &current, now, Some(m.ask.size));
        let user = m.ask.user.and_then(|u| current.get(u).copied().flatten());
        if decision.allowed
            && let Some(backlog) = reserve::backlog(rules, &m.ask, user, now)
        {
            // Full of pending reservations: denied like a limit, on a view
            // the store must vouch for (settling elsewhere empties it).
            if let Some(i) = m.ask.user.and_then(|u| m.keys.get(u).copied())
                && !confirmed[i]
            {
                return Pass::Confirm(vec![i]);
            }
            let mut d = denial(policy, rules, &current, now, &decision);
            d.backlog = Some(backlog);
            decisions.push(d);
            continue;
        }
        if decision.allowed {
            if let Some((request, at)) = &m.ask.grant
                && let Some(slot) = states.get_mut(*at)
            {
                record(slot, request, &decision, now);
                decision.grant = Some(GrantOutcome::Granted);
            }
            if let (Some(grace), Some(u)) = (rules.grace, m.ask.user)
                && let Some(slot) = states.get_mut(u)
            {
                reserve::record(slot, &m.ask, now, grace);
            }
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
        decisions.push(denial(policy, rules, &current, now, &decision));
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

/// The answer to a job whose idempotency key already holds a live grant:
/// the original answer for the same request, a refusal for another one.
/// Either way nothing is charged and nothing is written.
fn earlier_grant(m: &Member, current: &[Option<&KeyState>], now: Timestamp) -> Option<Decision> {
    let (request, at) = m.ask.grant.as_ref()?;
    let grant = current
        .get(*at)
        .copied()
        .flatten()?
        .grants
        .get(&request.key)
        .filter(|g| g.expires_at > now)?;
    let policy = &m.ask.policy;
    // The limits as they were reported then (the policy may have changed
    // since; then as they are now).
    let (mut d, _) = evaluate(policy, &Rules::default(), current, now, None);
    if grant.limits.len() == d.limits.len() {
        for (l, &(remaining, reset_at)) in d.limits.iter_mut().zip(&grant.limits) {
            l.remaining = remaining;
            l.reset_after = Duration::from_millis(reset_at.saturating_sub(now.as_millis()));
        }
    }
    if grant.fingerprint == request.fingerprint {
        d.grant = Some(GrantOutcome::Replayed {
            unique: grant.unique,
        });
    } else {
        d.allowed = false;
        d.grant = Some(GrantOutcome::Mismatch);
    }
    Some(d)
}

/// Records `request`'s grant in a key's new state: expired grants go, and
/// past [`Grant::MAX_PER_KEY`] the ones that expire first.
fn record(
    slot: &mut (KeyState, Timestamp),
    request: &GrantRequest,
    decision: &Decision,
    now: Timestamp,
) {
    let (state, expire_at) = slot;
    let reset_at = |l: &LimitStatus| {
        now.as_millis()
            .saturating_add(u64::try_from(l.reset_after.as_millis()).unwrap_or(u64::MAX))
    };
    state.grants.insert(
        request.key.clone(),
        Grant {
            unique: request.unique,
            fingerprint: request.fingerprint,
            expires_at: request.expires_at,
            limits: decision
                .limits
                .iter()
                .map(|l| (l.remaining, reset_at(l)))
                .collect(),
        },
    );
    while state.grants.len() > Grant::MAX_PER_KEY {
        let oldest = state
            .grants
            .iter()
            .min_by_key(|(_, g)| g.expires_at)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => state.grants.remove(&k),
            None => break,
        };
    }
    *expire_at = (*expire_at).max(request.expires_at);
}

/// What a denied request is told: what is left without its cost, and when
/// each limit that denied it would admit it.
pub(super) fn denial(
    policy: &Policy,
    rules: &Rules,
    current: &[Option<&KeyState>],
    now: Timestamp,
    denied: &Decision,
) -> Decision {
    let (mut report, _) = evaluate(policy, rules, current, now, None);
    for (r, d) in report.limits.iter_mut().zip(&denied.limits) {
        r.retry_after = d.retry_after;
    }
    report.allowed = false;
    report
}

/// Runs every limit of `policy` for an upload of `size` bytes (`None`: a
/// read that charges nothing) on `current`: one state per subject of the
/// policy, in its order, then any extra key (a grant's holder). Returns
/// the decision and, per key, its new state and when it expires: what the
/// policy counts, plus what it carries over (see the module docs).
pub(super) fn evaluate(
    policy: &Policy,
    rules: &Rules,
    current: &[Option<&KeyState>],
    now: Timestamp,
    size: Option<u64>,
) -> (Decision, Vec<(KeyState, Timestamp)>) {
    let subjects = policy.subjects();
    let mut states: Vec<(KeyState, Timestamp)> = current
        .iter()
        .enumerate()
        .map(|(i, cur)| {
            let own: Vec<&str> = subjects
                .get(i)
                .map(|s| {
                    policy
                        .limits()
                        .iter()
                        .filter(|l| l.subject == *s)
                        .map(|l| l.name.as_str())
                        .collect()
                })
                .unwrap_or_default();
            carry(*cur, &own, rules, now)
        })
        .collect();
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
            grant: None,
            backlog: None,
        },
        states,
    )
}

/// What a key's new state keeps of the current one besides the limits
/// `own` (which the policy writes itself): other policies' limits, brought
/// up to date by their definitions and dropped when empty or unknown, the
/// grants that have not expired, and the reservations that still matter.
/// Starts the key's expiry at `now`.
pub(super) fn carry(
    current: Option<&KeyState>,
    own: &[&str],
    rules: &Rules,
    now: Timestamp,
) -> (KeyState, Timestamp) {
    let mut state = KeyState::default();
    let mut expire_at = now;
    let Some(current) = current else {
        return (state, expire_at);
    };
    for (name, held) in &current.limits {
        if own.contains(&name.as_str()) {
            continue;
        }
        // The longest-lived reading among the definitions of this name
        // (another algorithm's definition reads the state as empty).
        let kept = rules
            .definitions(name)
            .iter()
            .filter_map(|limit| run_limit(limit, Some(held), now, 0).1)
            .max_by_key(|(_, expires)| *expires);
        if let Some((state_now, expires)) = kept {
            expire_at = expire_at.max(expires);
            state.limits.insert(name.clone(), state_now);
        }
    }
    for (key, grant) in &current.grants {
        if grant.expires_at > now {
            expire_at = expire_at.max(grant.expires_at);
            state.grants.insert(key.clone(), grant.clone());
        }
    }
    state.reservations =
        reserve::carry_reservations(rules, &current.reservations, now, &mut expire_at);
    (state, expire_at)
}

/// What a job is told when its batch gave up on contention: what is left on
/// the last authoritative view, without its cost (it was not charged).
pub(super) fn contention(
    rules: &Rules,
    base: &[Option<Versioned>],
    member: &Member,
    now: Timestamp,
    retry_after: Duration,
) -> Decision {
    let mut current: Vec<Option<&KeyState>> = member
        .keys
        .iter()
        .map(|&i| base[i].as_ref().map(|v| &v.state))
        .collect();
    let released = released(rules, member.ask.user, &current, now);
    if let (Some(state), Some(u)) = (&released, member.ask.user) {
        current[u] = Some(state);
    }
    let (mut report, _) = evaluate(&member.ask.policy, rules, &current, now, None);
    report.allowed = false;
    report.contention = Some(super::decision::Contention { retry_after });
    report
}

/// The user's state (at position `user` of `current`) with its due
/// reservations released, if any are due: what the job must see there.
pub(super) fn released(
    rules: &Rules,
    user: Option<usize>,
    current: &[Option<&KeyState>],
    now: Timestamp,
) -> Option<KeyState> {
    let state = current.get(user?).copied().flatten();
    reserve::released(rules, state, now)
}
