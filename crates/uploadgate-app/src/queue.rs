//! Upload mode on S3: S3's `ObjectCreated` events, through the SQS queue
//! `UPLOADGATE_SETTLE_QUEUE_URL`, settled by the core's settle step on the
//! gate's own state (`uploadgate_settle`), and accepted uploads handed to
//! `UPLOADGATE_ACCEPTED_QUEUE_URL` (or logged without it). `uploadgate
//! settle` runs the poller on its own; `uploadgate serve` with target `s3`
//! runs it beside the API.

use std::sync::Arc;

use uploadgate_core::Clock;
use uploadgate_core::settle::{Accepted, HandOff, PortError, Settler};
use uploadgate_http::metrics::{self, MetricsSink};
use uploadgate_settle::{Observer, Poller, S3Objects, Settlement, SqsHandOff};

use crate::config::Config;
use crate::verdict::{self, LogHandOff};
use crate::wiring::{AnyLedger, AnyStore, Aws, GateLimiter, OpenError};

/// Where accepted uploads go: the processing app's queue, or a log line.
#[derive(Clone, Debug)]
pub enum AnyHandOff {
    /// A log line (`upload accepted`).
    Log(LogHandOff),
    /// One JSON message per upload on an SQS queue.
    Sqs(SqsHandOff),
}

impl HandOff for AnyHandOff {
    async fn send(&self, accepted: &Accepted) -> Result<(), PortError> {
        match self {
            AnyHandOff::Log(l) => l.send(accepted).await,
            AnyHandOff::Sqs(q) => q.send(accepted).await,
        }
    }
}

/// The settler of S3's events.
pub type QueueSettler = Settler<AnyStore, Arc<dyn Clock>, AnyLedger, AnyHandOff, S3Objects>;

/// The settle step of S3's events, on `limiter` (the gate's, or one on
/// the same store) into `ledger`, handing off to
/// `UPLOADGATE_ACCEPTED_QUEUE_URL` (or a log line).
pub async fn open_settlement(
    config: &Config,
    aws: &Aws,
    limiter: GateLimiter,
    ledger: AnyLedger,
) -> Result<Settlement<QueueSettler>, OpenError> {
    let sdk = aws.config().await;
    let s3 = aws_sdk_s3::Client::new(sdk);
    let hand_off = match &config.accepted_queue_url {
        Some(url) => AnyHandOff::Sqs(SqsHandOff::new(aws_sdk_sqs::Client::new(sdk), url)),
        None => AnyHandOff::Log(LogHandOff::default()),
    };
    let clock = Arc::clone(limiter.clock());
    let settler = Settler::new(
        limiter,
        ledger,
        hand_off,
        S3Objects::new(s3.clone()),
        config.gate.key_prefix.clone(),
        config.url_ttl,
    )
    .map_err(|_| OpenError::UploadMode("the limiter in upload mode"))?;
    let sink = config
        .gate
        .emf_metrics
        .then(|| Arc::new(metrics::Stdout) as Arc<dyn MetricsSink>);
    let observer: Observer = Arc::new(move |landed, result, latency| {
        verdict::observe(sink.as_deref(), clock.as_ref(), landed, result, latency);
    });
    Ok(Settlement::new(settler, S3Objects::new(s3)).with_observer(observer))
}

/// The poller of `UPLOADGATE_SETTLE_QUEUE_URL`, running
/// [`open_settlement`]'s settle step on each message.
pub async fn open_poller(
    config: &Config,
    aws: &Aws,
    limiter: GateLimiter,
    ledger: AnyLedger,
) -> Result<Poller<QueueSettler>, OpenError> {
    let queue_url = config
        .settle_queue_url
        .clone()
        .ok_or(OpenError::UploadMode(
            "the settle queue (UPLOADGATE_SETTLE_QUEUE_URL)",
        ))?;
    let settlement = open_settlement(config, aws, limiter, ledger).await?;
    let sqs = aws_sdk_sqs::Client::new(aws.config().await);
    Ok(Poller::new(settlement, sqs, queue_url))
}
