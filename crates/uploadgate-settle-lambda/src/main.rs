//! The `bootstrap` of the settle function (`provided.al2023`).
//!
//! The init phase opens everything once: configuration, logging, the AWS
//! configuration, the store, the usage ledger and the settle step. Each
//! invocation is one batch of queue messages, answered with the ids of
//! those not settled (`ReportBatchItemFailures`).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use lambda_runtime::{LambdaEvent, service_fn};
use uploadgate_app::queue::open_settlement;
use uploadgate_app::{Aws, open_ledger, open_store, telemetry};
use uploadgate_core::{Clock, SystemClock};
use uploadgate_settle::{SqsBatchResponse, SqsEvent, settle_batch};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uploadgate-settle: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let config = uploadgate_settle_lambda::load_config(|k| std::env::var(k).ok())?;
    telemetry::init(&config)?;
    let aws = Aws::new();
    let store = open_store(&config, &aws).await?;
    let ledger = open_ledger(&config, &aws, &store)
        .await?
        .context("the settle function needs UPLOADGATE_USAGE_TABLE")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let limiter = uploadgate_http::limiter(&config.gate, store, clock);
    let settlement = open_settlement(&config, &aws, limiter, ledger).await?;
    tracing::info!(
        bucket = %config.bucket,
        accepted_queue = config.accepted_queue_url.as_deref().unwrap_or("(log)"),
        "ready"
    );
    let settlement = &settlement;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(settle_batch(settlement, event.payload).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("the Lambda runtime loop failed")
}
