//! DynamoDB calls per decision, counted by an SDK interceptor; the item
//! shape; and failing closed.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use uploadgate_core::{
    Clock, FakeClock, Limiter, LimiterError, Policy, Reset, StateKey, StoreError, Subjects,
    Timestamp, UserId,
};
use uploadgate_dynamodb::{DEFAULT_DENIAL_TTL, DynamoStore};

use crate::support::{Calls, counted_store, endpoint, sdk_config_for, table, unreachable_store};

const T0: Timestamp = Timestamp(1_800_000_000_000);

fn user() -> Subjects {
    let id = format!("calls-{:016x}", rand::random::<u64>());
    Subjects {
        user: UserId::parse(&id).unwrap(),
        ip: Some(IpAddr::V4(Ipv4Addr::new(
            100,
            64,
            rand::random(),
            rand::random(),
        ))),
    }
}

async fn limiter(policy: &str, clock: &FakeClock) -> (Limiter<DynamoStore, FakeClock>, Calls) {
    let (store, calls) = counted_store().await;
    let store = store.with_clock(Arc::new(clock.clone()));
    let policy: Arc<Policy> = Arc::new(policy.parse().unwrap());
    (Limiter::new(policy, store, clock.clone()), calls)
}

#[tokio::test]
async fn one_call_per_allowed_decision_and_none_for_repeat_denials() {
    let clock = FakeClock::new(T0);
    let (lim, calls) = limiter("uploads=user:3/1h", &clock).await;
    let who = user();

    // A brand-new key costs one conditional write.
    let d = lim.consume(&who, 10).await.unwrap();
    assert!(d.allowed);
    assert_eq!((calls.take(), d.attempts), (vec!["PutItem".to_owned()], 1));
    // A warm key: one write each.
    for remaining in [1, 0] {
        clock.advance(Duration::from_secs(1));
        let d = lim.consume(&who, 10).await.unwrap();
        assert_eq!((d.allowed, d.limits[0].remaining), (true, remaining));
        assert_eq!(calls.take(), ["PutItem"]);
    }
    // Over the limit: denied from memory, no call, however often.
    for _ in 0..5 {
        clock.advance(Duration::from_millis(500));
        let d = lim.consume(&who, 10).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.limits[0].remaining, 0);
        assert_eq!(calls.take(), Vec::<String>::new());
    }
    // A cached view older than the denial TTL is re-read once, then trusted
    // again.
    clock.advance(DEFAULT_DENIAL_TTL);
    assert!(!lim.consume(&who, 10).await.unwrap().allowed);
    assert_eq!(calls.take(), ["GetItem"]);
    assert!(!lim.consume(&who, 10).await.unwrap().allowed);
    assert_eq!(calls.take(), Vec::<String>::new());
}

#[tokio::test]
async fn a_reset_elsewhere_takes_effect_within_the_denial_ttl() {
    let clock = FakeClock::new(T0);
    let (lim, calls) = limiter("uploads=user:1/1h", &clock).await;
    let (other, _) = counted_store().await;
    let who = user();
    assert!(lim.consume(&who, 1).await.unwrap().allowed);
    assert!(!lim.consume(&who, 1).await.unwrap().allowed);
    calls.take();

    // `uploadgate quota reset` from another process.
    assert!(other.delete(&StateKey::user(&who.user)).await.unwrap());

    // Inside the bound this process may still deny, without a call...
    clock.advance(DEFAULT_DENIAL_TTL - Duration::from_millis(1));
    assert!(!lim.consume(&who, 1).await.unwrap().allowed);
    assert_eq!(calls.take(), Vec::<String>::new());
    // ...and past it, it sees the reset: one read, then the write.
    clock.advance(Duration::from_millis(1));
    let d = lim.consume(&who, 1).await.unwrap();
    assert!(d.allowed);
    assert_eq!(calls.take(), ["GetItem", "PutItem"]);
}

#[tokio::test]
async fn a_zero_denial_ttl_makes_resets_exact() {
    let clock = FakeClock::new(T0);
    let (lim, calls) = limiter("uploads=user:1/1h", &clock).await;
    let lim = Limiter::new(
        Arc::new(lim.policy().clone()),
        lim.store().clone().with_denial_ttl(Duration::ZERO),
        clock.clone(),
    );
    let who = user();
    assert!(lim.consume(&who, 1).await.unwrap().allowed);
    calls.take();
    assert!(!lim.consume(&who, 1).await.unwrap().allowed);
    assert_eq!(calls.take(), ["GetItem"]);
    lim.reset(&StateKey::user(&who.user)).await.unwrap();
    calls.take();
    assert!(lim.consume(&who, 1).await.unwrap().allowed);
    assert_eq!(calls.take(), ["PutItem"]);
}

#[tokio::test]
async fn a_stale_cache_costs_one_failed_write_and_no_read() {
    let clock = FakeClock::new(T0);
    let (a, a_calls) = limiter("uploads=user:3/1h", &clock).await;
    let (b, b_calls) = limiter("uploads=user:3/1h", &clock).await;
    let who = user();

    assert!(b.consume(&who, 1).await.unwrap().allowed);
    assert_eq!(b_calls.take(), ["PutItem"]);
    // `a` has never seen the key: its create conflicts, the conflict hands
    // back the item (ALL_OLD), and the retry commits.
    let d = a.consume(&who, 1).await.unwrap();
    assert_eq!((d.allowed, d.attempts, d.limits[0].remaining), (true, 2, 1));
    assert_eq!(a_calls.take(), ["PutItem", "PutItem"]);
    // Now `b` is stale the same way.
    let d = b.consume(&who, 1).await.unwrap();
    assert_eq!((d.allowed, d.attempts, d.limits[0].remaining), (true, 2, 0));
    assert_eq!(b_calls.take(), ["PutItem", "PutItem"]);
    // `a` believes one is left; its write fails, and the returned item
    // shows the limit is reached: denied, nothing written, no read.
    let d = a.consume(&who, 1).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(a_calls.take(), ["PutItem"]);
    assert!(!a.consume(&who, 1).await.unwrap().allowed);
    assert_eq!(a_calls.take(), Vec::<String>::new());
}

#[tokio::test]
async fn two_subjects_are_one_transaction() {
    let clock = FakeClock::new(T0);
    let policy = "uploads=user:2/1h;burst=ip:10/1h";
    let (a, a_calls) = limiter(policy, &clock).await;
    let (b, _) = limiter(policy, &clock).await;
    let who = user();
    assert!(a.consume(&who, 1).await.unwrap().allowed);
    assert_eq!(a_calls.take(), ["TransactWriteItems"]);
    // Another process moves the user key on: the cancelled transaction
    // returns it, and the retry commits.
    assert!(b.consume(&who, 1).await.unwrap().allowed);
    let d = a.consume(&who, 1).await.unwrap();
    assert!(!d.allowed, "the user limit of 2 is reached");
    assert_eq!(a_calls.take(), ["TransactWriteItems"]);
    // The denial consumed nothing from the ip limit.
    let q = a.peek(&who).await.unwrap();
    assert_eq!(q.limits[1].remaining, 8);
}

#[tokio::test]
async fn items_carry_version_state_and_ttl_in_epoch_seconds() {
    let clock = FakeClock::new(T0);
    let (lim, _) = limiter("uploads=user:5/3h", &clock).await;
    let who = user();
    lim.consume(&who, 1).await.unwrap();
    let client = aws_sdk_dynamodb::Client::new(&sdk_config_for(&endpoint()).await);
    let key = StateKey::user(&who.user);
    let item = client
        .get_item()
        .table_name(table().await)
        .key("pk", AttributeValue::S(key.as_str().to_owned()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(key.as_str().starts_with("user#"));
    assert!(item["ver"].as_n().unwrap().parse::<u64>().is_ok());
    assert!(item["st"].as_b().unwrap().as_ref().len() < 40);
    let expire: u64 = item["expireAt"].as_n().unwrap().parse().unwrap();
    assert_eq!(expire, (clock.now().0 + 3 * 3_600_000) / 1000);
    let ttl = client
        .describe_time_to_live()
        .table_name(table().await)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expireAt"));
    assert_eq!(
        ttl.time_to_live_status().map(|s| s.as_str()),
        Some("ENABLED")
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_transient_store_error() {
    let store = unreachable_store().await;
    let lim = Limiter::new(
        Arc::new("uploads=user:5/1h".parse::<Policy>().unwrap()),
        store,
        FakeClock::new(T0),
    );
    let started = std::time::Instant::now();
    let err = lim.consume(&user(), 1).await.unwrap_err();
    eprintln!("unreachable DynamoDB answered in {:?}", started.elapsed());
    assert!(
        matches!(err, LimiterError::Store(StoreError::Unavailable(_))),
        "{err:?}"
    );
    assert!(err.is_transient());
}

/// Settlement (upload mode) on DynamoDB: the grant that reserves is the
/// decision's own single write; settling the object, in another process
/// (the settle function: its own client and cache), is one consistent
/// read and one conditional write of the user's item; a redelivered event
/// is one read and no write; and handing back an unused reservation costs
/// nothing extra: it rides on the user's next decision's write.
#[tokio::test]
async fn settling_is_one_read_and_one_write_and_a_refund_costs_no_call() {
    use uploadgate_core::conformance::ports::{TestHandOff, TestQuarantine, uuid_v7};
    use uploadgate_core::settle::{Landed, Settle, Settler, Verdict};
    use uploadgate_core::usage::MemoryLedger;
    use uploadgate_core::{Charge, ObjectKey, ReservationRequest};

    const TTL: Duration = Duration::from_secs(300);
    const GRACE: Duration = Duration::from_secs(900);
    let clock = FakeClock::new(T0);
    let (gate, gate_calls) = limiter("uploads=user:3/1h", &clock).await;
    let gate = gate.with_settlement(Some(GRACE));
    let (other, settle_calls) = limiter("uploads=user:3/1h", &clock).await;
    let settler = Settler::new(
        other.with_settlement(Some(GRACE)),
        MemoryLedger::new(),
        TestHandOff::default(),
        TestQuarantine::default(),
        "uploads/",
        TTL,
    )
    .unwrap();
    let mut who = user();
    who.ip = None;
    let grant = |n: u8| {
        let now = clock.now();
        let (unique, text) = uuid_v7(now, n);
        let charge = Charge {
            size: 10,
            reservation: Some(ReservationRequest {
                unique,
                expires_at: Timestamp(now.as_millis() + TTL.as_millis() as u64),
                content_type: "application/pdf".into(),
                checksum: None,
            }),
            ..Charge::default()
        };
        let landed = Landed {
            bucket: "b".into(),
            key: ObjectKey::for_upload("uploads/", &who.user, &text, "a.pdf").into_string(),
            size: 10,
            content_type: Some("application/pdf".into()),
            checksum_sha256: None,
            created_at: now,
        };
        (charge, landed)
    };

    let (charge, landed) = grant(1);
    assert!(gate.charge(&who, &charge).await.unwrap().allowed);
    assert_eq!(gate_calls.take(), ["PutItem"]);
    assert_eq!(
        settler.settle(&landed).await.unwrap(),
        Verdict::Accepted { late: false }
    );
    assert_eq!(settle_calls.take(), ["GetItem", "PutItem"]);
    assert_eq!(settler.settle(&landed).await.unwrap(), Verdict::Duplicate);
    assert_eq!(settle_calls.take(), ["GetItem"]);

    // An unused grant: handed back inside the decision after TTL + grace.
    let (unused, _) = grant(2);
    assert!(gate.charge(&who, &unused).await.unwrap().allowed);
    // (The settler wrote since the gate last saw the key: one failed
    // conditional write handed back the item, then the write.)
    assert_eq!(gate_calls.take(), ["PutItem", "PutItem"]);
    clock.advance(TTL + GRACE + Duration::from_secs(1));
    let d = gate.consume(&who, 10).await.unwrap();
    assert!(d.allowed);
    // 3 allowed: the settled one, the refunded one no more, this one.
    assert_eq!(d.limits[0].remaining, 1);
    assert_eq!(gate_calls.take(), ["PutItem"]);
}
