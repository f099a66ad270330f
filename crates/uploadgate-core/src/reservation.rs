//! Reservations (`UPLOADGATE_CHARGE=upload`): a grant that counts as used
//! from the start and is settled when its object lands, or released (its
//! charge handed back) when nothing landed by its URL's expiry plus a grace
//! period. See `docs/design/settlement.md`.
//!
//! A reservation lives in its user's [`KeyState`](crate::KeyState), beside
//! the limits it charged, so recording, settling and releasing it are each
//! part of one compare-and-swap on that key. State stays bounded: at most
//! [`Reservation::MAX_PENDING`] pending ones per user (a grant past that is
//! denied until one settles or is released), and at most
//! [`Reservation::MAX_DONE`] settled or rejected ones, each dropped once
//! its horizon passes (duplicates after that are the ledger's to catch).

use std::time::Duration;

use crate::clock::Timestamp;

/// One reservation, keyed in its user's state by the unique part of its
/// object key (the UUID's 16 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// When it was granted: exactly the `now` of the decision that charged
    /// it, which is what releasing its charge needs.
    pub granted_at: Timestamp,
    /// When its URL expires.
    pub expires_at: Timestamp,
    /// The size the URL binds, in bytes.
    pub size: u64,
    /// The content type the URL binds.
    pub content_type: String,
    /// The SHA-256 the URL binds, if it binds one.
    pub checksum: Option<[u8; 32]>,
    /// The quota tier it was charged under (`None`: the default policy).
    pub tier: Option<String>,
    /// `(limit name, cost)` for each limit of the user's key it charged.
    pub charged: Vec<(String, u64)>,
    /// Where it stands.
    pub status: ReservationStatus,
}

/// Where a reservation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservationStatus {
    /// Granted; nothing has landed yet. Counts as used.
    Pending,
    /// Its object landed and matched: recorded and handed off. Stays
    /// charged.
    Settled,
    /// Its object landed and did not match: quarantined. Stays charged
    /// (not refunded).
    Rejected,
}

impl Reservation {
    /// Most pending reservations one user may hold. A grant beyond it is
    /// denied (see [`Decision::backlog`](crate::Decision::backlog)) until the
    /// earliest one settles or is released: it neither admits an upload the
    /// state could not record (its refund would be lost) nor evicts a
    /// pending one (whose refund or settlement would be lost).
    pub const MAX_PENDING: usize = 256;
    /// Most settled or rejected reservations one user's state keeps (those
    /// whose URLs expire last). They only serve to recognise duplicate
    /// events early; an evicted one's duplicate is recognised by the ledger.
    pub const MAX_DONE: usize = 32;

    /// When a reservation granted with this URL expiry stops mattering to
    /// the state: `expires_at + grace`. A pending one is released then.
    pub fn horizon(&self, grace: Duration) -> Timestamp {
        let grace = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.expires_at.as_millis().saturating_add(grace))
    }

    /// Whether its horizon has passed at `now`.
    pub fn is_past(&self, grace: Duration, now: Timestamp) -> bool {
        self.horizon(grace) <= now
    }

    /// Whether it is [`Pending`](ReservationStatus::Pending).
    pub fn is_pending(&self) -> bool {
        self.status == ReservationStatus::Pending
    }
}

/// What to reserve when an upload is granted in upload mode: what the URL
/// binds. The size and tier are the [`Charge`](crate::Charge)'s own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservationRequest {
    /// The unique part of the object key (a UUIDv7's bytes, so that the key
    /// itself tells when it was granted). Fresh for every grant.
    pub unique: [u8; 16],
    /// When the URL expires.
    pub expires_at: Timestamp,
    /// The content type the URL binds.
    pub content_type: String,
    /// The SHA-256 the URL binds, if any.
    pub checksum: Option<[u8; 32]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_horizon_is_the_expiry_plus_the_grace() {
        let r = Reservation {
            granted_at: Timestamp(1_000),
            expires_at: Timestamp(5_000),
            size: 1,
            content_type: "a/b".into(),
            checksum: None,
            tier: None,
            charged: vec![],
            status: ReservationStatus::Pending,
        };
        let grace = Duration::from_secs(2);
        assert_eq!(r.horizon(grace), Timestamp(7_000));
        assert!(!r.is_past(grace, Timestamp(6_999)));
        assert!(r.is_past(grace, Timestamp(7_000)));
        assert_eq!(r.horizon(Duration::MAX), Timestamp(u64::MAX));
    }
}
