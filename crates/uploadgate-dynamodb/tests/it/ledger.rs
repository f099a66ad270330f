//! The usage ledger on DynamoDB (moto's server): the shared ledger
//! conformance suite, each scenario on a table of its own (a read over all
//! users must see only its records), and what is specific to this ledger:
//! the table it creates, and the month markers.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeyType, ProjectionType};
use uploadgate_core::usage::{Appended, Ledger, UsageQuery, UsageRecord};
use uploadgate_core::{Timestamp, UserId};
use uploadgate_dynamodb::usage::{BY_MONTH, MONTHS_PARTITION};
use uploadgate_dynamodb::{Created, DynamoLedger, create_usage_table};

use crate::support::counted_client;

/// A fresh usage table and a ledger on it.
pub async fn fresh_ledger() -> (DynamoLedger, Client) {
    let (client, _) = counted_client().await;
    let table = format!("uploadgate-usage-{:016x}", rand::random::<u64>());
    assert_eq!(
        create_usage_table(&client, &table).await.expect("create"),
        Created::New
    );
    (DynamoLedger::new(client.clone(), table), client)
}

uploadgate_core::ledger_conformance_tests!(|| async { crate::ledger::fresh_ledger().await.0 });

fn record(at: u64, key: &str) -> UsageRecord {
    UsageRecord {
        user: UserId::parse("alice").unwrap(),
        key: key.to_owned(),
        bytes: 42,
        content_type: "image/png".into(),
        tier: Some("pro".into()),
        landed_at: Timestamp(at),
    }
}

#[tokio::test]
async fn the_usage_table_has_the_documented_keys_and_index() {
    let (ledger, client) = fresh_ledger().await;
    let table = ledger.table();
    assert_eq!(
        create_usage_table(&client, table).await.unwrap(),
        Created::Existing
    );
    let out = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap();
    let t = out.table().unwrap();
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<(String, KeyType)> {
        schema
            .iter()
            .map(|k| (k.attribute_name().to_owned(), k.key_type().clone()))
            .collect()
    };
    assert_eq!(
        keys(t.key_schema()),
        [
            ("user".into(), KeyType::Hash),
            ("sk".into(), KeyType::Range)
        ]
    );
    let gsi = t.global_secondary_indexes();
    assert_eq!(gsi.len(), 1);
    assert_eq!(gsi[0].index_name(), Some(BY_MONTH));
    assert_eq!(
        keys(gsi[0].key_schema()),
        [
            ("month".into(), KeyType::Hash),
            ("sk".into(), KeyType::Range)
        ]
    );
    assert_eq!(
        gsi[0].projection().and_then(|p| p.projection_type()),
        Some(&ProjectionType::All)
    );
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
    );
}

/// The limits table is not a usage table: using it is refused, not
/// silently read without its index.
#[tokio::test]
async fn a_table_without_the_month_index_is_refused() {
    let (client, _) = counted_client().await;
    let table = crate::support::table().await;
    let err = create_usage_table(&client, table).await.unwrap_err();
    assert!(err.to_string().contains("by_month"), "{err}");
}

/// Items as stored: the record under its user with `sk` and `month`, and
/// one marker per month in the months partition, outside the index.
#[tokio::test]
async fn records_and_month_markers_are_stored_as_documented() {
    let (ledger, client) = fresh_ledger().await;
    // 2027-01-31T23:59:59.999Z, then 2027-02-01 twice.
    let records = [
        record(1_801_439_999_999, "uploads/alice/a"),
        record(1_801_440_000_000, "uploads/alice/b"),
        record(1_801_440_000_001, "uploads/alice/c"),
    ];
    for r in &records {
        assert_eq!(ledger.append(r).await.unwrap(), Appended::New);
    }
    let get = |user: &str, sk: &str| {
        client
            .get_item()
            .table_name(ledger.table())
            .key("user", AttributeValue::S(user.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .send()
    };
    let item = get("alice", "00000001801439999999#uploads/alice/a")
        .await
        .unwrap()
        .item
        .unwrap_or_default();
    let want: HashMap<String, AttributeValue> = [
        ("user", AttributeValue::S("alice".into())),
        (
            "sk",
            AttributeValue::S("00000001801439999999#uploads/alice/a".into()),
        ),
        ("month", AttributeValue::S("2027-01".into())),
        ("bytes", AttributeValue::N("42".into())),
        ("contentType", AttributeValue::S("image/png".into())),
        ("tier", AttributeValue::S("pro".into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(item, want);
    let months = client
        .query()
        .table_name(ledger.table())
        .key_condition_expression("#u = :m")
        .expression_attribute_names("#u", "user")
        .expression_attribute_values(":m", AttributeValue::S(MONTHS_PARTITION.into()))
        .send()
        .await
        .unwrap();
    let months: Vec<&str> = months
        .items()
        .iter()
        .map(|i| i["sk"].as_s().unwrap().as_str())
        .collect();
    assert_eq!(months, ["2027-01", "2027-02"]);
    // A read over all users sees the records and not the markers.
    let page = ledger.page(&UsageQuery::default(), None, 10).await.unwrap();
    assert_eq!((page.records, page.next), (records.to_vec(), None));
}
