//! The `bootstrap` of the uploadgate Lambda function (`provided.al2023`).
//!
//! Everything that can be done once is done here, in the init phase, before
//! the runtime loop: configuration, logging, the AWS SDK configuration, the
//! DynamoDB client and store, and the presigner. Each invocation then only
//! runs the router.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use uploadgate_app::{AnyStore, Aws, open_presigner, open_store, telemetry};
use uploadgate_core::{Clock, SystemClock};
use uploadgate_http::{AppState, router};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uploadgate-lambda: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let config = uploadgate_lambda::load_config(|k| std::env::var(k).ok())?;
    telemetry::init(&config)?;
    let aws = Aws::new();
    // `load_config` refuses the local bucket, so there is none to run.
    let (presigner, _) = open_presigner(&config, &aws).await?;
    let store = open_store(&config, &aws).await?;
    if let AnyStore::Memory(_) = store {
        tracing::warn!(
            bucket = %config.bucket,
            "store memory: each function instance counts on its own and forgets on recycling; use dynamodb"
        );
    } else {
        tracing::info!(store = %store.describe(), bucket = %config.bucket, "ready");
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let state = AppState::new(config.gate, store, clock, presigner);
    // In the init phase: the issuer's keys, before the first invocation.
    state.warm_up().await;
    lambda_http::run(uploadgate_lambda::service(router(state)))
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("the Lambda runtime loop failed")
}
