//! Conformance scenarios of settlement (upload mode): reservations written
//! with the charge, settled, rejected, released and charged late, through
//! each store's encoding and compare-and-swap. Settlement is one read and
//! one conditional write of the user's key, so every store must carry a
//! reservation through both unchanged.

use std::sync::Arc;
use std::time::Duration;

use crate::settle::{Landed, QuarantineReason, Settle, SettleError, Settler, Verdict};
use crate::usage::MemoryLedger;
use crate::{
    Charge, Clock, Decision, FakeClock, KeyState, LimitState, Limiter, ObjectKey, Reservation,
    ReservationRequest, ReservationStatus, StateKey, Store, Subjects, Timestamp,
};

use super::fresh_user;
use super::ports::{TestHandOff, TestQuarantine, all_records};

const T0: Timestamp = Timestamp(1_800_000_000_000);
const TTL: Duration = Duration::from_secs(300);
const GRACE: Duration = Duration::from_secs(900);
const PDF: &str = "application/pdf";

type TestSettler<S> = Settler<S, FakeClock, Arc<MemoryLedger>, TestHandOff, TestQuarantine>;

/// A limiter in upload mode, its settler, and what the settler's ports saw.
struct Rig<S> {
    limiter: Limiter<S, FakeClock>,
    settler: TestSettler<S>,
    clock: FakeClock,
    ledger: Arc<MemoryLedger>,
    hand_off: TestHandOff,
    quarantine: TestQuarantine,
    who: Subjects,
}

fn rig<S: Store>(store: S, policy: &str) -> Rig<S> {
    let clock = FakeClock::new(T0);
    let policy = Arc::new(policy.parse().expect("policy"));
    let limiter = Limiter::new(policy, store, clock.clone()).with_settlement(Some(GRACE));
    let (ledger, hand_off, quarantine): (Arc<MemoryLedger>, _, _) = Default::default();
    let settler = Settler::new(
        limiter.clone(),
        Arc::clone(&ledger),
        TestHandOff::clone(&hand_off),
        TestQuarantine::clone(&quarantine),
        "uploads/",
        TTL,
    )
    .expect("upload mode");
    Rig {
        limiter,
        settler,
        clock,
        ledger,
        hand_off,
        quarantine,
        who: Subjects {
            user: fresh_user("settle"),
            ip: None,
        },
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// A UUIDv7 made at `at`, told apart by `n`.
fn v7(at: Timestamp, n: u8) -> [u8; 16] {
    let mut u = [n; 16];
    u[..6].copy_from_slice(&at.as_millis().to_be_bytes()[2..]);
    u[6] = 0x70;
    u[8] = 0x80 | (n & 0x3f);
    u
}

impl<S: Store> Rig<S> {
    fn object_key(&self, unique: &[u8; 16]) -> String {
        let text = crate::settle::key::hyphenated(unique);
        ObjectKey::for_upload("uploads/", &self.who.user, &text, "report.pdf").into_string()
    }

    /// Grants upload `n` of `size` bytes (its URL binding `checksum`), and
    /// the object that would land through it, created now.
    async fn grant(&self, n: u8, size: u64, checksum: Option<[u8; 32]>) -> (Decision, Landed) {
        let now = self.clock.now();
        let unique = v7(now, n);
        let charge = Charge {
            size,
            tier: None,
            grant: None,
            reservation: Some(ReservationRequest {
                unique,
                expires_at: Timestamp(now.as_millis() + ms(TTL)),
                content_type: PDF.into(),
                checksum,
            }),
        };
        let decision = self
            .limiter
            .charge(&self.who, &charge)
            .await
            .expect("grant");
        let landed = Landed {
            bucket: "uploads-bucket".into(),
            key: self.object_key(&unique),
            size,
            content_type: Some(PDF.into()),
            checksum_sha256: checksum,
            created_at: now,
        };
        (decision, landed)
    }

    async fn settle(&self, landed: &Landed) -> Verdict {
        self.settler.settle(landed).await.expect("settle")
    }

    async fn state(&self) -> KeyState {
        let key = StateKey::user(&self.who.user);
        let got = self.limiter.store().load(&[key]).await.expect("load");
        got.into_iter()
            .flatten()
            .next()
            .map(|v| v.state)
            .unwrap_or_default()
    }

    async fn statuses(&self) -> Vec<ReservationStatus> {
        self.state()
            .await
            .reservations
            .values()
            .map(|r| r.status)
            .collect()
    }

    async fn remaining(&self) -> Vec<u64> {
        let d = self.limiter.peek(&self.who).await.expect("peek");
        d.limits.iter().map(|l| l.remaining).collect()
    }
}

/// A matching object settles its reservation once: one ledger record, one
/// hand-off, and its charge stands while the unsettled one is released.
pub async fn a_matching_upload_settles_once_and_stays_charged<S: Store>(store: S) {
    let r = rig(store, "uploads=user:2/1h;volume=user:1KiB/1d:fixed");
    let (d, first) = r.grant(1, 100, Some([1; 32])).await;
    assert!(d.allowed);
    let (_, _second) = r.grant(2, 200, None).await;
    // The reservation came back from the store as it was written.
    let stored = r.state().await.reservations.get(&v7(T0, 1)).cloned();
    let want = Reservation {
        granted_at: T0,
        expires_at: Timestamp(T0.as_millis() + ms(TTL)),
        size: 100,
        content_type: PDF.into(),
        checksum: Some([1; 32]),
        tier: None,
        charged: vec![("uploads".into(), 1), ("volume".into(), 100)],
        status: ReservationStatus::Pending,
    };
    assert_eq!(stored, Some(want));
    r.clock.advance(Duration::from_secs(3));
    assert_eq!(r.settle(&first).await, Verdict::Accepted { late: false });
    let records = all_records(&r.ledger).await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        (
            records[0].bytes,
            records[0].content_type.as_str(),
            records[0].landed_at
        ),
        (100, PDF, T0)
    );
    let sent = r.hand_off.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].granted_at, sent[0].settled_at),
        (T0, Timestamp(T0.0 + 3_000))
    );
    assert_eq!(
        (sent[0].checksum_sha256, sent[0].late),
        (Some([1; 32]), false)
    );
    use ReservationStatus::{Pending, Settled};
    assert_eq!(r.statuses().await, [Settled, Pending]);
    // A duplicate event changes nothing.
    assert_eq!(r.settle(&first).await, Verdict::Duplicate);
    assert_eq!((r.ledger.len(), r.hand_off.sent().len()), (1, 1));
    // Past the horizon only the unsettled one comes back.
    r.clock.advance(TTL + GRACE);
    assert_eq!(r.remaining().await, [1, 1024 - 100]);
    let d = r.limiter.consume(&r.who, 10).await.expect("consume");
    assert_eq!(
        d.limits.iter().map(|l| l.remaining).collect::<Vec<_>>(),
        [0, 914]
    );
    assert!(
        r.state().await.reservations.is_empty(),
        "settled: forgotten"
    );
    // Redelivered after that: the ledger remembers it; nothing is charged.
    assert_eq!(r.settle(&first).await, Verdict::Duplicate);
    assert_eq!(r.ledger.len(), 1);
    assert_eq!(r.remaining().await, [0, 914]);
}

/// An object that does not match what its URL bound is quarantined, its
/// reservation rejected and still charged; a URL that bound no checksum
/// takes any.
pub async fn a_mismatched_upload_is_quarantined_and_not_refunded<S: Store>(store: S) {
    let r = rig(store, "uploads=user:4/1h");
    let (_, mut size) = r.grant(1, 100, Some([1; 32])).await;
    let (_, mut kind) = r.grant(2, 100, Some([2; 32])).await;
    let (_, mut sum) = r.grant(3, 100, Some([3; 32])).await;
    let (_, mut free) = r.grant(4, 100, None).await;
    size.size = 101;
    kind.content_type = Some("text/plain".into());
    sum.checksum_sha256 = Some([9; 32]);
    free.checksum_sha256 = Some([9; 32]);
    let reason = QuarantineReason::Size {
        expected: 100,
        actual: 101,
    };
    assert_eq!(r.settle(&size).await, Verdict::Quarantined(reason.clone()));
    let content_type = QuarantineReason::ContentType;
    assert_eq!(
        r.settle(&kind).await,
        Verdict::Quarantined(content_type.clone())
    );
    let checksum = QuarantineReason::Checksum;
    assert_eq!(r.settle(&sum).await, Verdict::Quarantined(checksum.clone()));
    assert_eq!(r.settle(&free).await, Verdict::Accepted { late: false });
    sum.checksum_sha256 = None;
    assert_eq!(r.settle(&sum).await, Verdict::Duplicate);
    let tagged = r.quarantine.tagged();
    let want = [
        (size.key, reason),
        (kind.key, content_type),
        (sum.key, checksum),
    ];
    assert_eq!(tagged, want);
    assert_eq!(r.ledger.len(), 1);
    assert_eq!(r.hand_off.sent().len(), 1);
    use ReservationStatus::{Rejected, Settled};
    assert_eq!(r.statuses().await, [Rejected, Rejected, Rejected, Settled]);
    r.clock.advance(TTL + GRACE);
    assert_eq!(r.remaining().await, [0], "nothing refunded");
}

/// An object whose reservation was released is charged anyway when it
/// lands, past the limit if need be, and recorded once.
pub async fn a_late_upload_is_charged_past_the_limit<S: Store>(store: S) {
    let r = rig(store, "uploads=user:1/1h");
    let (_, late) = r.grant(1, 100, None).await;
    r.clock.advance(TTL + GRACE);
    // Released at this decision, which takes the quota again.
    let (d, _) = r.grant(2, 100, None).await;
    assert!(d.allowed);
    let mut late = late;
    late.created_at = Timestamp(T0.as_millis() + ms(TTL) - 1_000);
    assert_eq!(r.settle(&late).await, Verdict::Accepted { late: true });
    let records = all_records(&r.ledger).await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].tier.clone(), records[0].landed_at),
        (None, late.created_at)
    );
    let sent = r.hand_off.sent();
    assert_eq!(
        (sent.len(), sent[0].late, sent[0].granted_at),
        (1, true, T0)
    );
    // Two charged of one: denied until both leave the window.
    let used = match r.state().await.limits.get("uploads") {
        Some(LimitState::Sliding(s)) => s.entries.iter().map(|(_, c)| c).sum::<u64>(),
        other => panic!("no sliding state: {other:?}"),
    };
    assert_eq!(used, 2, "charged past the limit");
    let d = r.limiter.consume(&r.who, 1).await.expect("consume");
    assert!(!d.allowed);
    assert_eq!(d.retry_after(), Some(Duration::from_secs(3600)));
    // Redelivered: the ledger has it; not charged again.
    assert_eq!(r.settle(&late).await, Verdict::Duplicate);
    assert_eq!(r.ledger.len(), 1);
    r.clock.advance(Duration::from_secs(3600));
    assert_eq!(r.remaining().await, [1]);
}

/// Keys the gate does not hand out, and keys with no reservation that
/// cannot be late ones, are quarantined and recorded nowhere.
pub async fn foreign_and_unreserved_keys_are_quarantined<S: Store>(store: S) {
    let r = rig(store, "uploads=user:5/1h");
    let landed = |key: String, created_at| Landed {
        bucket: "uploads-bucket".into(),
        key,
        size: 1,
        content_type: Some(PDF.into()),
        checksum_sha256: None,
        created_at,
    };
    let foreign = landed("elsewhere/report.pdf".into(), T0);
    let reason = QuarantineReason::ForeignKey;
    assert_eq!(r.settle(&foreign).await, Verdict::Quarantined(reason));
    let none = QuarantineReason::NoReservation;
    // Never reserved, and too recent to have been released.
    let fresh = landed(r.object_key(&v7(T0, 7)), T0);
    assert_eq!(r.settle(&fresh).await, Verdict::Quarantined(none.clone()));
    r.clock.advance(TTL + GRACE);
    // Old enough, but created after its URL could have been used.
    let after = Timestamp(T0.as_millis() + ms(TTL + GRACE) + 1);
    let too_late = landed(r.object_key(&v7(T0, 8)), after);
    assert_eq!(
        r.settle(&too_late).await,
        Verdict::Quarantined(none.clone())
    );
    // A UUID that tells no time (v4).
    let mut v4 = v7(T0, 9);
    v4[6] = 0x40;
    let timeless = landed(r.object_key(&v4), T0);
    assert_eq!(r.settle(&timeless).await, Verdict::Quarantined(none));
    assert_eq!(r.quarantine.tagged().len(), 4);
    assert_eq!(r.quarantine.tagged()[0].0, "elsewhere/report.pdf");
    assert!(r.ledger.is_empty() && r.hand_off.sent().is_empty());
    assert!(r.state().await.limits.is_empty(), "nothing charged");
}

/// A hand-off that fails after the ledger write leaves the reservation
/// pending; the redelivered event settles it, and the ledger holds one
/// record.
pub async fn a_failed_hand_off_settles_once_on_redelivery<S: Store>(store: S) {
    let r = rig(store, "uploads=user:2/1h");
    let (_, landed) = r.grant(1, 100, None).await;
    r.hand_off.fail_next(1);
    match r.settler.settle(&landed).await {
        Err(e @ SettleError::Port(_)) => assert!(e.is_transient()),
        other => panic!("expected a transient hand-off failure, got {other:?}"),
    }
    assert_eq!(r.ledger.len(), 1, "the record went first");
    assert!(r.hand_off.sent().is_empty());
    assert_eq!(r.statuses().await, [ReservationStatus::Pending]);
    assert_eq!(r.settle(&landed).await, Verdict::Accepted { late: false });
    assert_eq!((r.ledger.len(), r.hand_off.sent().len()), (1, 1));
    assert_eq!(r.statuses().await, [ReservationStatus::Settled]);
}

/// A decision committed between a settle's plan and its commit: the
/// settle plans again on the state the conflict returned, and neither
/// writes the ledger nor hands off twice.
pub async fn a_conflicting_commit_is_planned_again<S: Store>(store: S) {
    let r = rig(store, "uploads=user:3/1h");
    let (_, landed) = r.grant(1, 100, None).await;
    let (other, who, clock) = (r.limiter.clone(), r.who.clone(), r.clock.clone());
    r.hand_off.before_next(Box::pin(async move {
        let charge = Charge {
            size: 5,
            tier: None,
            grant: None,
            reservation: Some(ReservationRequest {
                unique: v7(clock.now(), 2),
                expires_at: Timestamp(clock.now().as_millis() + ms(TTL)),
                content_type: PDF.into(),
                checksum: None,
            }),
        };
        let d = other.charge(&who, &charge).await.expect("the other grant");
        assert!(d.allowed);
    }));
    assert_eq!(r.settle(&landed).await, Verdict::Accepted { late: false });
    assert_eq!((r.ledger.len(), r.hand_off.sent().len()), (1, 1));
    use ReservationStatus::{Pending, Settled};
    assert_eq!(r.statuses().await, [Settled, Pending]);
    assert_eq!(r.remaining().await, [1]);
}
