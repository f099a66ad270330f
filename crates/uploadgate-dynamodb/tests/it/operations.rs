//! `OPERATIONS` is true: every code path of the store and of table creation
//! runs through a client that records the operation of each request it
//! sends (from the SDK's own `Metadata`), and what was sent must be exactly
//! what the crate declares. A call added without its entry fails here, and
//! so does an entry whose call is gone.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use uploadgate_core::usage::{Appended, Ledger, UsageQuery, UsageRecord};
use uploadgate_core::{FakeClock, Limiter, Policy, StateKey, Subjects, Timestamp, UserId};
use uploadgate_dynamodb::{
    Created, DEFAULT_DENIAL_TTL, DynamoLedger, DynamoStore, OPERATIONS, create_table,
    create_usage_table,
};

use crate::support::{Calls, counted_client};

const T0: Timestamp = Timestamp(1_800_000_000_000);

fn subjects(user: &str, ip: [u8; 4]) -> Subjects {
    Subjects {
        user: UserId::parse(user).unwrap(),
        ip: Some(IpAddr::V4(Ipv4Addr::from(ip))),
    }
}

/// The workload's steps and what each one sent.
#[derive(Default)]
struct Steps(Vec<(&'static str, Vec<String>)>);

impl Steps {
    fn record(&mut self, step: &'static str, calls: &Calls) {
        self.0.push((step, calls.take()));
    }

    fn performed(&self) -> BTreeSet<&str> {
        self.0
            .iter()
            .flat_map(|(_, ops)| ops.iter().map(String::as_str))
            .collect()
    }
}

#[tokio::test]
async fn the_declared_operations_are_exactly_the_ones_performed() {
    let mut steps = Steps::default();
    let (client, calls) = counted_client().await;
    // A table of its own, so creation really creates and turns TTL on.
    let table = format!("uploadgate-ops-{:016x}", rand::random::<u64>());
    assert_eq!(create_table(&client, &table).await.unwrap(), Created::New);
    steps.record("create the table", &calls);

    let clock = FakeClock::new(T0);
    let store = DynamoStore::new(client.clone(), &table).with_clock(Arc::new(clock.clone()));
    let one_key: Arc<Policy> = Arc::new("uploads=user:2/1h".parse().unwrap());
    let two_keys: Arc<Policy> = Arc::new("uploads=user:2/1h;burst=ip:10/1h".parse().unwrap());
    let lim = Limiter::new(one_key.clone(), store.clone(), clock.clone());
    let pair = Limiter::new(two_keys, store, clock.clone());
    // Another process on the same table: its own client, cache and calls.
    let (other_client, _) = counted_client().await;
    let other = Limiter::new(
        one_key,
        DynamoStore::new(other_client, &table).with_clock(Arc::new(clock.clone())),
        clock.clone(),
    );
    let (alice, bob, carol) = (
        subjects("ops-alice", [192, 0, 2, 1]),
        subjects("ops-bob", [192, 0, 2, 2]),
        subjects("ops-carol", [192, 0, 2, 3]),
    );

    assert!(lim.consume(&alice, 1).await.unwrap().allowed);
    steps.record("consume on a new key", &calls);
    assert!(lim.consume(&alice, 1).await.unwrap().allowed);
    steps.record("consume on a warm key", &calls);

    assert!(other.consume(&bob, 1).await.unwrap().allowed);
    calls.take();
    let d = lim.consume(&bob, 1).await.unwrap();
    assert_eq!((d.allowed, d.attempts), (true, 2));
    steps.record("consume after another process wrote (conflict)", &calls);

    assert!(pair.consume(&carol, 1).await.unwrap().allowed);
    steps.record("consume on two keys", &calls);

    assert!(!lim.consume(&alice, 1).await.unwrap().allowed);
    steps.record("deny on a fresh cached view", &calls);
    clock.advance(DEFAULT_DENIAL_TTL);
    assert!(!lim.consume(&alice, 1).await.unwrap().allowed);
    steps.record("deny on a cached view older than the denial TTL", &calls);

    assert_eq!(lim.peek(&alice).await.unwrap().limits[0].remaining, 0);
    steps.record("peek", &calls);

    assert!(lim.reset(&StateKey::user(&alice.user)).await.unwrap());
    steps.record("reset", &calls);

    let usage = format!("uploadgate-ops-usage-{:016x}", rand::random::<u64>());
    assert_eq!(
        create_usage_table(&client, &usage).await.unwrap(),
        Created::New
    );
    steps.record("create the usage table", &calls);
    let ledger = DynamoLedger::new(client.clone(), &usage);
    let record = UsageRecord {
        user: alice.user.clone(),
        key: "uploads/ops-alice/k".into(),
        bytes: 1,
        content_type: "text/plain".into(),
        tier: None,
        landed_at: T0,
    };
    assert_eq!(ledger.append(&record).await.unwrap(), Appended::New);
    steps.record("append a record", &calls);
    assert_eq!(ledger.append(&record).await.unwrap(), Appended::Duplicate);
    steps.record("append it again", &calls);
    let mine = UsageQuery {
        user: Some(alice.user.clone()),
        ..UsageQuery::default()
    };
    for q in [mine, UsageQuery::default()] {
        let page = ledger.page(&q, None, 10).await.unwrap();
        assert_eq!(page.records, std::slice::from_ref(&record));
    }
    steps.record("a user's page, then all users'", &calls);

    let performed = steps.performed();
    let declared: BTreeSet<&str> = OPERATIONS.iter().map(|o| o.name()).collect();
    let undeclared: Vec<&&str> = performed.difference(&declared).collect();
    let unperformed: Vec<&&str> = declared.difference(&performed).collect();
    assert!(
        undeclared.is_empty() && unperformed.is_empty(),
        "performed but not in OPERATIONS: {undeclared:?}; in OPERATIONS but never \
         performed: {unperformed:?}; steps: {:#?}",
        steps.0
    );
}

#[test]
fn each_operation_names_its_service_package_and_action() {
    assert!(!OPERATIONS.is_empty());
    for op in OPERATIONS {
        assert_eq!(
            (op.package(), op.service()),
            ("uploadgate-dynamodb", "dynamodb"),
            "{op:?}"
        );
        assert!(op.permission().starts_with("dynamodb:"), "{op:?}");
        // The only features of this crate that gate calls.
        assert!(
            matches!(op.feature(), None | Some("admin" | "ledger")),
            "{op:?}"
        );
    }
    // What the Lambda function (built without `admin` and `ledger`) can
    // do: item reads and writes, never a delete or table administration.
    let lambda: BTreeSet<&str> = OPERATIONS
        .iter()
        .filter(|o| o.feature().is_none())
        .map(|o| o.permission())
        .collect();
    assert_eq!(
        lambda,
        BTreeSet::from(["dynamodb:GetItem", "dynamodb:PutItem"])
    );
}
