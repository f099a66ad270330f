//! Upload mode on S3 (LocalStack, which sends the bucket's events to an SQS
//! queue) with the dynamodb store (moto): `serve` settles from the event
//! queue itself, and `uploadgate settle` does the same on its own, beside
//! the gates. Either way the upload shows in `GET /v1/usage` and the
//! accepted queue gets exactly one message for it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uploadgate_settle::test_util::{self, NotifyingBucket};

use super::{BIN, Server, run_ok, serve};

const PREFIX: &str = "uploads/";

/// A bucket notifying a queue, tables on moto, and the settings every
/// process here shares (the settle queue left to each).
struct World {
    queues: NotifyingBucket,
    sqs: aws_sdk_sqs::Client,
    env: Vec<(&'static str, String)>,
}

impl World {
    async fn new() -> World {
        let sdk = test_util::sdk_config().await;
        let queues = test_util::notifying_bucket(&sdk, PREFIX).await;
        let localstack = test_util::endpoint();
        let suffix = queues.bucket.trim_start_matches("ug-bucket-").to_owned();
        let env = vec![
            (
                "AWS_ENDPOINT_URL_DYNAMODB",
                uploadgate_dynamodb::test_util::endpoint(),
            ),
            ("AWS_ENDPOINT_URL_S3", localstack.clone()),
            ("AWS_ENDPOINT_URL_SQS", localstack),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("UPLOADGATE_STORE", "dynamodb".into()),
            ("UPLOADGATE_TABLE", format!("ug-quota-{suffix}")),
            ("UPLOADGATE_USAGE_TABLE", format!("ug-usage-{suffix}")),
            ("UPLOADGATE_TARGET", "s3".into()),
            ("UPLOADGATE_BUCKET", queues.bucket.clone()),
            ("UPLOADGATE_KEY_PREFIX", PREFIX.into()),
            ("UPLOADGATE_CHARGE", "upload".into()),
            ("UPLOADGATE_LIMITS", "uploads=user:5/3h".into()),
            ("UPLOADGATE_ACCEPTED_QUEUE_URL", queues.accepted.clone()),
        ];
        let w = World {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            queues,
            env,
        };
        let out = run_ok(&["table", "create"], &w.with_queue(&w.queues.events));
        assert!(out.contains("usage ledger"), "{out}");
        w
    }

    /// The shared settings, with `queue` as the settle queue.
    fn with_queue<'a>(&'a self, queue: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.push(("UPLOADGATE_SETTLE_QUEUE_URL", queue));
        env
    }

    /// A queue no bucket sends to.
    async fn decoy_queue(&self) -> String {
        let name = format!(
            "{}-decoy",
            self.queues.bucket.trim_start_matches("ug-bucket-")
        );
        let out = self
            .sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .unwrap();
        out.queue_url().unwrap().to_owned()
    }

    /// Every message on the accepted queue within `wait`, deleted.
    async fn accepted(&self, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        let mut bodies = Vec::new();
        while Instant::now() < deadline {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queues.accepted)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            for m in out.messages() {
                bodies.push(serde_json::from_str(m.body().unwrap()).unwrap());
                self.sqs
                    .delete_message()
                    .queue_url(&self.queues.accepted)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        bodies
    }
}

/// `POST /v1/uploads` and the `PUT` through the answer's URL, to S3; the
/// answer.
async fn upload(s: &Server, user: &str, bytes: &[u8]) -> Value {
    let res = reqwest::Client::new()
        .post(format!("{}/v1/uploads", s.api))
        .header("x-user-id", user)
        .json(
            &json!({"filename": "scan.pdf", "contentType": "application/pdf", "size": bytes.len()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let up: Value = res.json().await.unwrap();
    let mut put = reqwest::Client::new()
        .put(up["url"].as_str().unwrap())
        .body(bytes.to_vec());
    for (k, v) in up["headers"].as_object().unwrap() {
        if k != "content-length" {
            put = put.header(k, v.as_str().unwrap());
        }
    }
    assert_eq!(put.send().await.unwrap().status().as_u16(), 200);
    up
}

/// `GET /v1/usage` until it shows `n` uploads (30 s at most).
async fn usage_until(s: &Server, user: &str, n: u64) -> Value {
    let started = Instant::now();
    loop {
        let page: Value = reqwest::Client::new()
            .get(format!("{}/v1/usage", s.api))
            .header("x-user-id", user)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["uploads"] == n || started.elapsed() > Duration::from_secs(30) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn check_settled(page: &Value, up: &Value, accepted: &[Value], user: &str, size: usize) {
    assert_eq!(page["uploads"], 1, "{page}");
    assert_eq!(page["records"][0]["key"], up["key"], "{page}");
    assert_eq!(page["records"][0]["bytes"], size, "{page}");
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(accepted[0]["key"], up["key"]);
    assert_eq!(accepted[0]["user"], user);
    assert_eq!(accepted[0]["size"], size);
    assert_eq!(accepted[0]["contentType"], "application/pdf");
    assert_eq!(accepted[0]["late"], false);
}

#[tokio::test]
async fn serve_on_s3_settles_from_the_event_queue() {
    let w = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &w.with_queue(&w.queues.events));
    let bytes = b"%PDF-1.7 settled from S3's own event".to_vec();
    let up = upload(&s, "sam", &bytes).await;
    let page = usage_until(&s, "sam", 1).await;
    let accepted = w.accepted(Duration::from_secs(3)).await;
    check_settled(&page, &up, &accepted, "sam", bytes.len());
}

/// `uploadgate settle`, killed when dropped.
struct Settler(Child);

impl Drop for Settler {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn uploadgate_settle_settles_beside_the_gates() {
    let w = World::new().await;
    // The gate polls a queue nothing sends to: only `uploadgate settle`
    // sees the bucket's events.
    let decoy = w.decoy_queue().await;
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &w.with_queue(&decoy));
    let mut cmd = Command::new(BIN);
    cmd.args(["settle", "--queue-url", &w.queues.events])
        .env_remove("UPLOADGATE_LIMITS")
        .envs(w.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let settler = Settler(child);
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .map(Result::unwrap)
        .take_while(|l| !l.starts_with("uploadgate: settling S3 events from"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("uploadgate: accepted uploads go to {}", w.queues.accepted)),
        "{lines:?}"
    );

    let bytes = b"%PDF-1.7 settled by the settle command".to_vec();
    let up = upload(&s, "tia", &bytes).await;
    let page = usage_until(&s, "tia", 1).await;
    let accepted = w.accepted(Duration::from_secs(3)).await;
    check_settled(&page, &up, &accepted, "tia", bytes.len());
    drop(settler);
}

/// `uploadgate settle` refuses, in one line naming the setting, what it
/// cannot settle with.
#[test]
fn uploadgate_settle_refuses_what_it_cannot_settle_with() {
    let queue = "http://127.0.0.1:4566/000000000000/events";
    for (env, named) in [
        (vec![], "UPLOADGATE_CHARGE"),
        (
            vec![("UPLOADGATE_CHARGE", "upload"), ("UPLOADGATE_TARGET", "s3")],
            "UPLOADGATE_SETTLE_QUEUE_URL",
        ),
        (
            vec![
                ("UPLOADGATE_CHARGE", "upload"),
                ("UPLOADGATE_TARGET", "s3"),
                ("UPLOADGATE_SETTLE_QUEUE_URL", queue),
            ],
            "UPLOADGATE_STORE",
        ),
    ] {
        let out = Command::new(BIN)
            .arg("settle")
            .env_remove("UPLOADGATE_LIMITS")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("uploadgate: invalid {named}: ")),
            "{err}"
        );
    }
}
