//! The client the store runs on, and creating a table for local use (in AWS,
//! Terraform owns the table).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification,
};

use crate::{EXPIRE_AT, PK};

/// A DynamoDB client for the store, from the standard AWS configuration
/// (`AWS_REGION`, `AWS_ENDPOINT_URL_DYNAMODB`, the credentials chain).
///
/// Decisions sit on a user's request path, so the client fails fast: 1 s to
/// connect, 1 s per attempt, 3 attempts (the SDK retries throttling itself,
/// from 25 ms with jitter), 3 s in all. Past that the store reports itself
/// unavailable and the gate answers 503 (or admits, with fail-open).
pub fn sdk_client(sdk: &aws_config::SdkConfig) -> Client {
    Client::from_conf(client_config(sdk).build())
}

/// The configuration [`sdk_client`] uses, to add to (tests add a call
/// counter).
pub fn client_config(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::from(sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(1))
                .operation_timeout(Duration::from_secs(3))
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(25))
                .with_max_backoff(Duration::from_millis(500)),
        )
}

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
