//! The queue of S3 events: each message settled as a whole; the poller
//! that `uploadgate settle` and `uploadgate serve` (target `s3`) run, and
//! the batch answer of the settle Lambda function ([`settle_batch`]).
//!
//! A message is done when every object it names is settled (accepted,
//! quarantined or a duplicate) or gone; only then is it deleted. Anything
//! else leaves it on the queue: SQS delivers it again after its visibility
//! timeout, and after the queue's receive count moves it to the dead-letter
//! queue. Every step of settling is safe to repeat, so a message that half
//! succeeded is simply settled again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use uploadgate_core::settle::{Landed, PortError, Settle, SettleError, Verdict};

use crate::events::{self, EventError, Notification};
use crate::objects::S3Objects;

/// Told of each object settled (for logs and metrics): what landed, what
/// settling came to, and how long it took.
pub type Observer = Arc<dyn Fn(&Landed, &Result<Verdict, SettleError>, Duration) + Send + Sync>;

/// Why a message is not done (it stays on the queue).
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// Not an S3 event notification (never will be: it goes to the
    /// dead-letter queue after its receive count).
    #[error(transparent)]
    Event(#[from] EventError),
    /// Reading the object from S3 failed.
    #[error(transparent)]
    Object(PortError),
    /// Settling an object failed.
    #[error("settling {key}: {source}")]
    Settle {
        /// The object.
        key: String,
        /// Why.
        #[source]
        source: SettleError,
    },
}

/// Settles the S3 event notifications of queue messages.
pub struct Settlement<T> {
    settler: T,
    objects: S3Objects,
    observer: Option<Observer>,
}

impl<T: Settle> Settlement<T> {
    /// Settles with `settler`, reading objects through `objects`.
    pub fn new(settler: T, objects: S3Objects) -> Self {
        Settlement {
            settler,
            objects,
            observer: None,
        }
    }

    /// Also tells `observer` of every object settled.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The settler.
    pub fn settler(&self) -> &T {
        &self.settler
    }

    /// Settles every object one message body names, in order; the verdicts
    /// of the objects still there (a deleted object has none).
    pub async fn message(&self, body: &str) -> Result<Vec<Verdict>, MessageError> {
        let created = match events::parse(body)? {
            Notification::Test => return Ok(Vec::new()),
            Notification::Created(c) => c,
        };
        let mut verdicts = Vec::with_capacity(created.len());
        for c in &created {
            let Some(landed) = self.objects.landed(c).await.map_err(MessageError::Object)? else {
                tracing::info!(bucket = %c.bucket, key = %c.key, "object gone before it was settled; left alone");
                continue;
            };
            let started = Instant::now();
            // Boxed: the settler's future is an opaque type of a trait
            // method, and spawning a task that awaits it unboxed trips
            // rustc's higher-ranked `Send` check (rust-lang/rust#110338).
            let settling: Pin<Box<dyn Future<Output = _> + Send + '_>> =
                Box::pin(self.settler.settle(&landed));
            let result = settling.await;
            if let Some(observe) = &self.observer {
                observe(&landed, &result, started.elapsed());
            }
            match result {
                Ok(v) => verdicts.push(v),
                Err(source) => {
                    return Err(MessageError::Settle {
                        key: landed.key,
                        source,
                    });
                }
            }
        }
        Ok(verdicts)
    }
}

/// The answer to one batch of queue messages a Lambda event source
/// mapping delivers (`ReportBatchItemFailures`): every message not done is
/// listed by id, so only those are delivered again.
pub async fn settle_batch<T: Settle>(
    settlement: &Settlement<T>,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for m in event.records {
        let id = m.message_id.unwrap_or_default();
        if let Err(e) = settlement
            .message(m.body.as_deref().unwrap_or_default())
            .await
        {
            tracing::error!(message_id = %id, error = %e, "message not settled; reported as a batch item failure");
            response.add_failure(id);
        }
    }
    response
}

/// What one poll did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Polled {
    /// Messages received.
    pub received: usize,
    /// Messages settled and deleted.
    pub done: usize,
    /// Messages left for redelivery.
    pub failed: usize,
}

/// Long-polls one SQS queue of S3 events and settles them.
pub struct Poller<T> {
    settlement: Settlement<T>,
    client: aws_sdk_sqs::Client,
    queue_url: String,
    wait: Duration,
}

/// The longest long poll SQS allows.
const MAX_WAIT: Duration = Duration::from_secs(20);
/// The most messages one receive returns.
const BATCH: i32 = 10;

impl<T: Settle> Poller<T> {
    /// Polls `queue_url` through `client`, waiting up to 20 s per receive.
    pub fn new(
        settlement: Settlement<T>,
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
    ) -> Self {
        Poller {
            settlement,
            client,
            queue_url: queue_url.into(),
            wait: MAX_WAIT,
        }
    }

    /// Waits at most `wait` (whole seconds, up to 20) for messages per
    /// receive.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait.min(MAX_WAIT);
        self
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// The settlement it runs.
    pub fn settlement(&self) -> &Settlement<T> {
        &self.settlement
    }

    /// Receives once (up to 10 messages), settles each, and deletes those
    /// that are done.
    pub async fn poll_once(&self) -> Result<Polled, PortError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(BATCH)
            .wait_time_seconds(i32::try_from(self.wait.as_secs()).unwrap_or(20))
            .send()
            .await
            .map_err(|e| crate::port_error("SQS", crate::SQS_REFUSALS, "ReceiveMessage", e))?;
        let messages = out.messages();
        let mut polled = Polled {
            received: messages.len(),
            ..Polled::default()
        };
        let mut done = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let id = m.message_id().unwrap_or("?");
            match self.settlement.message(m.body().unwrap_or_default()).await {
                Ok(_) => {
                    if let Some(handle) = m.receipt_handle() {
                        done.push(
                            DeleteMessageBatchRequestEntry::builder()
                                .id(i.to_string())
                                .receipt_handle(handle)
                                .build()
                                .map_err(|e| PortError {
                                    what: "DeleteMessageBatch: cannot build an entry".into(),
                                    transient: false,
                                    source: Some(Box::new(e)),
                                })?,
                        );
                    }
                }
                Err(e) => {
                    polled.failed += 1;
                    tracing::error!(message_id = id, error = %e, "message not settled; it stays on the queue for redelivery");
                }
            }
        }
        if !done.is_empty() {
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(done))
                .send()
                .await
                .map_err(|e| {
                    crate::port_error("SQS", crate::SQS_REFUSALS, "DeleteMessageBatch", e)
                })?;
            polled.done = out.successful().len();
            for f in out.failed() {
                tracing::warn!(
                    entry = f.id(),
                    code = f.code(),
                    "message settled but not deleted; it will be settled again (a duplicate)"
                );
            }
        }
        Ok(polled)
    }

    /// Polls until `stop` resolves, backing off (1 s, doubling to 30 s)
    /// while the queue cannot be reached.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut pause = Duration::from_secs(1);
        loop {
            tokio::select! {
                () = &mut stop => return,
                polled = self.poll_once() => match polled {
                    Ok(_) => pause = Duration::from_secs(1),
                    Err(e) => {
                        tracing::error!(queue = %self.queue_url, error = %e, "cannot receive from the settle queue; trying again in {pause:?}");
                        tokio::select! {
                            () = &mut stop => return,
                            () = tokio::time::sleep(pause) => {}
                        }
                        pause = (pause * 2).min(Duration::from_secs(30));
                    }
                },
            }
        }
    }
}
