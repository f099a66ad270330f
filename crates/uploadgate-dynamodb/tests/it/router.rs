//! The DynamoDB store behind the real router: contention across separate
//! store instances (standing in for Lambda containers, each with its own
//! cache), and failing closed (or open, when configured) when DynamoDB is
//! unreachable.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use uploadgate_core::{Clock, SystemClock};
use uploadgate_dynamodb::DynamoStore;
use uploadgate_http::{AppState, ClientAddr, MetricsSink, router};
use uploadgate_s3::{LocalCredentials, Presigner};

use crate::support::{store, unreachable_store};

fn app(limits: &str, store: DynamoStore, env: &[(&str, &str)], sink: Option<Arc<Lines>>) -> Router {
    let cfg = uploadgate_app::Config::from_lookup(&[], |k| {
        (k == "UPLOADGATE_LIMITS")
            .then(|| limits.to_owned())
            .or_else(|| {
                env.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            })
    })
    .unwrap();
    let creds = LocalCredentials {
        access_key: "AKIDTEST".into(),
        secret_key: "test-secret".into(),
    };
    let presigner = Presigner::for_local("http://127.0.0.1:9", &creds, cfg.bucket, cfg.url_ttl);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sink = sink.map(|s| s as Arc<dyn MetricsSink>);
    router(AppState::with_metrics_sink(
        cfg.gate, store, clock, presigner, sink,
    ))
}

async fn post(app: &Router, user: &str, ip: std::net::IpAddr) -> (u16, Value) {
    let mut req = Request::post("/v1/uploads")
        .header("x-user-id", user)
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"filename":"a.pdf","contentType":"application/pdf","size":1000}"#,
        ))
        .unwrap();
    req.extensions_mut().insert(ClientAddr(ip));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn remaining(app: &Router, user: &str, ip: std::net::IpAddr) -> Vec<u64> {
    let mut req = Request::get("/v1/quota")
        .header("x-user-id", user)
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(ClientAddr(ip));
    let res = app.clone().oneshot(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["limits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["remaining"].as_u64().unwrap())
        .collect()
}

/// 100 concurrent requests over 4 routers, each on its own store instance
/// with its own cache. `users` requests share each user id (100 = one user).
async fn trial(limits: &str, users: usize) -> (usize, Vec<Router>, Vec<String>, std::net::IpAddr) {
    trial_of(100, limits, users, &[]).await
}

/// `requests` concurrent requests over 4 routers (as `trial`), with `env`.
/// Every answer must be 200 or 429: never a 5xx.
async fn trial_of(
    requests: usize,
    limits: &str,
    users: usize,
    env: &[(&str, &str)],
) -> (usize, Vec<Router>, Vec<String>, std::net::IpAddr) {
    let mut apps = vec![];
    for _ in 0..4 {
        apps.push(app(limits, store().await, env, None));
    }
    let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::new(
        198,
        51,
        rand::random(),
        rand::random(),
    ));
    let ids: Vec<String> = (0..users)
        .map(|_| format!("contend-{:016x}", rand::random::<u64>()))
        .collect();
    let tasks: Vec<_> = (0..requests)
        .map(|i| {
            let app = apps[i % 4].clone();
            let user = ids[i % users].clone();
            tokio::spawn(async move { post(&app, &user, ip).await })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            200 => {
                allowed += 1;
                assert!(body["url"].as_str().unwrap().contains("X-Amz-Signature"));
            }
            429 => assert_eq!(body["status"], 429),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    (allowed, apps, ids, ip)
}

fn trials() -> usize {
    std::env::var("UG_CONTENTION_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_requests_over_four_containers_admit_exactly_the_user_limit() {
    for _ in 0..trials() {
        let (allowed, apps, ids, ip) = trial("uploads=user:5/3h;burst=ip:60/1h", 1).await;
        assert_eq!(allowed, 5);
        // Both keys moved together, and only for the admitted five.
        assert_eq!(remaining(&apps[3], &ids[0], ip).await, [0, 55]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_users_behind_one_address_admit_exactly_the_ip_limit() {
    for _ in 0..trials() {
        let (allowed, apps, ids, ip) = trial("uploads=user:3/3h;burst=ip:5/1h", 100).await;
        assert_eq!(allowed, 5);
        // Denied users were charged nothing: 5 users have 2 left, 95 have 3.
        let mut left = vec![];
        for id in &ids {
            left.push(remaining(&apps[0], id, ip).await[0]);
        }
        assert_eq!(left.iter().filter(|r| **r == 2).count(), 5, "{left:?}");
        assert_eq!(left.iter().filter(|r| **r == 3).count(), 95, "{left:?}");
    }
}

/// The hot key of the review: 300 distinct users behind one address with
/// `burst=ip:100/1h`, over 4 routers, with fail-open on. Exactly 100 are
/// admitted, every other answer is 429, and none is a 5xx: losing
/// compare-and-swaps is contention, never an outage to fail open on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_users_behind_one_address_admit_exactly_a_hundred_failing_open() {
    for _ in 0..trials().min(3) {
        let (allowed, ..) = trial_of(
            300,
            "uploads=user:3/3h;burst=ip:100/1h",
            300,
            &[("UPLOADGATE_FAIL_OPEN", "true")],
        )
        .await;
        assert_eq!(allowed, 100);
    }
}

/// Collects EMF lines.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl MetricsSink for Lines {
    fn emit(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
}

#[tokio::test]
async fn with_dynamodb_down_the_gate_fails_closed_and_hands_out_no_url() {
    let lines = Arc::new(Lines::default());
    let app = app(
        "uploads=user:5/3h",
        unreachable_store().await,
        &[],
        Some(lines.clone()),
    );
    let ip = "192.0.2.1".parse().unwrap();
    let started = std::time::Instant::now();
    let (status, body) = post(&app, "alice", ip).await;
    eprintln!("fail-closed answer after {:?}", started.elapsed());
    assert_eq!(status, 503);
    assert_eq!(
        body["type"],
        "https://uploadgate.dev/problems/store-unavailable"
    );
    assert!(body.get("url").is_none());
    assert!(!body.to_string().contains("X-Amz-Signature"));
    let metric: Value = serde_json::from_str(&lines.0.lock().unwrap()[0]).unwrap();
    assert_eq!(
        (metric["FailClosed"].as_u64(), metric["Allowed"].as_u64()),
        (Some(1), Some(0))
    );
}

#[tokio::test]
async fn fail_open_is_an_explicit_opt_in_and_is_counted() {
    let lines = Arc::new(Lines::default());
    let app = app(
        "uploads=user:5/3h",
        unreachable_store().await,
        &[("UPLOADGATE_FAIL_OPEN", "true")],
        Some(lines.clone()),
    );
    let (status, body) = post(&app, "alice", "192.0.2.1".parse().unwrap()).await;
    assert_eq!(status, 200);
    assert!(body["url"].as_str().unwrap().contains("X-Amz-Signature"));
    let metric: Value = serde_json::from_str(&lines.0.lock().unwrap()[0]).unwrap();
    assert_eq!(
        (metric["FailOpen"].as_u64(), metric["Allowed"].as_u64()),
        (Some(1), Some(0))
    );
}

/// Fail-open admits only when the store is unreachable: a corrupt record
/// (or throttling, which a client can provoke) must never lift the limit.
#[tokio::test]
async fn fail_open_does_not_admit_on_corrupt_state() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let store = crate::support::store().await;
    let user = format!("corrupt-{:08x}", rand::random::<u32>());
    let client = aws_sdk_dynamodb::Client::new(
        &crate::support::sdk_config_for(&crate::support::endpoint()).await,
    );
    client
        .put_item()
        .table_name(crate::support::table().await)
        .item(
            uploadgate_dynamodb::PK,
            AttributeValue::S(format!("user#{user}")),
        )
        .item(uploadgate_dynamodb::VERSION, AttributeValue::N("7".into()))
        .item(
            uploadgate_dynamodb::STATE,
            AttributeValue::B(aws_smithy_types::Blob::new(vec![9, 9, 9])),
        )
        .send()
        .await
        .unwrap();
    let lines = Arc::new(Lines::default());
    let app = app(
        "uploads=user:5/3h",
        store,
        &[("UPLOADGATE_FAIL_OPEN", "true")],
        Some(lines.clone()),
    );
    let (status, body) = post(&app, &user, "192.0.2.1".parse().unwrap()).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.get("url").is_none());
    let metric: Value = serde_json::from_str(&lines.0.lock().unwrap()[0]).unwrap();
    assert_eq!(
        (metric["FailOpen"].as_u64(), metric["FailClosed"].as_u64()),
        (Some(0), Some(1))
    );
}
