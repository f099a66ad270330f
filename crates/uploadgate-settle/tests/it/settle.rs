//! Settling what lands in S3: the upload through its URL is accepted once
//! and handed off once, a duplicated event settles nothing again, and an
//! object that does not match its reservation (or is no gate upload at all)
//! is tagged and never handed off. Each test has its own bucket and queues.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use base64::Engine as _;
use uploadgate_core::settle::{QuarantineReason, Settler, Verdict};
use uploadgate_core::usage::{Ledger, MemoryLedger, UsageQuery};
use uploadgate_core::{
    Charge, Limiter, MemoryStore, ObjectKey, Policy, ReservationRequest, Subjects, SystemClock,
    Timestamp, UserId,
};
use uploadgate_s3::{ChecksumSha256, Presigner, PutSpec};
use uploadgate_settle::test_util::{self, NotifyingBucket};
use uploadgate_settle::{
    OPERATIONS, Observer, Polled, Poller, QUARANTINE_TAG, S3Objects, Settlement, SqsHandOff,
    settle_batch,
};

const PREFIX: &str = "uploads/";
const TTL: Duration = Duration::from_secs(60);

type TestSettler = Settler<MemoryStore, SystemClock, MemoryLedger, SqsHandOff, S3Objects>;

/// Records the operation of every request a client sends.
#[derive(Clone, Debug, Default)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    /// The operations sent since the last call, in order.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "OperationRecorder"
    }

    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            self.0.lock().unwrap().push(m.name().to_owned());
        }
        Ok(())
    }
}

/// A bucket that notifies a queue of every object created under
/// `uploads/`, an accepted queue, and the gate's limiter in upload mode
/// (`uploads=user:2/1h`) with a settlement on them.
struct World {
    bucket: String,
    events: String,
    accepted: String,
    /// The test's own clients (not recorded).
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    limiter: Limiter<MemoryStore, SystemClock>,
    presigner: Presigner,
    /// The settlement, polling the event queue.
    poller: Poller<TestSettler>,
    /// What the crate's clients sent.
    calls: Calls,
    /// Every verdict, in order.
    verdicts: Arc<Mutex<Vec<(String, Verdict)>>>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    d.as_ref().try_into().unwrap()
}

impl World {
    async fn new() -> World {
        let sdk = test_util::sdk_config().await;
        let s3 = aws_sdk_s3::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let NotifyingBucket {
            bucket,
            events,
            accepted,
        } = test_util::notifying_bucket(&sdk, PREFIX).await;

        // The crate's own clients, recorded.
        let calls = Calls::default();
        let crate_s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .interceptor(calls.clone())
                .build(),
        );
        let crate_sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .interceptor(calls.clone())
                .build(),
        );
        let crate_sqs_poll = crate_sqs.clone();
        let policy: Policy = "uploads=user:2/1h".parse().unwrap();
        let limiter = Limiter::new(Arc::new(policy), MemoryStore::new(), SystemClock)
            .with_settlement(Some(Duration::from_secs(60)));
        let settler = Settler::new(
            limiter.clone(),
            MemoryLedger::new(),
            SqsHandOff::new(crate_sqs.clone(), &accepted),
            S3Objects::new(crate_s3.clone()),
            PREFIX,
            TTL,
        )
        .unwrap();
        let verdicts = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&verdicts);
        let observer: Observer = Arc::new(move |landed, result, _| {
            if let Ok(v) = result {
                seen.lock().unwrap().push((landed.key.clone(), v.clone()));
            }
        });
        let settlement = Settlement::new(settler, S3Objects::new(crate_s3)).with_observer(observer);
        let poller =
            Poller::new(settlement, crate_sqs_poll, &events).with_wait(Duration::from_secs(2));
        let presigner = Presigner::from_sdk_config(&sdk, bucket.clone(), TTL);
        World {
            bucket,
            events,
            accepted,
            s3,
            sqs,
            limiter,
            presigner,
            poller,
            calls,
            verdicts,
        }
    }

    /// What the gate does for `POST /v1/uploads` in upload mode: charge
    /// the user with a reservation of what the URL binds, and sign it.
    async fn grant(
        &self,
        user: &str,
        filename: &str,
        content_type: &str,
        body: &[u8],
    ) -> (ObjectKey, uploadgate_s3::PresignedUpload) {
        let now = SystemTime::now();
        let since = now.duration_since(UNIX_EPOCH).unwrap();
        let unique = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            since.as_secs(),
            since.subsec_nanos(),
        ));
        let user = UserId::parse(user).unwrap();
        let key = ObjectKey::for_upload(
            PREFIX,
            &user,
            unique
                .hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
            filename,
        );
        let digest = sha256(body);
        let size = body.len() as u64;
        let decision = self
            .limiter
            .charge(
                &Subjects { user, ip: None },
                &Charge {
                    size,
                    reservation: Some(ReservationRequest {
                        unique: *unique.as_bytes(),
                        expires_at: Timestamp(since.as_millis() as u64 + TTL.as_millis() as u64),
                        content_type: content_type.to_owned(),
                        checksum: Some(digest),
                    }),
                    ..Charge::default()
                },
            )
            .await
            .unwrap();
        assert!(decision.allowed, "{decision:?}");
        let checksum = ChecksumSha256::from_digest(digest);
        let url = self
            .presigner
            .presign(
                &PutSpec::new(&key, content_type, size).with_checksum_sha256(&checksum),
                now,
            )
            .await
            .unwrap();
        (key, url)
    }

    /// The browser's `PUT` through the URL; S3's status.
    async fn put(&self, url: &uploadgate_s3::PresignedUpload, body: &[u8]) -> u16 {
        let mut req = reqwest::Client::new().put(&url.url).body(body.to_vec());
        for (name, value) in &url.headers {
            if name != "content-length" {
                req = req.header(name, value);
            }
        }
        req.send().await.unwrap().status().as_u16()
    }

    /// The next message on `queue` within `wait`, deleted; `None` if none.
    async fn take(&self, queue: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let out = self
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(1)
                .wait_time_seconds(left.as_secs().clamp(1, 20) as i32)
                .send()
                .await
                .unwrap();
            if let Some(m) = out.messages().first() {
                self.sqs
                    .delete_message()
                    .queue_url(queue)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
                return m.body().map(str::to_owned);
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// The event notification naming `key` (S3's test event skipped).
    async fn event_for(&self, key: &ObjectKey) -> String {
        let encoded = key.as_str().rsplit('/').next().unwrap().to_owned();
        loop {
            let body = self
                .take(&self.events, Duration::from_secs(20))
                .await
                .unwrap_or_else(|| panic!("no event for {key:?} within 20 s"));
            if body.contains(&encoded) {
                return body;
            }
        }
    }

    /// Polls the event queue until `n` objects were settled (30 s at
    /// most); what the polls did, summed.
    async fn poll_until(&self, n: usize) -> Polled {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut sum = Polled::default();
        while self.verdicts.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "{sum:?}, {:?}", self.verdicts);
            let p = self.poller.poll_once().await.unwrap();
            sum.received += p.received;
            sum.done += p.done;
            sum.failed += p.failed;
        }
        sum
    }

    fn verdict_of(&self, key: &str) -> Vec<Verdict> {
        self.verdicts
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    async fn tags(&self, key: &str) -> Vec<(String, String)> {
        self.s3
            .get_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap()
            .tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect()
    }
}

#[tokio::test]
async fn an_upload_through_its_url_is_settled_once_and_handed_off_once() {
    let w = World::new().await;
    let body = b"%PDF-1.7 a small document".repeat(40);
    let (key, url) = w
        .grant("alice", "report 1.pdf", "application/pdf", &body)
        .await;
    assert_eq!(w.put(&url, &body).await, 200);

    // S3's notification, settled twice (a redelivery): once, then nothing.
    // What settling costs besides the store: one HeadObject, and the
    // hand-off's one SendMessage (none for the duplicate).
    let event = w.event_for(&key).await;
    let settlement = w.poller.settlement();
    w.calls.take();
    assert_eq!(
        settlement.message(&event).await.unwrap(),
        vec![Verdict::Accepted { late: false }]
    );
    assert_eq!(w.calls.take(), ["HeadObject", "SendMessage"]);
    assert_eq!(
        settlement.message(&event).await.unwrap(),
        vec![Verdict::Duplicate]
    );
    assert_eq!(w.calls.take(), ["HeadObject"]);

    // One accepted message, as documented.
    let message = w
        .take(&w.accepted, Duration::from_secs(5))
        .await
        .expect("an accepted message");
    let json: serde_json::Value = serde_json::from_str(&message).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["bucket"], w.bucket.as_str());
    assert_eq!(json["key"], key.as_str());
    assert_eq!(json["user"], "alice");
    assert_eq!(json["size"], body.len());
    assert_eq!(json["contentType"], "application/pdf");
    assert_eq!(
        json["checksumSha256"],
        base64::engine::general_purpose::STANDARD.encode(sha256(&body))
    );
    assert_eq!(json["late"], false);
    assert!(json["tier"].is_null());
    assert!(json["grantedAt"].as_str().unwrap() <= json["settledAt"].as_str().unwrap());
    assert_eq!(w.take(&w.accepted, Duration::from_secs(2)).await, None);

    // One usage record; the upload stays charged (1 of 2 left).
    let page = settlement
        .settler()
        .ledger()
        .page(&UsageQuery::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].key, key.as_str());
    assert_eq!(page.records[0].bytes, body.len() as u64);
    let user = Subjects {
        user: UserId::parse("alice").unwrap(),
        ip: None,
    };
    assert_eq!(w.limiter.peek(&user).await.unwrap().limits[0].remaining, 1);
    assert!(w.tags(key.as_str()).await.is_empty());
}

/// The settle function's answer to a batch: only the message that cannot
/// be settled is a batch item failure; a redelivered event in the same
/// batch is a duplicate, not a second hand-off.
#[tokio::test]
async fn a_batch_reports_only_what_failed() {
    let w = World::new().await;
    let body = b"one batch".to_vec();
    let (key, url) = w.grant("dan", "b.pdf", "application/pdf", &body).await;
    assert_eq!(w.put(&url, &body).await, 200);
    let event = w.event_for(&key).await;
    let batch: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
        {"messageId": "m-1", "body": event, "eventSource": "aws:sqs"},
        {"messageId": "m-2", "body": "{\"not\": \"an S3 event\"}", "eventSource": "aws:sqs"},
        {"messageId": "m-3", "body": event, "eventSource": "aws:sqs"},
    ]}))
    .unwrap();
    let response = settle_batch(w.poller.settlement(), batch).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-2"]);
    assert_eq!(
        w.verdict_of(key.as_str()),
        [Verdict::Accepted { late: false }, Verdict::Duplicate]
    );
    let accepted = w.take(&w.accepted, Duration::from_secs(5)).await.unwrap();
    assert!(accepted.contains(key.as_str()), "{accepted}");
    assert_eq!(w.take(&w.accepted, Duration::from_secs(2)).await, None);
}

#[tokio::test]
async fn what_does_not_match_is_quarantined_and_never_handed_off() {
    let w = World::new().await;
    // Reserved for 10 bytes, but 12 land (written with the bucket owner's
    // credentials, past the URL).
    let (key, _) = w.grant("bob", "a.pdf", "application/pdf", &[1; 10]).await;
    for (k, bytes) in [(key.as_str(), 12), ("uploads/not-a-gate-key.pdf", 3)] {
        w.s3.put_object()
            .bucket(&w.bucket)
            .key(k)
            .content_type("application/pdf")
            .body(ByteStream::from(vec![2; bytes]))
            .send()
            .await
            .unwrap();
    }
    let polled = w.poll_until(2).await;
    assert_eq!(polled.failed, 0, "{polled:?}");
    assert_eq!(polled.done, polled.received, "{polled:?}");

    assert_eq!(
        w.verdict_of(key.as_str()),
        vec![Verdict::Quarantined(QuarantineReason::Size {
            expected: 10,
            actual: 12
        })]
    );
    assert_eq!(
        w.verdict_of("uploads/not-a-gate-key.pdf"),
        vec![Verdict::Quarantined(QuarantineReason::ForeignKey)]
    );
    assert_eq!(
        w.tags(key.as_str()).await,
        vec![(QUARANTINE_TAG.to_owned(), "size".to_owned())]
    );
    assert_eq!(
        w.tags("uploads/not-a-gate-key.pdf").await,
        vec![(QUARANTINE_TAG.to_owned(), "foreign-key".to_owned())]
    );
    assert_eq!(w.take(&w.accepted, Duration::from_secs(2)).await, None);
}

#[tokio::test]
async fn the_declared_operations_are_exactly_the_ones_performed() {
    let w = World::new().await;
    // Accepted (HeadObject, SendMessage) and quarantined (PutObjectTagging),
    // through the poller (ReceiveMessage, DeleteMessageBatch).
    let good = b"exactly these bytes".to_vec();
    let (_, url) = w.grant("carol", "a.pdf", "application/pdf", &good).await;
    assert_eq!(w.put(&url, &good).await, 200);
    w.s3.put_object()
        .bucket(&w.bucket)
        .key("uploads/stray.pdf")
        .body(ByteStream::from_static(b"stray"))
        .send()
        .await
        .unwrap();
    let polled = w.poll_until(2).await;
    assert_eq!(polled.failed, 0, "{polled:?}");

    let performed: BTreeSet<String> = w.calls.take().into_iter().collect();
    let declared: BTreeSet<String> = OPERATIONS.iter().map(|o| o.name().to_owned()).collect();
    assert_eq!(performed, declared);
}
