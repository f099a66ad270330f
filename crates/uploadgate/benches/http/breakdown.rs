//! The in-process breakdown: the router called without TCP, then its parts
//! (the limiter, the presigner), one call at a time; and a scaling check of
//! the presigner across threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use http_body_util::Full;
use hyper::body::Bytes;
use uploadgate_core::MemoryStore;
use uploadgate_http::{AppState, router};
use uploadgate_s3::Presigner;
use uploadgate_store_file::FileStore;

use crate::{Settings, UPLOAD_BODY, build_state, build_state_with, presigner};

/// Times `f` sequentially (one at a time) for about `budget` or `max`
/// calls; returns µs per call.
pub(crate) async fn per_call<F, Fut>(budget: Duration, max: u64, mut f: F) -> f64
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..max.min(200) {
        f(u64::MAX - i).await; // warm-up
    }
    let t0 = Instant::now();
    let mut n = 0;
    while n < max && t0.elapsed() < budget {
        f(n).await;
        n += 1;
    }
    t0.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// One admitted `consume` (the breakdown's limiter rows).
pub(crate) async fn consume_allowed(state: AppState, who: uploadgate_core::Subjects) {
    let charge = uploadgate_core::Charge {
        size: 123_456,
        ..Default::default()
    };
    let d = state.meter().consume(&who, &charge).await.expect("consume");
    assert!(d.allowed);
}

/// The router called in-process (no TCP, no HTTP codec), then its parts, one
/// request at a time on one thread: where a request's server time goes.
pub(crate) fn breakdown(s: &Settings, dir: &std::path::Path, tokens: &[String]) {
    use hyper::service::Service as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let budget = Duration::from_secs_f64(s.breakdown_secs);
    let users = s.users;
    let user = move |n: u64| format!("user-{}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15) % users);
    rt.block_on(async {
        let mem = build_state(s, MemoryStore::new());
        let file = build_state(
            s,
            FileStore::open(&dir.join("breakdown")).expect("file store"),
        );
        let svc_mem = hyper_util::service::TowerToHyperService::new(router(mem.clone()));
        let svc_file = hyper_util::service::TowerToHyperService::new(router(file.clone()));
        let svc_sdk = hyper_util::service::TowerToHyperService::new(router(build_state_with(
            s,
            MemoryStore::new(),
            Presigner::always_via_sdk,
        )));
        let call = |svc: &hyper_util::service::TowerToHyperService<axum::Router>,
                    req: hyper::Request<Full<Bytes>>| {
            let fut = svc.call(req);
            async move {
                let res = fut.await.expect("infallible");
                assert_eq!(res.status(), hyper::StatusCode::OK);
                std::hint::black_box(res.into_body().collect().await.expect("body").to_bytes());
            }
        };
        let healthz = |_| {
            hyper::Request::get("/healthz")
                .body(Full::new(Bytes::new()))
                .expect("request")
        };
        let upload = |n| {
            hyper::Request::post("/v1/uploads")
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .header("x-user-id", user(n))
                .body(Full::new(Bytes::from_static(UPLOAD_BODY.as_bytes())))
                .expect("request")
        };
        let check = |n| {
            hyper::Request::post("/upload-check")
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .header("x-user-id", user(n))
                .body(Full::new(Bytes::from_static(b"{}")))
                .expect("request")
        };
        let subjects = |n| uploadgate_core::Subjects {
            user: uploadgate_core::UserId::parse(&user(n)).expect("user id"),
            ip: None,
        };
        let p = presigner("uploads".into(), Duration::from_secs(300));
        let uid = uploadgate_core::UserId::parse("user-1").expect("user id");

        let mut rows: Vec<(&str, f64)> = Vec::new();
        rows.push((
            "router: GET /healthz",
            per_call(budget, 1_000_000, |n| call(&svc_mem, healthz(n))).await,
        ));
        rows.push((
            "router: POST /v1/uploads (memory)",
            per_call(budget, 1_000_000, |n| call(&svc_mem, upload(n))).await,
        ));
        rows.push((
            "router: POST /upload-check {}",
            per_call(budget, 1_000_000, |n| call(&svc_mem, check(n))).await,
        ));
        rows.push((
            "router: POST /v1/uploads (SDK presign)",
            per_call(budget, 1_000_000, |n| call(&svc_sdk, upload(n))).await,
        ));
        rows.push((
            "router: POST /v1/uploads (file)",
            per_call(budget, 20_000, |n| call(&svc_file, upload(n))).await,
        ));
        rows.push((
            "limiter.consume (memory)",
            per_call(budget, 1_000_000, |n| {
                consume_allowed(mem.clone(), subjects(n))
            })
            .await,
        ));
        rows.push((
            "limiter.consume (file)",
            per_call(budget, 20_000, |n| {
                consume_allowed(file.clone(), subjects(n))
            })
            .await,
        ));
        rows.push((
            "presign_put (fresh uuid key)",
            per_call(budget, 1_000_000, |_| {
                let key = uploadgate_core::ObjectKey::for_upload(
                    "uploads/",
                    &uid,
                    &uuid_like(),
                    "report.pdf",
                );
                let p = &p;
                async move {
                    std::hint::black_box(
                        p.presign_put(
                            &key,
                            "application/pdf",
                            123_456,
                            std::time::SystemTime::now(),
                        )
                        .await
                        .expect("presign"),
                    );
                }
            })
            .await,
        ));
        // One ES256 token verification (signature, claims, user), as the
        // `jwt` identity mode does per request.
        let pem = std::fs::read(dir.join("issuer.pem")).expect("the bench's public key");
        let verifier = uploadgate_http::token::JwtVerifier::new(
            uploadgate_http::token::JwtConfig {
                issuer: crate::jwt::ISSUER.into(),
                audiences: vec![crate::jwt::AUDIENCE.into()],
                keys: uploadgate_http::token::KeySource::Static(
                    uploadgate_http::token::PublicKey::from_pem(&pem).expect("PEM key"),
                ),
                token_use: None,
                user_claim: "sub".into(),
                tier_claim: None,
                leeway: Duration::from_secs(30),
                header: hyper::header::AUTHORIZATION,
            },
            std::sync::Arc::new(uploadgate_core::SystemClock),
        );
        let n_tokens = tokens.len() as u64;
        rows.push((
            "JwtVerifier::verify (ES256)",
            per_call(budget, 1_000_000, |n| {
                let token = &tokens[(n % n_tokens) as usize];
                let verifier = &verifier;
                async move {
                    std::hint::black_box(verifier.verify(token).await.expect("a valid token"));
                }
            })
            .await,
        ));
        println!(
            "breakdown: one request at a time, in-process, one thread (µs per call, wall time)"
        );
        for (name, us) in &rows {
            println!("  {name:<36} {us:>8.1} µs");
        }
    });
    // Does the signing path scale with threads? Control: a pure-CPU loop.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let p = presigner("uploads".into(), Duration::from_secs(300));
    let presign_rate = |n: usize, shared: bool| {
        rate_on_threads(n, budget, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let uid = uploadgate_core::UserId::parse("user-1").expect("user id");
            let p = if shared {
                p.clone()
            } else {
                presigner("uploads".into(), Duration::from_secs(300))
            };
            move || {
                let key = uploadgate_core::ObjectKey::for_upload(
                    "uploads/",
                    &uid,
                    &uuid_like(),
                    "report.pdf",
                );
                std::hint::black_box(
                    rt.block_on(p.presign_put(
                        &key,
                        "application/pdf",
                        123_456,
                        std::time::SystemTime::now(),
                    ))
                    .expect("presign"),
                );
            }
        })
    };
    let cpu_rate = |n: usize| {
        rate_on_threads(n, budget, || {
            let mut x = 0x1234_5678_u64;
            move || {
                for _ in 0..10_000 {
                    x = std::hint::black_box(
                        x.rotate_left(7) ^ x.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    );
                }
            }
        })
    };
    let (p1, pn, po, c1, cn) = (
        presign_rate(1, true),
        presign_rate(threads, true),
        presign_rate(threads, false),
        cpu_rate(1),
        cpu_rate(threads),
    );
    println!(
        "scaling: presign_put {p1:.0}/s on 1 thread; on {threads} threads {pn:.0}/s sharing one Presigner (x{:.2}), \
         {po:.0}/s with one Presigner each (x{:.2}); control CPU loop x{:.2}",
        pn / p1,
        po / p1,
        cn / c1
    );
}

/// Calls per second of `make()`'s closure, run on `n` threads at once.
pub(crate) fn rate_on_threads<M, F>(n: usize, budget: Duration, make: M) -> f64
where
    M: Fn() -> F + Sync,
    F: FnMut(),
{
    let total = AtomicU64::new(0);
    let start = Instant::now() + Duration::from_millis(50);
    std::thread::scope(|sc| {
        for _ in 0..n {
            sc.spawn(|| {
                let mut f = make();
                while Instant::now() < start {
                    f();
                }
                let mut k = 0;
                while start.elapsed() < budget {
                    f();
                    k += 1;
                }
                total.fetch_add(k, Ordering::Relaxed);
            });
        }
    });
    total.load(Ordering::Relaxed) as f64 / budget.as_secs_f64()
}

/// A UUID-shaped unique string (the bench does not depend on `uuid`).
pub(crate) fn uuid_like() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "00000000-0000-4000-8000-{:012x}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}
