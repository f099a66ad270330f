//! Quota tiers from a token claim, idempotent retries, anonymous mode and
//! shadow mode, through the router, on the memory and the file store.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use http::Request;
use serde_json::{Value, json};
use uploadgate_core::{FakeClock, MemoryStore, Store};
use uploadgate_store_file::FileStore;

use crate::jwt::{Jwks, TestKey, claims, token_req};
use crate::*;

/// Runs `scenario` on a fresh memory store and a fresh file store.
async fn on_each_store<F, Fut>(scenario: F)
where
    F: Fn(Box<dyn FnOnce(&[(&str, &str)], FakeClock) -> Router>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    scenario(Box::new(|env, clock| {
        app_with(env, MemoryStore::new(), clock)
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    scenario(Box::new(move |env, clock| {
        app_with(env, FileStore::open(&path).unwrap(), clock)
    }))
    .await;
}

fn with_key(mut req: Request<Body>, key: &str) -> Request<Body> {
    req.headers_mut()
        .append("idempotency-key", key.parse().unwrap());
    req
}

#[tokio::test]
async fn a_tier_claim_picks_the_policy_and_an_upgrade_bites_at_once() {
    let key = TestKey::ed("k1");
    let jwks = Jwks::serve(&[&key]).await;
    let url = jwks.url.clone();
    on_each_store(|make| {
        let url = url.clone();
        let key = &key;
        async move {
            let env = [
                ("UPLOADGATE_IDENTITY", "jwt"),
                ("UPLOADGATE_JWT_ISSUER", "https://issuer.example.com/pool-1"),
                ("UPLOADGATE_JWT_AUDIENCE", "app-client-1"),
                ("UPLOADGATE_JWKS_URL", url.as_str()),
                ("UPLOADGATE_LIMITS", "uploads=user:2/1h"),
                (
                    "UPLOADGATE_TIERS",
                    "pro=uploads=user:5/1h|team=uploads=user:100/1d",
                ),
                ("UPLOADGATE_TIER_CLAIM", "plan"),
            ];
            let app = make(&env, FakeClock::new(T0));
            let token = |plan: Value| {
                let mut c = claims("dana");
                if !plan.is_null() {
                    c["plan"] = plan;
                }
                key.sign(&c)
            };
            let free = token(Value::Null);
            for _ in 0..2 {
                assert_eq!(send(&app, token_req(&free, &pdf(1))).await.status, 200);
            }
            let r = send(&app, token_req(&free, &pdf(1))).await;
            assert_eq!(r.status, 429, "the default policy allows 2");
            assert_eq!(r.header("ratelimit-policy"), Some("\"uploads\";q=2;w=3600"));
            // The upgrade: the same user's next token names `pro`.
            let pro = token(json!("pro"));
            let r = send(&app, token_req(&pro, &pdf(1))).await;
            assert_eq!(r.status, 200, "{}", r.raw);
            assert_eq!(r.body["limits"][0]["limit"], json!(5));
            assert_eq!(r.body["limits"][0]["remaining"], json!(2));
            assert_eq!(r.header("ratelimit-policy"), Some("\"uploads\";q=5;w=3600"));
            assert!(
                r.header("ratelimit")
                    .unwrap()
                    .starts_with("\"uploads\";r=2;")
            );
            // A list claim: the first value that names a tier.
            let groups = token(json!(["staff", "team", "pro"]));
            let q = send(
                &app,
                with_peer(
                    Request::get("/v1/quota")
                        .header("authorization", format!("Bearer {groups}"))
                        .body(Body::empty())
                        .unwrap(),
                    "192.0.2.10",
                ),
            )
            .await;
            assert_eq!(q.body["tier"], json!("team"));
            assert_eq!(q.body["limits"][0]["limit"], json!(100));
            assert_eq!(q.body["limits"][0]["remaining"], json!(97));
            // An unknown tier is the default policy.
            let gold = token(json!("gold"));
            let r = send(&app, token_req(&gold, &pdf(1))).await;
            assert_eq!(r.status, 429);
        }
    })
    .await;
}

#[tokio::test]
async fn an_idempotent_retry_gets_the_same_key_and_charges_nothing() {
    on_each_store(|make| async move {
        let clock = FakeClock::new(T0);
        let app = make(&[("UPLOADGATE_LIMITS", "uploads=user:3/3h")], clock.clone());
        let first = send(&app, with_key(upload_req("ida", &pdf(10)), "upload-7f3a")).await;
        assert_eq!(first.status, 200, "{}", first.raw);
        clock.advance(std::time::Duration::from_secs(20));
        let again = send(&app, with_key(upload_req("ida", &pdf(10)), "upload-7f3a")).await;
        assert_eq!(again.status, 200, "{}", again.raw);
        assert_eq!(again.body["key"], first.body["key"], "the same object key");
        // The same limits, their reset 20 s closer.
        let (a, f) = (&again.body["limits"][0], &first.body["limits"][0]);
        assert_eq!(
            (&a["limit"], &a["remaining"]),
            (&f["limit"], &f["remaining"])
        );
        assert_eq!(
            a["resetSeconds"].as_u64().unwrap(),
            f["resetSeconds"].as_u64().unwrap() - 20
        );
        assert_ne!(again.body["url"], first.body["url"], "a freshly signed URL");
        assert_eq!(
            quota(&app, "ida").await.body["limits"][0]["remaining"],
            json!(2)
        );
        // The same key with another body: 422, nothing charged.
        let other = send(&app, with_key(upload_req("ida", &pdf(11)), "upload-7f3a")).await;
        assert_eq!(other.status, 422, "{}", other.raw);
        assert_eq!(
            other.body["type"],
            json!("https://uploadgate.dev/problems/idempotency-key-reused")
        );
        assert_eq!(
            quota(&app, "ida").await.body["limits"][0]["remaining"],
            json!(2)
        );
        // Keys are per user: another user's same key is theirs.
        let r = send(&app, with_key(upload_req("ivo", &pdf(11)), "upload-7f3a")).await;
        assert_eq!(r.status, 200);
        assert_ne!(r.body["key"], first.body["key"]);
        // Bad keys are 400 and charge nothing.
        let twice = with_key(with_key(upload_req("ida", &pdf(10)), "a"), "b");
        assert_eq!(send(&app, twice).await.status, 400);
        let spaced = with_key(upload_req("ida", &pdf(10)), "has space");
        assert_eq!(send(&app, spaced).await.status, 400);
        assert_eq!(
            quota(&app, "ida").await.body["limits"][0]["remaining"],
            json!(2)
        );
    })
    .await;
}

#[tokio::test]
async fn anonymous_mode_limits_by_address_only() {
    on_each_store(|make| async move {
        let env = [
            ("UPLOADGATE_IDENTITY", "anonymous"),
            ("UPLOADGATE_LIMITS", "burst=ip:2/1h"),
        ];
        let app = make(&env, FakeClock::new(T0));
        let post = |ip: &str| {
            with_peer(
                Request::post("/v1/uploads")
                    .header("content-type", "application/json")
                    // Ignored: nobody is anybody in anonymous mode.
                    .header("x-user-id", "mallory")
                    .body(Body::from(pdf(1)))
                    .unwrap(),
                ip,
            )
        };
        let r = send(&app, post("198.51.100.1")).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert!(
            r.body["key"]
                .as_str()
                .unwrap()
                .starts_with("uploads/anonymous/")
        );
        assert_eq!(send(&app, post("198.51.100.1")).await.status, 200);
        assert_eq!(send(&app, post("198.51.100.1")).await.status, 429);
        assert_eq!(send(&app, post("198.51.100.2")).await.status, 200);
        let q = send(
            &app,
            with_peer(
                Request::get("/v1/quota").body(Body::empty()).unwrap(),
                "198.51.100.1",
            ),
        )
        .await;
        assert_eq!(q.body["user"], Value::Null);
        assert_eq!(q.body["limits"][0]["remaining"], json!(0));
        // An idempotent retry from the same address is free here too.
        let a = send(&app, with_key(post("198.51.100.3"), "k-1")).await;
        let b = send(&app, with_key(post("198.51.100.3"), "k-1")).await;
        assert_eq!((a.status, b.status), (200, 200));
        assert_eq!(a.body["key"], b.body["key"]);
        assert_eq!(b.body["limits"][0]["remaining"], json!(1));
    })
    .await;
}

#[tokio::test]
async fn shadow_mode_admits_and_meters_what_it_would_deny() {
    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);
    impl uploadgate_http::MetricsSink for Lines {
        fn emit(&self, line: String) {
            self.0.lock().unwrap().push(line);
        }
    }
    async fn run<S: Store>(store: S) {
        let cfg = config(&[
            ("UPLOADGATE_LIMITS", "uploads=user:1/1h"),
            ("UPLOADGATE_SHADOW", "true"),
        ]);
        let p = presigner(&cfg);
        let lines = Arc::new(Lines::default());
        let clock: Arc<dyn uploadgate_core::Clock> = Arc::new(FakeClock::new(T0));
        let app = uploadgate_http::router(uploadgate_http::AppState::with_metrics_sink(
            cfg.gate,
            store,
            clock,
            p,
            Some(lines.clone()),
        ));
        assert_eq!(upload(&app, "sam", 1).await.status, 200);
        let r = upload(&app, "sam", 1).await;
        assert_eq!(r.status, 200, "shadow mode never enforces: {}", r.raw);
        assert!(r.body["url"].as_str().unwrap().contains("X-Amz-Signature"));
        assert!(
            r.header("ratelimit")
                .unwrap()
                .starts_with("\"uploads\";r=0;"),
            "the would-be fields: {:?}",
            r.header("ratelimit")
        );
        let metrics: Vec<Value> = lines
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            metrics
                .iter()
                .map(|m| (m["Allowed"].as_u64(), m["ShadowDenied"].as_u64()))
                .collect::<Vec<_>>(),
            [(Some(1), Some(0)), (Some(0), Some(1))]
        );
        // Only the admitted one was charged.
        assert_eq!(
            quota(&app, "sam").await.body["limits"][0]["remaining"],
            json!(0)
        );
    }
    run(MemoryStore::new()).await;
    let dir = tempfile::tempdir().unwrap();
    run(FileStore::open(dir.path()).unwrap()).await;
}
