//! Reservations in a pass (upload mode): what a decision does with the
//! user's reservations, inside the same compare-and-swap as its charge.
//!
//! * Before anything is judged, the user's pending reservations whose
//!   horizon (URL expiry plus grace) has passed are **released**: each
//!   charged limit hands back its cost through
//!   [`algorithm::release`](crate::algorithm::release), with the definition
//!   it was charged under and the exact time it was granted, and the
//!   reservation goes. Every job, admitted or denied, sees that view; an
//!   admitted job's write carries it, so a release is written exactly once
//!   (a denial writes nothing, and the next decision releases it again from
//!   the same stored state).
//! * An admitted grant is **recorded** as a pending reservation on the
//!   user's key, with the cost of each user limit it charged.
//! * A grant whose user already holds
//!   [`Reservation::MAX_PENDING`] pending reservations is **denied** (a
//!   [`Backlog`]) until the earliest is settled or released.
//! * A write **carries** the reservations that still matter: settled and
//!   rejected ones until their horizon, at most [`Reservation::MAX_DONE`].
//!
//! The settle step (`crate::settle`) writes the user's key through the
//! same rules ([`Limiter::settle_write`]).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::algorithm;
use crate::clock::{Clock, Timestamp};
use crate::domain::Subject;
use crate::reservation::{Reservation, ReservationStatus};
use crate::store::{KeyState, Store};

use super::Limiter;
use super::decision::Backlog;
use super::eval::{Ask, carry};
use super::rules::Rules;
use super::runtime::jitter_seed;

/// `state` with its due pending reservations released, or `None` if none
/// is due (or in grant mode): the view every decision on it sees.
pub(super) fn released(
    rules: &Rules,
    state: Option<&KeyState>,
    now: Timestamp,
) -> Option<KeyState> {
    let grace = rules.grace?;
    let state = state?;
    let due: Vec<[u8; 16]> = state
        .reservations
        .iter()
        .filter(|(_, r)| r.is_pending() && r.is_past(grace, now))
        .map(|(u, _)| *u)
        .collect();
    if due.is_empty() {
        return None;
    }
    let mut out = state.clone();
    for unique in due {
        let Some(r) = out.reservations.remove(&unique) else {
            continue;
        };
        for (name, cost) in &r.charged {
            let Some(held) = out.limits.get(name) else {
                // Nothing is held any more: nothing to hand back.
                continue;
            };
            let Some(limit) = rules.charged_under(r.tier.as_deref(), name, held) else {
                continue;
            };
            match algorithm::release(limit, Some(held), r.granted_at, *cost, now) {
                Some((state, _)) => out.limits.insert(name.clone(), state),
                None => out.limits.remove(name),
            };
        }
    }
    Some(out)
}

/// Records the reservation `ask` requests in the user's new state (`slot`:
/// the state and when it expires), granted at `now`.
pub(super) fn record(slot: &mut (KeyState, Timestamp), ask: &Ask, now: Timestamp, grace: Duration) {
    let Some(request) = &ask.reservation else {
        return;
    };
    let charged = ask
        .policy
        .limits()
        .iter()
        .filter(|l| l.subject == Subject::User)
        .map(|l| (l.name.as_str().to_owned(), l.amount.cost_of(ask.size)))
        .filter(|(_, cost)| *cost > 0)
        .collect();
    let reservation = Reservation {
        granted_at: now,
        expires_at: request.expires_at,
        size: ask.size,
        content_type: request.content_type.clone(),
        checksum: request.checksum,
        tier: ask.tier.clone(),
        charged,
        status: ReservationStatus::Pending,
    };
    slot.1 = slot.1.max(reservation.horizon(grace));
    slot.0.reservations.insert(request.unique, reservation);
}

/// A [`Backlog`] denial if `ask` requests a reservation and its user
/// (`user`: their state, released) already holds
/// [`Reservation::MAX_PENDING`] pending ones.
pub(super) fn backlog(
    rules: &Rules,
    ask: &Ask,
    user: Option<&KeyState>,
    now: Timestamp,
) -> Option<Backlog> {
    let grace = rules.grace?;
    ask.reservation.as_ref()?;
    let pending = user?.reservations.values().filter(|r| r.is_pending());
    let (count, earliest) = pending.fold((0, Timestamp(u64::MAX)), |(n, e), r| {
        (n + 1, e.min(r.horizon(grace)))
    });
    (count >= Reservation::MAX_PENDING).then(|| Backlog {
        // The latest it can take: that one is released then, if nothing
        // settles sooner.
        retry_after: Duration::from_millis(
            earliest.as_millis().saturating_sub(now.as_millis()).max(1),
        ),
    })
}

/// What a new state keeps of `current`'s reservations, and when it expires
/// at the earliest for them (`expire_at` raised). Grant mode keeps them as
/// they are (they were made in upload mode; nothing releases them now).
pub(super) fn carry_reservations(
    rules: &Rules,
    current: &BTreeMap<[u8; 16], Reservation>,
    now: Timestamp,
    expire_at: &mut Timestamp,
) -> BTreeMap<[u8; 16], Reservation> {
    let Some(grace) = rules.grace else {
        for r in current.values() {
            *expire_at = (*expire_at).max(r.expires_at);
        }
        return current.clone();
    };
    let mut kept: BTreeMap<[u8; 16], Reservation> = current
        .iter()
        .filter(|(_, r)| r.is_pending() || !r.is_past(grace, now))
        .map(|(u, r)| (*u, r.clone()))
        .collect();
    let mut done: Vec<([u8; 16], Timestamp)> = kept
        .iter()
        .filter(|(_, r)| !r.is_pending())
        .map(|(u, r)| (*u, r.expires_at))
        .collect();
    if done.len() > Reservation::MAX_DONE {
        // The ones whose URLs expired first go first.
        done.sort_by_key(|&(u, e)| (e, u));
        for (u, _) in &done[..done.len() - Reservation::MAX_DONE] {
            kept.remove(u);
        }
    }
    for r in kept.values() {
        *expire_at = (*expire_at).max(r.horizon(grace));
    }
    kept
}

impl<S: Store, C: Clock> Limiter<S, C> {
    /// The state the settle step writes for a user whose state it changed to
    /// `state`, and when it expires: due reservations released, everything
    /// else carried as a decision would carry it.
    pub(crate) fn settle_write(&self, state: KeyState, now: Timestamp) -> (KeyState, Timestamp) {
        let rules = &self.core.rules;
        let state = released(rules, Some(&state), now).unwrap_or(state);
        carry(Some(&state), &[], rules, now)
    }

    /// Pauses after the settle step's `conflicts`th lost compare-and-swap in
    /// a row, as a batch would (no pause without a runtime).
    pub(crate) async fn pause_after_conflict(&self, conflicts: u32) {
        if let Some(rt) = &self.settings.runtime {
            let pause = self.settings.backoff.pause(conflicts, jitter_seed());
            rt.sleep(pause).await;
        }
    }

    /// Charges an upload of `size` bytes to the user limits of the default
    /// policy at `now`, past them if need be (a late settle: the tier it was
    /// granted under is no longer known).
    pub(crate) fn force_user(&self, state: &mut KeyState, size: u64, now: Timestamp) {
        for limit in self.core.policy.limits() {
            if limit.subject != Subject::User {
                continue;
            }
            let name = limit.name.as_str();
            let cost = limit.amount.cost_of(size);
            match algorithm::force(limit, state.limits.get(name), now, cost) {
                Some((s, _)) => state.limits.insert(name.to_owned(), s),
                None => state.limits.remove(name),
            };
        }
    }
}
