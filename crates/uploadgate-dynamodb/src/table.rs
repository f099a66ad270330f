//! Creating a table for local use (in AWS, Terraform owns the table).
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
    let err = |action: &'static str, e: &dyn std::error::Error| TableError {
        action,
        table: table.to_owned(),
        detail: DisplayErrorContext(e).to_string(),
    };
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
    // Creation is asynchronous in AWS; wait for ACTIVE (up to a minute).
    for _ in 0..120 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| err("describe", &e))?;
        if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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
