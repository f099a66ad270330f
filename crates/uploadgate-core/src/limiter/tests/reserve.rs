//! Upload mode: grants recorded as pending reservations in the charge's own
//! compare-and-swap, released (quota handed back) at the first decision or
//! read after their URL's expiry plus the grace, exactly once; the cap on
//! pending reservations; grant mode unchanged.

use super::*;
use std::time::Duration;

use crate::limiter::eval::{self, Member, Pass};
use crate::{
    Backlog, Charge, Clock, FakeClock, GrantRequest, MemoryStore, Reservation, ReservationRequest,
    ReservationStatus, Timestamp, UserId, Versioned, Write,
};

const T0: Timestamp = Timestamp(1_800_000_000_000);
const TTL: Duration = Duration::from_secs(300);
const GRACE: Duration = Duration::from_secs(900);

type Lim = Limiter<Arc<MemoryStore>, FakeClock>;

fn limiter(policy: &str) -> (Lim, FakeClock) {
    let clock = FakeClock::new(T0);
    let policy = Arc::new(policy.parse().unwrap());
    let l = Limiter::new(policy, Arc::new(MemoryStore::new()), clock.clone())
        .with_settlement(Some(GRACE));
    (l, clock)
}

fn alice() -> Subjects {
    Subjects {
        user: UserId::parse("alice").unwrap(),
        ip: Some("192.0.2.1".parse().unwrap()),
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// An upload of `size` bytes whose URL lives `ttl` from now.
fn upload(clock: &FakeClock, unique: u8, size: u64, ttl: Duration) -> Charge {
    Charge {
        size,
        tier: None,
        grant: None,
        reservation: Some(ReservationRequest {
            unique: [unique; 16],
            expires_at: Timestamp(clock.now().as_millis() + ms(ttl)),
            content_type: "application/pdf".into(),
            checksum: Some([unique; 32]),
        }),
    }
}

async fn user_state(l: &Lim) -> KeyState {
    let key = StateKey::user(&alice().user);
    let got = l.store().load(&[key]).await.unwrap();
    got.into_iter().next().flatten().unwrap().state
}

fn remaining(d: &Decision) -> Vec<u64> {
    d.limits.iter().map(|l| l.remaining).collect()
}

#[tokio::test]
async fn a_grant_is_a_pending_reservation_that_counts_as_used() {
    let (l, clock) = limiter("uploads=user:3/1h;volume=user:100B/1d:fixed;burst=ip:9/1h");
    for (i, left) in [(1u8, 2u64), (2, 1), (3, 0)] {
        let d = l
            .charge(&alice(), &upload(&clock, i, 20, TTL))
            .await
            .unwrap();
        assert!(d.allowed);
        assert_eq!(d.limits[0].remaining, left);
    }
    // None settled, and still the limit holds.
    let d = l
        .charge(&alice(), &upload(&clock, 4, 20, TTL))
        .await
        .unwrap();
    assert!(!d.allowed);
    assert_eq!(d.backlog, None);
    assert_eq!(
        d.violated()
            .map(|v| v.limit.name.as_str())
            .collect::<Vec<_>>(),
        ["uploads"]
    );
    let st = user_state(&l).await;
    assert_eq!(st.reservations.len(), 3);
    let r = &st.reservations[&[2; 16]];
    assert_eq!(
        *r,
        Reservation {
            granted_at: T0,
            expires_at: Timestamp(T0.as_millis() + ms(TTL)),
            size: 20,
            content_type: "application/pdf".into(),
            checksum: Some([2; 32]),
            tier: None,
            // Only the user's limits: the ip limit counts requests.
            charged: vec![("uploads".into(), 1), ("volume".into(), 20)],
            status: ReservationStatus::Pending,
        }
    );
    // The ip key holds no reservation.
    let ip = StateKey::ip("192.0.2.1".parse().unwrap());
    let ip = l.store().load(&[ip]).await.unwrap();
    assert!(ip[0].as_ref().unwrap().state.reservations.is_empty());
}

#[tokio::test]
async fn an_unsettled_reservation_is_released_at_the_first_decision_after_expiry_and_grace() {
    let (l, clock) = limiter("uploads=user:3/1h;volume=user:100B/1d:fixed;rate=user:6/6h:gcra");
    assert!(
        l.charge(&alice(), &upload(&clock, 1, 30, TTL))
            .await
            .unwrap()
            .allowed
    );
    clock.advance(Duration::from_secs(60));
    assert!(
        l.charge(&alice(), &upload(&clock, 2, 40, TTL))
            .await
            .unwrap()
            .allowed
    );
    // One millisecond before the first one's horizon: nothing comes back.
    clock.advance(TTL + GRACE - Duration::from_millis(60_001));
    let q = l.peek(&alice()).await.unwrap();
    assert_eq!(remaining(&q), [1, 30, 4]);
    clock.advance(Duration::from_millis(1));
    // A read shows it released (GCRA: its hour back), and writes nothing.
    let q = l.peek(&alice()).await.unwrap();
    assert_eq!(remaining(&q), [2, 60, 5]);
    assert_eq!(user_state(&l).await.reservations.len(), 2);
    // The next decision releases it in its own write, and charges.
    let d = l.consume(&alice(), 10).await.unwrap();
    assert!(d.allowed);
    assert_eq!(remaining(&d), [1, 50, 4]);
    let st = user_state(&l).await;
    assert_eq!(st.reservations.keys().collect::<Vec<_>>(), [&[2; 16]]);
    // Released exactly once: later decisions find nothing more to hand back.
    let d = l.consume(&alice(), 10).await.unwrap();
    assert_eq!(remaining(&d), [0, 40, 3]);
    // The second one comes back a minute later.
    clock.advance(Duration::from_secs(60));
    let q = l.peek(&alice()).await.unwrap();
    assert_eq!(remaining(&q), [1, 80, 4]);
}

#[tokio::test]
async fn release_hands_back_the_charge_of_its_own_millisecond_only() {
    let (l, clock) = limiter("uploads=user:5/1h");
    // Two grants in one millisecond share one sliding entry.
    assert!(
        l.charge(&alice(), &upload(&clock, 1, 1, TTL))
            .await
            .unwrap()
            .allowed
    );
    let long = TTL * 4;
    assert!(
        l.charge(&alice(), &upload(&clock, 2, 1, long))
            .await
            .unwrap()
            .allowed
    );
    clock.advance(TTL + GRACE);
    let d = l.consume(&alice(), 1).await.unwrap();
    assert_eq!(remaining(&d), [3], "the long one stays charged");
    clock.advance(long - TTL);
    assert_eq!(remaining(&l.peek(&alice()).await.unwrap()), [4]);
}

#[tokio::test]
async fn a_settled_reservation_is_never_released() {
    let (l, clock) = limiter("uploads=user:2/1h");
    assert!(
        l.charge(&alice(), &upload(&clock, 1, 1, TTL))
            .await
            .unwrap()
            .allowed
    );
    assert!(
        l.charge(&alice(), &upload(&clock, 2, 1, TTL))
            .await
            .unwrap()
            .allowed
    );
    // The object of the first lands: settled (as the settle step writes).
    let key = StateKey::user(&alice().user);
    let cur = l.store().load(std::slice::from_ref(&key)).await.unwrap();
    let Versioned { version, mut state } = cur.into_iter().next().flatten().unwrap();
    if let Some(r) = state.reservations.get_mut(&[1; 16]) {
        r.status = ReservationStatus::Settled;
    }
    let w = Write {
        key,
        expected: Some(version),
        state,
        expire_at: Timestamp(u64::MAX),
    };
    assert!(matches!(
        l.store().compare_and_swap(vec![w]).await.unwrap(),
        CasOutcome::Committed(_)
    ));
    clock.advance(TTL + GRACE);
    let d = l.consume(&alice(), 1).await.unwrap();
    assert!(d.allowed);
    assert_eq!(remaining(&d), [0], "only the pending one came back");
    // Past its horizon the settled one is forgotten, its charge stands.
    assert_eq!(
        user_state(&l).await.reservations.keys().collect::<Vec<_>>(),
        Vec::<&[u8; 16]>::new()
    );
}

/// In one batch a denied job sees the release but writes nothing; the
/// admitted job after it writes it, once.
#[test]
fn a_batch_releases_once_and_a_denial_sees_the_released_view() {
    let mut rules = rules::Rules::new(
        &"uploads=user:2/1h;volume=user:50B/1h".parse().unwrap(),
        &[],
    );
    rules.grace = Some(GRACE);
    let policy: Arc<Policy> = Arc::new("uploads=user:2/1h;volume=user:50B/1h".parse().unwrap());
    let key = StateKey::user(&alice().user);
    let now = Timestamp(T0.as_millis() + ms(TTL + GRACE));
    // Both limits full: one reservation due, one not.
    let mut st = KeyState::default();
    let (_, s) = crate::algorithm::evaluate(&policy.limits()[0], None, T0, 2);
    st.limits.insert("uploads".into(), s.unwrap().0);
    let (_, s) = crate::algorithm::evaluate(&policy.limits()[1], None, T0, 50);
    st.limits.insert("volume".into(), s.unwrap().0);
    let pending = |expires_at: u64, size| Reservation {
        granted_at: T0,
        expires_at: Timestamp(expires_at),
        size,
        content_type: "a/b".into(),
        checksum: None,
        tier: None,
        charged: vec![("uploads".into(), 1), ("volume".into(), size)],
        status: ReservationStatus::Pending,
    };
    st.reservations
        .insert([1; 16], pending(T0.as_millis() + ms(TTL), 20));
    st.reservations
        .insert([2; 16], pending(now.as_millis() + 1, 30));
    let base = vec![Some(Versioned {
        version: 7,
        state: st,
    })];
    let member = |size| Member {
        keys: vec![0],
        ask: Ask {
            size,
            policy: Arc::clone(&policy),
            grant: None,
            user: Some(0),
            reservation: None,
            tier: None,
        },
    };
    let members = [member(25), member(20)];
    let Pass::Decided { decisions, writes } =
        eval::pass(&rules, &[key], &base, &[true], &members, now)
    else {
        panic!("confirmed keys decide");
    };
    // 20 B came back: 25 does not fit, but the denial reports them.
    assert!(!decisions[0].allowed);
    assert_eq!(remaining(&decisions[0]), [1, 20]);
    assert!(decisions[1].allowed);
    assert_eq!(remaining(&decisions[1]), [0, 0]);
    assert_eq!(writes.len(), 1);
    let written = &writes[0].state;
    assert_eq!(written.reservations.keys().collect::<Vec<_>>(), [&[2; 16]]);
    // Released once: 2 - 1 + 1 uploads, 50 - 20 + 20 bytes.
    let (o, _) =
        crate::algorithm::evaluate(&policy.limits()[0], written.limits.get("uploads"), now, 0);
    assert_eq!(o.remaining, 0);
    assert_eq!(writes[0].expected, Some(7));
    // The pending one keeps the key alive until its own horizon.
    assert!(writes[0].expire_at >= Timestamp(now.as_millis() + 1 + ms(GRACE)));
}

#[tokio::test]
async fn past_the_pending_cap_a_grant_waits_for_the_earliest_to_go() {
    let (l, clock) = limiter("uploads=user:1000/1d");
    for i in 0..Reservation::MAX_PENDING {
        let mut c = upload(&clock, 0, 1, TTL);
        if let Some(r) = c.reservation.as_mut() {
            r.unique[..8].copy_from_slice(&(i as u64).to_be_bytes());
        }
        assert!(l.charge(&alice(), &c).await.unwrap().allowed, "{i}");
        clock.advance(Duration::from_millis(10));
    }
    let d = l
        .charge(&alice(), &upload(&clock, 0xff, 1, TTL))
        .await
        .unwrap();
    assert!(!d.allowed);
    let left = ms(TTL + GRACE) - 10 * Reservation::MAX_PENDING as u64;
    let backlog = Backlog {
        retry_after: Duration::from_millis(left),
    };
    assert_eq!(d.backlog, Some(backlog));
    assert_eq!(d.retry_after(), Some(backlog.retry_after));
    assert_eq!(d.violated().count(), 0, "no limit denied it");
    assert_eq!(remaining(&d), [1000 - 256], "nothing charged");
    // A request without a reservation (no upload) is not held back.
    assert!(l.consume(&alice(), 0).await.unwrap().allowed);
    clock.advance(backlog.retry_after);
    let d = l
        .charge(&alice(), &upload(&clock, 0xff, 1, TTL))
        .await
        .unwrap();
    assert!(d.allowed, "the earliest was released");
    assert_eq!(remaining(&d), [1000 - 257 + 1 - 1]);
    let st = user_state(&l).await;
    assert_eq!(st.reservations.len(), Reservation::MAX_PENDING);
}

#[tokio::test]
async fn the_reservation_lives_on_the_user_key_whatever_the_policy_limits() {
    let (l, clock) = limiter("burst=ip:5/1m");
    let d = l
        .charge(&alice(), &upload(&clock, 1, 9, TTL))
        .await
        .unwrap();
    assert!(d.allowed);
    let st = user_state(&l).await;
    assert_eq!(
        st.reservations[&[1; 16]].charged,
        Vec::<(String, u64)>::new()
    );
    assert!(st.limits.is_empty());
}

#[tokio::test]
async fn a_tier_reservation_is_released_by_that_tiers_definition() {
    let clock = FakeClock::new(T0);
    // The same limit name: one minute per upload by default, an hour on pro.
    let l = Limiter::new(
        Arc::new("rate=user:60/1h:gcra".parse().unwrap()),
        Arc::new(MemoryStore::new()),
        clock.clone(),
    )
    .with_tiers(vec![(
        "pro".into(),
        "rate=user:10/10h:gcra".parse().unwrap(),
    )])
    .with_settlement(Some(Duration::from_secs(1)));
    for i in 1..=3 {
        let mut c = upload(&clock, i, 1, Duration::from_secs(1));
        c.tier = Some("pro".into());
        assert!(l.charge(&alice(), &c).await.unwrap().allowed);
    }
    let st = user_state(&l).await;
    assert_eq!(st.reservations.len(), 3);
    assert!(
        st.reservations
            .values()
            .all(|r| r.tier.as_deref() == Some("pro"))
    );
    // Three hours handed back; at the default's minute each, 7 would be left.
    clock.advance(Duration::from_secs(2));
    let q = l.peek_tier(&alice(), Some("pro")).await.unwrap();
    assert_eq!(remaining(&q), [10]);
}

#[tokio::test]
async fn grant_mode_records_nothing_and_releases_nothing() {
    let clock = FakeClock::new(T0);
    let l = Limiter::new(
        Arc::new("uploads=user:2/1h".parse().unwrap()),
        Arc::new(MemoryStore::new()),
        clock.clone(),
    );
    assert_eq!(l.settlement(), None);
    let mut c = upload(&clock, 1, 1, TTL);
    c.grant = Some(GrantRequest {
        key: "k".into(),
        fingerprint: [0; 16],
        unique: [1; 16],
        expires_at: Timestamp(T0.as_millis() + ms(TTL)),
        holder: Subject::User,
    });
    assert!(l.charge(&alice(), &c).await.unwrap().allowed);
    assert!(l.consume(&alice(), 1).await.unwrap().allowed);
    let key = StateKey::user(&alice().user);
    let st = l.store().load(&[key]).await.unwrap()[0]
        .clone()
        .unwrap()
        .state;
    assert!(st.reservations.is_empty());
    assert_eq!(st.grants.len(), 1);
    clock.advance(TTL + GRACE);
    let d = l.consume(&alice(), 1).await.unwrap();
    assert!(!d.allowed, "charged when granted, never handed back");
}

#[test]
fn a_write_keeps_the_newest_settled_reservations_and_every_pending_one() {
    let mut rules = rules::Rules::default();
    rules.grace = Some(GRACE);
    let one = |expires: u64, status| Reservation {
        granted_at: T0,
        expires_at: Timestamp(T0.as_millis() + expires),
        size: 1,
        content_type: "a/b".into(),
        checksum: None,
        tier: None,
        charged: vec![],
        status,
    };
    let mut current = std::collections::BTreeMap::new();
    for i in 0..60u8 {
        let status = match i % 3 {
            0 => ReservationStatus::Settled,
            1 => ReservationStatus::Rejected,
            _ => ReservationStatus::Pending,
        };
        current.insert([i; 16], one(1_000 * u64::from(i) + 1, status));
    }
    // One settled past its horizon goes whatever the cap.
    current.insert([0xff; 16], one(0, ReservationStatus::Settled));
    let now = Timestamp(T0.as_millis() + ms(GRACE));
    let mut expire_at = now;
    let kept = crate::limiter::reserve::carry_reservations(&rules, &current, now, &mut expire_at);
    let pending = kept.values().filter(|r| r.is_pending()).count();
    assert_eq!(pending, 20, "every pending one");
    // 40 done ones in time: the 8 whose URLs expire first go.
    let gone: Vec<u8> = current
        .keys()
        .filter(|u| !kept.contains_key(*u))
        .map(|u| u[0])
        .collect();
    assert_eq!(gone, [0, 1, 3, 4, 6, 7, 9, 10, 0xff]);
    assert_eq!(kept.len(), 20 + Reservation::MAX_DONE);
    assert_eq!(expire_at, Timestamp(T0.as_millis() + 59_001 + ms(GRACE)));
}
