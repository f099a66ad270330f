//! Creating the tables for local use and tests (in AWS, Terraform owns
//! them).
//!
//! Behind the `admin` feature: the `uploadgate` command needs it, the
//! Lambda function does not, so its role is never granted table actions.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification,
};

use crate::{EXPIRE_AT, PK};

/// Why the table could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} table `{table}`: {detail}")]
pub struct TableError {
    action: &'static str,
    table: String,
    detail: String,
}

impl TableError {
    fn new(action: &'static str, table: &str, e: &dyn std::error::Error) -> Self {
        TableError {
            action,
            table: table.to_owned(),
            detail: DisplayErrorContext(e).to_string(),
        }
    }
}

/// Waits until `table` is active (creation is asynchronous in AWS), up to
/// a minute, and returns its description.
async fn wait_active(
    client: &Client,
    table: &str,
) -> Result<Option<aws_sdk_dynamodb::types::TableDescription>, TableError> {
    let mut last = None;
    for _ in 0..120 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| TableError::new("describe", table, &e))?;
        let active = out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active);
        last = out.table;
        if active {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(last)
}

/// What [`create_table`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The table was created.
    New,
    /// It existed; TTL is now on `expireAt` either way.
    Existing,
}

/// Creates the table (on-demand billing, `pk` string hash key) if it does not
/// exist, waits until it is active, and turns TTL on for `expireAt`.
pub async fn create_table(client: &Client, table: &str) -> Result<Created, TableError> {
    let err = |action, e: &dyn std::error::Error| TableError::new(action, table, e);
    let created = match client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(PK)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| err("describe", &e))?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(PK)
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| err("describe", &e))?,
        )
        .send()
        .await
    {
        Ok(_) => Created::New,
        Err(e) if e.code() == Some("ResourceInUseException") => Created::Existing,
        Err(e) => return Err(err("create", &e)),
    };
    wait_active(client, table).await?;
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| err("read TTL of", &e))?;
    let on = ttl
        .time_to_live_description()
        .is_some_and(|d| d.attribute_name() == Some(EXPIRE_AT));
    if !on {
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(EXPIRE_AT)
                    .build()
                    .map_err(|e| err("describe", &e))?,
            )
            .send()
            .await
            .map_err(|e| err("enable TTL on", &e))?;
    }
    Ok(created)
}

/// Creates the usage table (on-demand billing; `user` string hash key,
/// `sk` string range key, global index `by_month` on `month` and `sk`
/// projecting everything: the layout of [`crate::usage`]) if it does not
/// exist, and waits until it is active. An existing table without the
/// index is refused: the ledger could not read all users from it.
#[cfg(feature = "ledger")]
pub async fn create_usage_table(client: &Client, table: &str) -> Result<Created, TableError> {
    use aws_sdk_dynamodb::types::{GlobalSecondaryIndex, Projection, ProjectionType};

    use crate::usage::{BY_MONTH, MONTH, SORT_KEY, USER};

    let err = |action, e: &dyn std::error::Error| TableError::new(action, table, e);
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| err("describe", &e))
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| err("describe", &e))
    };
    let by_month = GlobalSecondaryIndex::builder()
        .index_name(BY_MONTH)
        .key_schema(key(MONTH, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| err("describe", &e))?;
    let created = match client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(USER)?)
        .attribute_definitions(attr(SORT_KEY)?)
        .attribute_definitions(attr(MONTH)?)
        .key_schema(key(USER, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?)
        .global_secondary_indexes(by_month)
        .send()
        .await
    {
        Ok(_) => Created::New,
        Err(e) if e.code() == Some("ResourceInUseException") => Created::Existing,
        Err(e) => return Err(err("create", &e)),
    };
    let description = wait_active(client, table).await?;
    let indexed = description.as_ref().is_some_and(|t| {
        t.global_secondary_indexes()
            .iter()
            .any(|i| i.index_name() == Some(BY_MONTH))
    });
    if !indexed {
        return Err(TableError {
            action: "use",
            table: table.to_owned(),
            detail: format!("it has no global secondary index `{BY_MONTH}`"),
        });
    }
    Ok(created)
}
