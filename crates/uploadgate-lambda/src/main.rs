//! The `bootstrap` of the uploadgate Lambda function (`provided.al2023`).
//!
//! Everything that can be done once is done here, in the init phase, before
//! the runtime loop: configuration, logging, the AWS SDK configuration, the
//! DynamoDB client and store, and the presigner. Each invocation then only
//! runs the router.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use uploadgate_core::{Clock, MemoryStore, Store, SystemClock};
use uploadgate_dynamodb::DynamoStore;
use uploadgate_http::config::StoreKind;
use uploadgate_http::{AppState, Config, router};
use uploadgate_s3::Presigner;

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
    uploadgate_http::telemetry::init(&config)?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let presigner = Presigner::from_sdk_config(&sdk, config.bucket.clone(), config.url_ttl);
    presigner.warm_up().await;
    match config.store.clone() {
        StoreKind::Dynamodb { table, denial_ttl } => {
            tracing::info!(table = %table, bucket = %config.bucket, "store dynamodb");
            let client = uploadgate_dynamodb::sdk_client(&sdk);
            let store = DynamoStore::new(client, table).with_denial_ttl(denial_ttl);
            serve(config, store, presigner).await
        }
        StoreKind::Memory => {
            tracing::warn!(
                bucket = %config.bucket,
                "store memory: each function instance counts on its own and forgets on recycling; use dynamodb"
            );
            serve(config, MemoryStore::new(), presigner).await
        }
        // `load_config` refuses the file store.
        StoreKind::File => anyhow::bail!("the file store cannot run in Lambda"),
    }
}

async fn serve<S: Store>(config: Config, store: S, presigner: Presigner) -> Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let state = AppState::new(config.gate, store, clock, presigner);
    lambda_http::run(uploadgate_lambda::service(router(state)))
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("the Lambda runtime loop failed")
}
