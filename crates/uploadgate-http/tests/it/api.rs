use std::time::Duration;

use axum::body::Body;
use http::Request;
use serde_json::json;
use uploadgate_core::{FakeClock, MemoryStore};
use uploadgate_http::QUOTA_EXCEEDED_TYPE;
use uploadgate_store_file::FileStore;

use crate::*;

#[tokio::test]
async fn five_uploads_then_429_with_retry_after_and_users_are_independent() {
    let (app, clock) = app(&[("UPLOADGATE_LIMITS", "uploads=user:5/3h")]);
    for i in 0..5u64 {
        let r = upload(&app, "alice", 1234).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(r.body["limits"][0]["remaining"], json!(4 - i));
        assert_eq!(r.body["limits"][0]["limit"], json!(5));
        assert_eq!(r.body["method"], json!("PUT"));
        assert_eq!(
            r.header("ratelimit"),
            Some(format!("\"uploads\";r={};t={}", 4 - i, 10_800 - 60 * i).as_str())
        );
        clock.advance(Duration::from_secs(60));
    }
    let r = upload(&app, "alice", 1234).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    // The first upload leaves the window 3h after it was made: 5 minutes ago.
    assert_eq!(r.header("retry-after"), Some("10500"));
    assert_eq!(r.body["type"], json!(QUOTA_EXCEEDED_TYPE));
    assert_eq!(r.body["status"], json!(429));
    assert_eq!(r.body["violated-policies"], json!(["uploads"]));
    assert_eq!(r.body["retryAfter"], json!(10500));
    assert_eq!(r.header("ratelimit"), Some("\"uploads\";r=0;t=10500"));
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"uploads\";q=5;w=10800")
    );
    // Bob is unaffected.
    let r = upload(&app, "bob", 1234).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["limits"][0]["remaining"], json!(4));
    // Once the oldest upload leaves the window, alice may upload again.
    clock.advance(Duration::from_secs(10_499));
    assert_eq!(upload(&app, "alice", 1).await.status, 429);
    clock.advance(Duration::from_secs(1));
    assert_eq!(upload(&app, "alice", 1).await.status, 200);
}

#[tokio::test]
async fn the_upload_answer_is_bound_to_the_declared_file() {
    let (app, _) = app(&[]);
    let r = send(
        &app,
        upload_req(
            "alice",
            r#"{"filename":"../../etc/passwd","contentType":"Application/PDF","size":777}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let key = r.body["key"].as_str().unwrap();
    assert!(key.starts_with("uploads/alice/"), "{key}");
    assert!(key.ends_with("/passwd"), "{key}");
    assert_eq!(key.matches('/').count(), 3, "{key}");
    assert_eq!(
        r.body["headers"],
        json!({
            "content-disposition": "attachment; filename=\"passwd\"",
            "content-type": "application/pdf",
            "content-length": "777",
            "if-none-match": "*"
        })
    );
    let url = r.body["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:9/uploads/{key}?")),
        "{url}"
    );
    assert!(
        url.contains("X-Amz-SignedHeaders=content-disposition%3Bcontent-length%3Bcontent-type%3Bhost%3Bif-none-match"),
        "{url}"
    );
    assert_eq!(r.body["expiresAt"], json!("2027-01-15T08:05:00Z"));
    assert_eq!(r.header("cache-control"), Some("no-store"));

    // With a checksum, the URL binds the bytes too (a signed header, never
    // in the query string).
    let sum = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    let r = send(
        &app,
        upload_req(
            "alice",
            &format!(r#"{{"contentType":"application/pdf","size":5,"checksumSha256":"{sum}"}}"#),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["headers"]["x-amz-checksum-sha256"], json!(sum));
    let url = r.body["url"].as_str().unwrap();
    assert!(
        url.contains("x-amz-checksum-sha256%3B") || url.contains("%3Bx-amz-checksum-sha256"),
        "{url}"
    );
    assert!(!url.contains("x-amz-checksum-sha256="), "{url}");
    let r = send(
        &app,
        upload_req(
            "alice",
            r#"{"contentType":"application/pdf","size":5,"checksumSha256":"abc"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("`checksumSha256`: ")
    );
}

async fn fifty_concurrent<S: uploadgate_core::Store>(store: S) {
    let app = app_with(
        &[("UPLOADGATE_LIMITS", "uploads=user:5/3h")],
        store,
        FakeClock::new(T0),
    );
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { upload(&app, "racer", 10).await.status })
        })
        .collect();
    let mut statuses = vec![];
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        45,
        "{statuses:?}"
    );
    assert_eq!(
        quota(&app, "racer").await.body["limits"][0]["remaining"],
        json!(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_requests_admit_exactly_five_on_the_memory_store() {
    fifty_concurrent(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_requests_admit_exactly_five_on_the_file_store() {
    let dir = tempfile::tempdir().unwrap();
    fifty_concurrent(FileStore::open(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn a_429_consumes_nothing() {
    let (app, _) = app(&[("UPLOADGATE_LIMITS", "uploads=user:5/3h;volume=user:100B/3h")]);
    assert_eq!(upload(&app, "carol", 60).await.status, 200);
    let before = quota(&app, "carol").await;
    assert_eq!(before.status, 200);
    assert_eq!(before.body["limits"][0]["remaining"], json!(4));
    assert_eq!(before.body["limits"][1]["remaining"], json!(40));
    let r = upload(&app, "carol", 50).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["violated-policies"], json!(["volume"]));
    assert_eq!(
        r.body["limits"][0]["remaining"],
        json!(4),
        "a denial reports unconsumed quota"
    );
    let after = quota(&app, "carol").await;
    assert_eq!(after.body, before.body);
    assert_eq!(after.header("ratelimit"), before.header("ratelimit"));
}

#[tokio::test]
async fn ratelimit_fields_parse_as_structured_field_lists() {
    let (app, _) = app(&[(
        "UPLOADGATE_LIMITS",
        "uploads=user:5/3h;volume=user:50MiB/24h;burst=ip:30/1m:gcra",
    )]);
    let r = upload(&app, "dave", 1_000_000).await;
    assert_eq!(r.status, 200);
    let policy: sfv::List = sfv::Parser::new(r.header("ratelimit-policy").unwrap())
        .parse()
        .unwrap();
    let limits: sfv::List = sfv::Parser::new(r.header("ratelimit").unwrap())
        .parse()
        .unwrap();
    let item = |l: &sfv::List, i: usize| match &l[i] {
        sfv::ListEntry::Item(it) => it.clone(),
        other => panic!("expected an item, got {other:?}"),
    };
    let int =
        |it: &sfv::Item, k: &str| it.params.get(k).and_then(|v| v.as_integer()).map(i64::from);
    let names: Vec<String> = (0..3)
        .map(|i| {
            item(&policy, i)
                .bare_item
                .as_string()
                .unwrap()
                .as_str()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["uploads", "volume", "burst"]);
    assert_eq!(int(&item(&policy, 0), "q"), Some(5));
    assert_eq!(int(&item(&policy, 0), "w"), Some(10_800));
    assert_eq!(int(&item(&policy, 1), "q"), Some(50 << 20));
    assert_eq!(
        item(&policy, 1)
            .params
            .get("qu")
            .and_then(|v| v.as_string())
            .map(|s| s.as_str().to_owned()),
        Some("content-bytes".into())
    );
    assert_eq!(int(&item(&policy, 2), "w"), Some(60));
    assert_eq!(int(&item(&limits, 0), "r"), Some(4));
    assert_eq!(int(&item(&limits, 1), "r"), Some((50 << 20) - 1_000_000));
    assert_eq!(int(&item(&limits, 2), "r"), Some(29));
    assert_eq!(int(&item(&limits, 0), "t"), Some(10_800));
}

#[tokio::test]
async fn every_bad_request_is_a_problem_and_consumes_nothing() {
    let (app, _) = app(&[("UPLOADGATE_MAX_OBJECT_BYTES", "1000")]);
    let post = |body: String| upload_req("erin", &body);
    let big = format!(
        r#"{{"filename":"{}","contentType":"application/pdf","size":1}}"#,
        "a".repeat(17_000)
    );
    let typed = |content_type: &str| {
        with_peer(
            Request::post("/v1/uploads")
                .header("x-user-id", "erin")
                .header("content-type", content_type)
                .body(Body::from(pdf(5)))
                .unwrap(),
            "192.0.2.10",
        )
    };
    let untyped = with_peer(
        Request::post("/v1/uploads")
            .header("x-user-id", "erin")
            .body(Body::from(pdf(5)))
            .unwrap(),
        "192.0.2.10",
    );
    let cases: Vec<(Request<Body>, u16, &str)> = vec![
        // What a cross-site form can send without a preflight.
        (typed("text/plain"), 415, "unsupported-body-type"),
        (
            typed("application/x-www-form-urlencoded"),
            415,
            "unsupported-body-type",
        ),
        (
            typed("multipart/form-data; boundary=x"),
            415,
            "unsupported-body-type",
        ),
        (untyped, 415, "unsupported-body-type"),
        (post("{not json".into()), 400, "invalid-request"),
        (post("[1,2]".into()), 400, "invalid-request"),
        (post("".into()), 400, "invalid-request"),
        (
            post(r#"{"contentType":"application/pdf","size":"12"}"#.into()),
            400,
            "invalid-request",
        ),
        (
            post(r#"{"contentType":5,"size":12}"#.into()),
            400,
            "invalid-request",
        ),
        (
            post(r#"{"contentType":"application/pdf"}"#.into()),
            400,
            "invalid-request",
        ),
        (post(pdf(0)), 400, "invalid-request"),
        (
            post(r#"{"contentType":"application/pdf","size":-5}"#.into()),
            400,
            "invalid-request",
        ),
        (
            post(r#"{"contentType":"application/pdf","size":1.5}"#.into()),
            400,
            "invalid-request",
        ),
        // A whole number, though written as a float: too large, not malformed.
        (
            post(r#"{"contentType":"application/pdf","size":1e30}"#.into()),
            413,
            "object-too-large",
        ),
        (
            post(r#"{"contentType":"application/pdf","size":12,"filename":7}"#.into()),
            400,
            "invalid-request",
        ),
        (post(pdf(1001)), 413, "object-too-large"),
        (
            post(r#"{"contentType":"text/html","size":12}"#.into()),
            415,
            "unsupported-content-type",
        ),
        (post(big), 413, "body-too-large"),
        (
            with_peer(
                Request::post("/v1/uploads")
                    .header("content-type", "application/json")
                    .body(Body::from(pdf(5)))
                    .unwrap(),
                "192.0.2.10",
            ),
            401,
            "unauthenticated",
        ),
        (
            with_peer(
                Request::post("/v1/uploads")
                    .header("x-user-id", "a/b")
                    .header("content-type", "application/json")
                    .body(Body::from(pdf(5)))
                    .unwrap(),
                "192.0.2.10",
            ),
            400,
            "invalid-request",
        ),
        (
            Request::get("/v2/uploads").body(Body::empty()).unwrap(),
            404,
            "not-found",
        ),
        (
            Request::delete("/v1/uploads")
                .header("x-user-id", "erin")
                .body(Body::empty())
                .unwrap(),
            405,
            "method-not-allowed",
        ),
        (
            Request::get("/v1/uploads")
                .header("x-user-id", "erin")
                .body(Body::empty())
                .unwrap(),
            405,
            "method-not-allowed",
        ),
    ];
    for (req, status, slug) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let r = send(&app, req).await;
        assert_eq!(r.status, status, "{what}: {}", r.raw);
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{what}"
        );
        assert_eq!(
            r.body["type"],
            json!(format!("https://uploadgate.dev/problems/{slug}")),
            "{what}"
        );
        assert_eq!(r.body["status"], json!(status), "{what}");
        assert!(
            r.body["title"].is_string() && r.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}: {}",
            r.raw
        );
    }
    let q = quota(&app, "erin").await;
    assert_eq!(
        q.body["limits"][0]["remaining"],
        json!(5),
        "no bad request may consume quota"
    );
}

#[tokio::test]
async fn upload_check_keeps_the_original_contract_in_body_mode() {
    let (app, _) = app(&[
        ("UPLOADGATE_IDENTITY", "body"),
        ("UPLOADGATE_LIMITS", "uploads=user:2/3h"),
    ]);
    let check = |body: &str| {
        with_peer(
            Request::post("/upload-check")
                .header("content-type", "application/json")
                .body(Body::from(body.to_owned()))
                .unwrap(),
            "192.0.2.10",
        )
    };
    let r = send(&app, check(r#"{"userId":"frank"}"#)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["allowed"], json!(true));
    assert!(r.body.get("upload").is_none());
    assert_eq!(r.body["limits"][0]["remaining"], json!(1));
    let r = send(
        &app,
        check(r#"{"userId":"frank","filename":"a.png","contentType":"image/png","size":10}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.body["upload"]["key"]
            .as_str()
            .unwrap()
            .starts_with("uploads/frank/")
    );
    assert_eq!(r.body["upload"]["headers"]["content-length"], json!("10"));
    let r = send(&app, check(r#"{"userId":"frank"}"#)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["allowed"], json!(false));
    let r = send(&app, check(r#"{}"#)).await;
    assert_eq!(r.status, 401);
    // In body mode, /v1/quota takes the id as a query parameter.
    let req = with_peer(
        Request::get("/v1/quota?userId=frank")
            .body(Body::empty())
            .unwrap(),
        "192.0.2.10",
    );
    let r = send(&app, req).await;
    assert_eq!(r.body["user"], json!("frank"));
    assert_eq!(r.body["limits"][0]["remaining"], json!(0));
}

#[tokio::test]
async fn header_mode_ignores_a_user_id_in_the_body() {
    let (app, _) = app(&[("UPLOADGATE_LIMITS", "uploads=user:1/3h")]);
    let body = r#"{"userId":"victim","contentType":"application/pdf","size":5}"#;
    let r = send(&app, upload_req("mallory", body)).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body["key"]
            .as_str()
            .unwrap()
            .starts_with("uploads/mallory/")
    );
    assert_eq!(
        quota(&app, "victim").await.body["limits"][0]["remaining"],
        json!(1)
    );
}

#[tokio::test]
async fn ip_limits_use_the_peer_or_the_cloudfront_viewer_address() {
    let (app, _) = app(&[("UPLOADGATE_LIMITS", "burst=ip:1/1m")]);
    assert_eq!(upload(&app, "u1", 5).await.status, 200);
    let r = upload(&app, "u2", 5).await;
    assert_eq!(r.status, 429, "same peer address");
    let other = with_peer(
        Request::post("/v1/uploads")
            .header("x-user-id", "u3")
            .header("content-type", "application/json")
            .body(Body::from(pdf(5)))
            .unwrap(),
        "192.0.2.11",
    );
    assert_eq!(send(&app, other).await.status, 200);

    let (app, _) = crate::app(&[
        ("UPLOADGATE_LIMITS", "burst=ip:1/1m"),
        ("UPLOADGATE_CLIENT_IP", "cloudfront"),
    ]);
    let via_cf = |user: &str, viewer: &str, xff: &str| {
        with_peer(
            Request::post("/v1/uploads")
                .header("x-user-id", user)
                .header("content-type", "application/json")
                .header("cloudfront-viewer-address", viewer)
                .header("x-forwarded-for", xff)
                .body(Body::from(pdf(5)))
                .unwrap(),
            "130.176.0.1", // a CloudFront edge: the same for every viewer
        )
    };
    assert_eq!(
        send(&app, via_cf("a", "2001:db8:1:2::7:443", "1.1.1.1"))
            .await
            .status,
        200
    );
    // Same /64, another address and a forged X-Forwarded-For: still limited.
    assert_eq!(
        send(&app, via_cf("b", "2001:db8:1:2:ffff::1:80", "9.9.9.9"))
            .await
            .status,
        429
    );
    assert_eq!(
        send(&app, via_cf("c", "203.0.113.7:5000", "1.1.1.1"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn cors_answers_preflights_for_configured_origins_only() {
    let (app, _) = app(&[("UPLOADGATE_CORS_ORIGINS", "https://app.example.com")]);
    let preflight = |origin: &str| {
        Request::options("/v1/uploads")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-user-id,x-amz-content-sha256",
            )
            .body(Body::empty())
            .unwrap()
    };
    let r = send(&app, preflight("https://app.example.com")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let allowed = r
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in ["content-type", "x-user-id", "x-amz-content-sha256"] {
        assert!(allowed.contains(h), "{allowed}");
    }
    let r = send(&app, preflight("https://evil.example.net")).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    let mut req = upload_req("gina", &pdf(5));
    req.headers_mut()
        .insert("origin", "https://app.example.com".parse().unwrap());
    let r = send(&app, req).await;
    assert_eq!(r.status, 200);
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("ratelimit") && exposed.contains("retry-after"),
        "{exposed}"
    );
}

#[tokio::test]
async fn health_and_demo_page() {
    let (app, _) = app(&[]);
    let r = send(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"status": "ok"})));
    let r = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.raw.contains("<html"), "demo page served");
    let r = send(
        &app,
        Request::get("/assets/uploadgate.js")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.raw.contains("export"), "the client module is served");
}

/// Another process that wins every compare-and-swap on the key: the gate
/// gives up after its attempts and answers 429 `busy` with a short
/// `Retry-After`, charging nothing; never a 5xx, never an admission.
#[tokio::test]
async fn a_key_too_busy_to_decide_is_a_429_not_an_outage() {
    use uploadgate_core::{CasOutcome, StateKey, Store, StoreError, Timestamp, Versioned, Write};

    /// A real memory store, plus a rival that rewrites every key just
    /// before each of our compare-and-swaps.
    struct Rival(MemoryStore);

    impl Store for Rival {
        async fn load(&self, k: &[StateKey]) -> Result<Vec<Option<Versioned>>, StoreError> {
            self.0.load(k).await
        }
        async fn compare_and_swap(&self, w: Vec<Write>) -> Result<CasOutcome, StoreError> {
            let current = self
                .0
                .load(&w.iter().map(|w| w.key.clone()).collect::<Vec<_>>())
                .await?;
            // The rival leaves the state as it is, only its version moves.
            let rival = w
                .iter()
                .zip(current)
                .map(|(w, cur)| Write {
                    key: w.key.clone(),
                    expected: cur.as_ref().map(|c| c.version),
                    state: cur.map(|c| c.state).unwrap_or_default(),
                    expire_at: w.expire_at,
                })
                .collect();
            assert!(matches!(
                self.0.compare_and_swap(rival).await?,
                CasOutcome::Committed(_)
            ));
            self.0.compare_and_swap(w).await
        }
        async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
            self.0.purge_expired(now).await
        }
    }

    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    impl uploadgate_http::MetricsSink for Sink {
        fn emit(&self, line: String) {
            self.0.lock().unwrap().push(line);
        }
    }
    let cfg = config(&[("UPLOADGATE_LIMITS", "uploads=user:5/3h")]);
    let p = presigner(&cfg);
    let clock: std::sync::Arc<dyn uploadgate_core::Clock> = std::sync::Arc::new(FakeClock::new(T0));
    let app = uploadgate_http::router(uploadgate_http::AppState::with_metrics_sink(
        cfg.gate,
        Rival(MemoryStore::new()),
        clock,
        p,
        Some(std::sync::Arc::new(Sink(lines.clone()))),
    ));
    let r = upload(&app, "bea", 10).await;
    assert_eq!(r.status, 429, "{}", r.raw);
    assert_eq!(
        r.body["type"],
        json!("https://uploadgate.dev/problems/busy")
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.body.get("url").is_none());
    let metric: serde_json::Value = serde_json::from_str(&lines.lock().unwrap()[0]).unwrap();
    assert_eq!(
        (
            metric["Contention"].as_u64(),
            metric["Allowed"].as_u64(),
            metric["Denied"].as_u64()
        ),
        (Some(1), Some(0), Some(0))
    );
}
