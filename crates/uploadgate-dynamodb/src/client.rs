//! The DynamoDB client the store runs on.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;

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
