//! Helpers for tests that need S3 and SQS (feature `test-util`): find
//! LocalStack, or start it through `e2e/scripts/localstack.sh`, and set up a
//! bucket whose `ObjectCreated` events go to a queue, as Terraform does in
//! AWS.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;

/// LocalStack's endpoint: `LOCALSTACK_ENDPOINT` if set (`./scripts/test`
/// starts it and sets it), otherwise the instance `e2e/scripts/localstack.sh
/// start` finds or starts (idempotent; it stays up for the next run, and
/// `e2e/scripts/localstack.sh stop` ends it). Panics with the script's
/// output if it cannot start.
pub fn endpoint() -> String {
    static ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            if let Ok(e) = std::env::var("LOCALSTACK_ENDPOINT") {
                return e;
            }
            let script = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../e2e/scripts/localstack.sh"
            );
            let out = std::process::Command::new("bash")
                .args([script, "start"])
                .output()
                .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("export LOCALSTACK_ENDPOINT="))
                .filter(|_| out.status.success())
                .unwrap_or_else(|| {
                    panic!(
                        "e2e/scripts/localstack.sh start failed:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                })
                .to_owned()
        })
        .clone()
}

/// SDK configuration for LocalStack: region us-east-1 and the credentials
/// it verifies signatures with (`test`/`test`).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region("us-east-1")
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint())
        .load()
        .await
}

/// A fresh bucket that sends `s3:ObjectCreated:*` under `prefix` to a fresh
/// queue, and a fresh queue for accepted uploads.
#[derive(Clone, Debug)]
pub struct NotifyingBucket {
    /// The bucket.
    pub bucket: String,
    /// The URL of the queue of its events.
    pub events: String,
    /// The URL of the accepted queue.
    pub accepted: String,
}

fn fresh(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "ug-{what}-{:x}-{n}-{:x}",
        std::process::id(),
        nanos & 0xff_ffff_ffff
    )
}

/// Creates a [`NotifyingBucket`] (panics on failure: a failed setup is a
/// failed test).
pub async fn notifying_bucket(sdk: &SdkConfig, prefix: &str) -> NotifyingBucket {
    let s3 = aws_sdk_s3::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let bucket = fresh("bucket");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let mut urls = Vec::new();
    for what in ["events", "accepted"] {
        let out = sqs
            .create_queue()
            .queue_name(fresh(what))
            .send()
            .await
            .expect("create queue");
        urls.push(out.queue_url().expect("queue url").to_owned());
    }
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&urls[0])
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes");
    let arn = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .expect("queue arn")
        .clone();
    let rule = FilterRule::builder()
        .name(FilterRuleName::Prefix)
        .value(prefix)
        .build();
    let queue = QueueConfiguration::builder()
        .queue_arn(arn)
        .events(Event::from("s3:ObjectCreated:*"))
        .filter(
            NotificationConfigurationFilter::builder()
                .key(S3KeyFilter::builder().filter_rules(rule).build())
                .build(),
        )
        .build()
        .expect("queue configuration");
    s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(queue)
                .build(),
        )
        .send()
        .await
        .expect("bucket notification");
    let mut urls = urls.into_iter();
    NotifyingBucket {
        bucket,
        events: urls.next().unwrap_or_default(),
        accepted: urls.next().unwrap_or_default(),
    }
}
