//! The settle step: one landed object against its user's reservations, in
//! the order `docs/design/settlement.md` fixes (ledger, hand-off, then the
//! compare-and-swap), so that a crash anywhere is retried by the event
//! source and loses nothing.

use std::time::Duration;

use crate::clock::{Clock, Timestamp};
use crate::domain::{StateKey, UserId};
use crate::limiter::{Limiter, LimiterError};
use crate::reservation::{Reservation, ReservationStatus};
use crate::store::{CasOutcome, KeyState, Store, Write};
use crate::usage::{Appended, Ledger, UsageQuery, UsageRecord};

use super::{
    Accepted, HandOff, Landed, Quarantine, QuarantineReason, Settle, SettleError, Verdict, key,
};

/// Settles landed objects against the reservations a [`Limiter`] in upload
/// mode made: records each accepted upload in the [`Ledger`], hands it off,
/// and marks its reservation settled; quarantines what does not match.
///
/// It reads and writes the user's key on the limiter's store directly (one
/// read, one conditional write per object), with the limiter's rules: the
/// same grace, the same limit definitions, due reservations released in
/// the same write.
pub struct Settler<S, C, L, H, Q> {
    limiter: Limiter<S, C>,
    ledger: L,
    hand_off: H,
    quarantine: Q,
    prefix: String,
    url_ttl: Duration,
    grace: Duration,
}

/// A [`Settler`] was asked of a limiter in grant mode, where nothing is
/// reserved and every object would be quarantined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("settling needs the limiter in upload mode (Limiter::with_settlement)")]
pub struct NotUploadMode;

/// What one look at the user's state says to do.
enum Plan {
    /// Pending, and the object matches: record, hand off, mark settled.
    Settle(Reservation),
    /// Pending, and the object does not match: quarantine, mark rejected.
    Mismatch(QuarantineReason),
    /// Settled or rejected already.
    Duplicate,
    /// Gone (released, or forgotten after settling), and the object could
    /// have come through its URL: charge it anyway.
    Late(Timestamp),
    /// No reservation, and it cannot be a late one.
    Unknown,
}

/// What this call has done already, so a retry after a conflict does not
/// do it twice.
#[derive(Default)]
struct Done {
    appended: bool,
    handed_off: bool,
    quarantined: bool,
}

impl<S: Store, C: Clock, L: Ledger, H: HandOff, Q: Quarantine> Settler<S, C, L, H, Q> {
    /// A settler for objects under `prefix` (the gate's key prefix), whose
    /// URLs lived `url_ttl`, on the store, clock and rules of `limiter`
    /// (which must be in upload mode: its grace is the settler's).
    pub fn new(
        limiter: Limiter<S, C>,
        ledger: L,
        hand_off: H,
        quarantine: Q,
        prefix: impl Into<String>,
        url_ttl: Duration,
    ) -> Result<Self, NotUploadMode> {
        let grace = limiter.settlement().ok_or(NotUploadMode)?;
        Ok(Settler {
            limiter,
            ledger,
            hand_off,
            quarantine,
            prefix: prefix.into(),
            url_ttl,
            grace,
        })
    }

    /// The ledger.
    pub fn ledger(&self) -> &L {
        &self.ledger
    }

    async fn run(&self, landed: &Landed) -> Result<Verdict, SettleError> {
        let Some((user, unique)) = key::parse(&self.prefix, &landed.key) else {
            return self.quarantined(landed, QuarantineReason::ForeignKey).await;
        };
        let key = StateKey::user(&user);
        let store = self.limiter.store();
        let loaded = store.load(std::slice::from_ref(&key)).await;
        let mut current = loaded.map_err(LimiterError::from)?.pop().flatten();
        let mut done = Done::default();
        let attempts = self.limiter.backoff().attempts();
        for attempt in 1..=attempts {
            let now = self.limiter.clock().now();
            let state = current.as_ref().map(|v| &v.state);
            let (next, verdict) = match self.plan(state, unique, landed, now) {
                Plan::Duplicate => return Ok(Verdict::Duplicate),
                Plan::Unknown => return self.unknown(landed, &user).await,
                Plan::Settle(r) => {
                    let record = usage(&user, landed, &r.content_type, r.tier.clone());
                    let accepted = Accepted {
                        bucket: landed.bucket.clone(),
                        key: landed.key.clone(),
                        user: user.clone(),
                        size: landed.size,
                        content_type: r.content_type.clone(),
                        checksum_sha256: r.checksum,
                        granted_at: r.granted_at,
                        settled_at: now,
                        tier: r.tier.clone(),
                        late: false,
                    };
                    // A record already there is this event's, appended by a
                    // delivery that failed later: go on from there.
                    if !done.appended {
                        self.record(&mut done, &record).await?;
                    }
                    self.hand_off(&mut done, &accepted).await?;
                    let next = with_status(state, unique, ReservationStatus::Settled);
                    (next, Verdict::Accepted { late: false })
                }
                Plan::Mismatch(reason) => {
                    if !done.quarantined {
                        let q = &self.quarantine;
                        q.quarantine(&landed.bucket, &landed.key, &reason).await?;
                        done.quarantined = true;
                    }
                    let next = with_status(state, unique, ReservationStatus::Rejected);
                    (next, Verdict::Quarantined(reason))
                }
                Plan::Late(granted_at) => {
                    let content_type = landed.content_type.clone().unwrap_or_default();
                    let record = usage(&user, landed, &content_type, None);
                    if !done.appended
                        && self.record(&mut done, &record).await? == Appended::Duplicate
                    {
                        // Handled before: the ledger is what remembers it.
                        return Ok(Verdict::Duplicate);
                    }
                    let accepted = Accepted {
                        bucket: landed.bucket.clone(),
                        key: landed.key.clone(),
                        user: user.clone(),
                        size: landed.size,
                        content_type,
                        checksum_sha256: landed.checksum_sha256,
                        granted_at,
                        settled_at: now,
                        tier: None,
                        late: true,
                    };
                    self.hand_off(&mut done, &accepted).await?;
                    let mut next = state.cloned().unwrap_or_default();
                    self.limiter.force_user(&mut next, landed.size, now);
                    (next, Verdict::Accepted { late: true })
                }
            };
            let (state, expire_at) = self.limiter.settle_write(next, now);
            let write = Write {
                key: key.clone(),
                expected: current.as_ref().map(|v| v.version),
                state,
                expire_at,
            };
            match store.compare_and_swap(vec![write]).await {
                Ok(CasOutcome::Committed(_)) => return Ok(verdict),
                Ok(CasOutcome::Conflict(fresh)) => {
                    current = fresh
                        .into_iter()
                        .find(|(k, _)| *k == key)
                        .and_then(|(_, v)| v);
                }
                Err(e) => return Err(LimiterError::from(e).into()),
            }
            if attempt < attempts {
                self.limiter.pause_after_conflict(attempt).await;
            }
        }
        Err(SettleError::Contention)
    }

    /// The plan for `landed` (the reservation `unique`) on `state` at `now`.
    fn plan(
        &self,
        state: Option<&KeyState>,
        unique: [u8; 16],
        landed: &Landed,
        now: Timestamp,
    ) -> Plan {
        match state.and_then(|s| s.reservations.get(&unique)) {
            Some(r) if r.is_pending() => match mismatch(r, landed) {
                Some(reason) => Plan::Mismatch(reason),
                None => Plan::Settle(r.clone()),
            },
            Some(_) => Plan::Duplicate,
            None => {
                // Its URL expired at the key's time plus the TTL at the
                // latest, and an upload started by then may finish within
                // the grace (which is why the release waits that long).
                let Some(granted_at) = key::v7_time(&unique) else {
                    return Plan::Unknown;
                };
                let horizon = add(add(granted_at, self.url_ttl), self.grace);
                if horizon <= now && landed.created_at <= horizon {
                    Plan::Late(granted_at)
                } else {
                    Plan::Unknown
                }
            }
        }
    }

    /// No reservation: a duplicate if the ledger holds this event (a
    /// settled reservation evicted early), else quarantined.
    async fn unknown(&self, landed: &Landed, user: &UserId) -> Result<Verdict, SettleError> {
        let query = UsageQuery {
            since: Some(landed.created_at),
            until: Some(add(landed.created_at, Duration::from_millis(1))),
            user: Some(user.clone()),
        };
        let mut after = None;
        loop {
            let page = self.ledger.page(&query, after.as_ref(), 64).await;
            let page = page.map_err(SettleError::Ledger)?;
            if page.records.iter().any(|r| r.key == landed.key) {
                return Ok(Verdict::Duplicate);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        self.quarantined(landed, QuarantineReason::NoReservation)
            .await
    }

    async fn quarantined(
        &self,
        landed: &Landed,
        reason: QuarantineReason,
    ) -> Result<Verdict, SettleError> {
        self.quarantine
            .quarantine(&landed.bucket, &landed.key, &reason)
            .await?;
        Ok(Verdict::Quarantined(reason))
    }

    async fn record(&self, done: &mut Done, record: &UsageRecord) -> Result<Appended, SettleError> {
        let appended = self
            .ledger
            .append(record)
            .await
            .map_err(SettleError::Ledger)?;
        done.appended = true;
        Ok(appended)
    }

    async fn hand_off(&self, done: &mut Done, accepted: &Accepted) -> Result<(), SettleError> {
        if !done.handed_off {
            self.hand_off.send(accepted).await?;
            done.handed_off = true;
        }
        Ok(())
    }
}

impl<S: Store, C: Clock, L: Ledger, H: HandOff, Q: Quarantine> Settle for Settler<S, C, L, H, Q> {
    async fn settle(&self, landed: &Landed) -> Result<Verdict, SettleError> {
        self.run(landed).await
    }
}

/// Why `landed` does not match the reservation `r`, if it does not: its
/// size, its content type, and its checksum when the URL bound one.
fn mismatch(r: &Reservation, landed: &Landed) -> Option<QuarantineReason> {
    if landed.size != r.size {
        return Some(QuarantineReason::Size {
            expected: r.size,
            actual: landed.size,
        });
    }
    if landed.content_type.as_deref() != Some(r.content_type.as_str()) {
        return Some(QuarantineReason::ContentType);
    }
    match r.checksum {
        Some(sum) if landed.checksum_sha256 != Some(sum) => Some(QuarantineReason::Checksum),
        _ => None,
    }
}

/// `state` with the reservation `unique` marked `status`.
fn with_status(state: Option<&KeyState>, unique: [u8; 16], status: ReservationStatus) -> KeyState {
    let mut next = state.cloned().unwrap_or_default();
    if let Some(r) = next.reservations.get_mut(&unique) {
        r.status = status;
    }
    next
}

fn usage(user: &UserId, landed: &Landed, content_type: &str, tier: Option<String>) -> UsageRecord {
    UsageRecord {
        user: user.clone(),
        key: landed.key.clone(),
        bytes: landed.size,
        content_type: content_type.to_owned(),
        tier,
        landed_at: landed.created_at,
    }
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    let d = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Timestamp(t.as_millis().saturating_add(d))
}
