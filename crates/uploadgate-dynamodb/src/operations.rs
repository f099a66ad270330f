//! The DynamoDB operations this crate performs, declared next to it.

use uploadgate_core::Operation;

/// Every DynamoDB operation this crate performs, with the IAM action that
/// authorises it and the cargo feature that compiles the call in.
///
/// Keep it next to the calls: `tests/it/operations.rs` runs every code path
/// (with all features) through a client that records each operation it
/// sends, and fails on a call missing here or an entry nothing performs.
/// An entry's feature is what the `#[cfg]` around its call says; the
/// deployment checks use it to tell what a build without the feature can
/// do.
pub const OPERATIONS: &[Operation] = &[
    // `get`: the consistent read behind `load` (peek) and behind a denial
    // on a cached view older than the denial TTL.
    dynamodb("GetItem", "dynamodb:GetItem"),
    // `swap_one`: the conditional write of a decision on one key.
    dynamodb("PutItem", "dynamodb:PutItem"),
    // `swap_many`: user and ip keys in one transaction of `Put`s. A
    // transaction has no IAM action of its own: each `Put` in it is
    // authorised as a `PutItem` on its item (AWS, "Using IAM with DynamoDB
    // transactions"). An `Update`, `Delete` or `ConditionCheck` added to it
    // needs an entry of its own.
    dynamodb("TransactWriteItems", "dynamodb:PutItem"),
    // `Reset::delete` (`quota reset`).
    dynamodb("DeleteItem", "dynamodb:DeleteItem").behind_feature("admin"),
    // `create_table` (`uploadgate table create`), in `table.rs`.
    dynamodb("CreateTable", "dynamodb:CreateTable").behind_feature("admin"),
    dynamodb("DescribeTable", "dynamodb:DescribeTable").behind_feature("admin"),
    dynamodb("DescribeTimeToLive", "dynamodb:DescribeTimeToLive").behind_feature("admin"),
    dynamodb("UpdateTimeToLive", "dynamodb:UpdateTimeToLive").behind_feature("admin"),
    // `DynamoLedger::append`, in `usage.rs`: the record and its month's
    // marker, on the usage table (a resource of its own).
    dynamodb("PutItem", "dynamodb:PutItem").behind_feature("ledger"),
    // `DynamoLedger::page`: a user's partition, the month list, and the
    // index `by_month` (an index is authorised as its table's `/index/*`).
    dynamodb("Query", "dynamodb:Query").behind_feature("ledger"),
];

const fn dynamodb(name: &'static str, action: &'static str) -> Operation {
    Operation::new(env!("CARGO_PKG_NAME"), "dynamodb", name, action)
}
