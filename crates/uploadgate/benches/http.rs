//! End-to-end throughput of the real router over loopback HTTP/1.1.
//!
//! Starts `router(state)` in-process with `axum::serve` exactly as `serve`
//! does (on 127.0.0.1:0, with `ConnectInfo`), twice: once on the memory
//! store, once on the file store (in a temporary directory). Then drives it
//! with a closed-loop keep-alive HTTP/1.1 load (hyper's connection-level
//! client; one request in flight per connection) and compares:
//!
//! - `healthz`: `GET /healthz` (the ceiling: routing, layers, HTTP);
//! - `memory`:  `POST /v1/uploads` on the memory store;
//! - `file`:    `POST /v1/uploads` on the file store;
//! - `check` (only when listed in `UG_BENCH_PHASES`): `POST /upload-check`
//!   with `{}` on the memory store: the upload path without the presign.
//! - `sdk` (only when listed in `UG_BENCH_PHASES`): `POST /v1/uploads` on a
//!   third server, memory store, whose presigner signs through aws-sdk-s3's
//!   `presigned()` (the former path) instead of aws-sigv4 directly.
//!
//! Phases are interleaved (healthz, memory, file, healthz, ...) for a few
//! rounds; the summary reports medians. Every response must be 200: a phase
//! with any other answer prints what it got and the run aborts.
//!
//! Before the load, a breakdown runs in-process, one call at a time: the
//! router without TCP (`healthz`, uploads on each store, `upload-check`
//! with `{}`, uploads presigned through the SDK), then
//! `Limiter::consume` and `Presigner::presign_put` alone, and a scaling
//! check: `presign_put` on one thread versus all cores, sharing one
//! `Presigner` or one each, next to a pure-CPU control loop.
//!
//! The server and the load generator run on separate tokio runtimes with
//! named threads, so CPU time (from `/proc/self/task`) is split into server
//! and client shares: `srv µs/req` is server CPU per request.
//!
//! Knobs (environment): `UG_BENCH_SECS` (5), `UG_BENCH_WARMUP` (1),
//! `UG_BENCH_ROUNDS` (3), `UG_BENCH_CONC` (64), `UG_BENCH_USERS` (10000),
//! `UG_BENCH_MAX_REQS` per phase (2000000), `UG_BENCH_SERVER_THREADS`
//! (cores), `UG_BENCH_CLIENT_THREADS` (1), `UG_BENCH_LIMITS`
//! (`uploads=user:2000/1h`: sliding, the default algorithm, with about the
//! largest count the configuration's state-size check admits; a run charges
//! each of 10000 users a few dozen uploads at most), `UG_BENCH_LOG` (unset: no tracing
//! subscriber; e.g. `info`: the `serve` command's subscriber and filter,
//! writing to a sink, to measure logging cost), `UG_BENCH_PHASES`
//! (`healthz,memory,file`), `UG_BENCH_BREAKDOWN_SECS` (1; 0 skips the
//! in-process breakdown printed first).
//!
//! The bench process uses the binary's global allocator (mimalloc), so the
//! figures are those of `uploadgate serve`.
//!
//! Run: `cargo bench -p uploadgate --bench http`. Without `--bench` (as
//! `cargo test --benches` runs it) it does a short smoke run instead.

#![allow(missing_docs)]

/// As in `src/main.rs`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use uploadgate_app::Config;
use uploadgate_core::{Clock, MemoryStore, Store, SystemClock};
use uploadgate_http::{AppState, router};
use uploadgate_s3::{LocalCredentials, Presigner};
use uploadgate_store_file::FileStore;

const UPLOAD_BODY: &str =
    r#"{"filename":"report.pdf","contentType":"application/pdf","size":123456}"#;
/// The presigner's endpoint; nothing listens there (the bench never PUTs).
const DUMMY_S3: &str = "http://127.0.0.1:9";
const SERVER_THREAD: &str = "ug-bench-srv";
const CLIENT_THREAD: &str = "ug-bench-cli";

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

#[derive(Clone, Debug)]
struct Settings {
    secs: f64,
    warmup: f64,
    rounds: usize,
    conc: usize,
    users: u64,
    max_reqs: u64,
    server_threads: usize,
    client_threads: usize,
    limits: String,
    log: Option<String>,
    phases: Vec<String>,
    breakdown_secs: f64,
}

impl Settings {
    /// `full`: the timed defaults (`cargo bench` passes `--bench`);
    /// otherwise (`cargo test --benches`) a short smoke run that only checks
    /// every answer is 200.
    fn from_env(full: bool) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (secs, warmup, breakdown) = if full {
            (5.0, 1.0, 1.0)
        } else {
            (0.2, 0.1, 0.05)
        };
        Settings {
            secs: env_or("UG_BENCH_SECS", secs),
            warmup: env_or("UG_BENCH_WARMUP", warmup),
            rounds: env_or("UG_BENCH_ROUNDS", if full { 3 } else { 1 }),
            conc: env_or("UG_BENCH_CONC", 64),
            users: env_or("UG_BENCH_USERS", 10_000),
            max_reqs: env_or("UG_BENCH_MAX_REQS", 2_000_000),
            server_threads: env_or("UG_BENCH_SERVER_THREADS", cores),
            client_threads: env_or("UG_BENCH_CLIENT_THREADS", 1),
            limits: env_or("UG_BENCH_LIMITS", "uploads=user:2000/1h".to_owned()),
            log: std::env::var("UG_BENCH_LOG").ok().filter(|s| !s.is_empty()),
            phases: env_or("UG_BENCH_PHASES", "healthz,memory,file".to_owned())
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            breakdown_secs: env_or("UG_BENCH_BREAKDOWN_SECS", breakdown),
        }
    }
}

fn presigner(bucket: String, ttl: Duration) -> Presigner {
    let creds = LocalCredentials {
        access_key: "AKIDEXAMPLE".into(),
        secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
    };
    Presigner::for_local(DUMMY_S3, &creds, bucket, ttl)
}

/// The state `serve` would build for this policy, on `store`.
fn build_state<S: Store>(settings: &Settings, store: S) -> AppState {
    build_state_with(settings, store, |p| p)
}

/// [`build_state`], with the presigner passed through `adapt`.
fn build_state_with<S: Store>(
    settings: &Settings,
    store: S,
    adapt: impl FnOnce(Presigner) -> Presigner,
) -> AppState {
    let limits = settings.limits.clone();
    let config = Config::from_lookup(&[], move |k| {
        (k == "UPLOADGATE_LIMITS").then(|| limits.clone())
    })
    .expect("bench configuration is valid");
    let presigner = adapt(presigner(config.bucket.clone(), config.url_ttl));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    AppState::new(config.gate, store, clock, presigner)
}

/// Starts the router on 127.0.0.1:0 exactly as `serve` does; returns its
/// address. Runs on the current (server) runtime.
async fn start(state: AppState) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await.expect("server");
    });
    addr
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Healthz,
    Upload,
    /// `POST /upload-check` with `{}`: the same parsing, limiter charge and
    /// JSON answer as an upload, but no presign (and no key, UUID or expiry).
    Check,
}

#[derive(Clone, Debug)]
struct Target {
    name: &'static str,
    addr: SocketAddr,
    kind: Kind,
}

fn request(t: &Target, user: u64) -> hyper::Request<Full<Bytes>> {
    let b = hyper::Request::builder().header(hyper::header::HOST, t.addr.to_string());
    match t.kind {
        Kind::Healthz => b
            .method("GET")
            .uri("/healthz")
            .body(Full::new(Bytes::new())),
        Kind::Upload => b
            .method("POST")
            .uri("/v1/uploads")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("x-user-id", format!("user-{user}"))
            .body(Full::new(Bytes::from_static(UPLOAD_BODY.as_bytes()))),
        Kind::Check => b
            .method("POST")
            .uri("/upload-check")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("x-user-id", format!("user-{user}"))
            .body(Full::new(Bytes::from_static(b"{}"))),
    }
    .expect("valid request")
}

#[derive(Default)]
struct WorkerOut {
    /// Latencies (µs) of 200 answers completed inside the measured window.
    lat_us: Vec<u32>,
    /// Requests answered (any status), whole phase.
    answered: u64,
    failures: Vec<String>,
    failed: u64,
}

struct Window {
    warm_end: Instant,
    end: Instant,
}

async fn worker(
    t: Target,
    id: u64,
    users: u64,
    win: Arc<Window>,
    issued: Arc<AtomicU64>,
    max_reqs: u64,
    abort: Arc<AtomicBool>,
) -> WorkerOut {
    let mut out = WorkerOut::default();
    fn fail(out: &mut WorkerOut, msg: String) {
        out.failed += 1;
        if out.failures.len() < 5 {
            out.failures.push(msg);
        }
    }
    let stream = match TcpStream::connect(t.addr).await {
        Ok(s) => s,
        Err(e) => {
            fail(&mut out, format!("connect: {e}"));
            return out;
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = match http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await {
        Ok(x) => x,
        Err(e) => {
            fail(&mut out, format!("handshake: {e}"));
            return out;
        }
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    // xorshift64*, seeded per worker: users spread uniformly, no hot key.
    let mut rng =
        0x9E37_79B9_7F4A_7C15_u64 ^ (id.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut next_user = || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % users
    };
    out.lat_us.reserve(1 << 16);
    loop {
        if abort.load(Ordering::Relaxed)
            || Instant::now() >= win.end
            || issued.fetch_add(1, Ordering::Relaxed) >= max_reqs
        {
            break;
        }
        let req = request(&t, next_user());
        let t0 = Instant::now();
        if let Err(e) = sender.ready().await {
            fail(&mut out, format!("connection not ready: {e}"));
            abort.store(true, Ordering::Relaxed);
            break;
        }
        let res = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                fail(&mut out, format!("send: {e}"));
                abort.store(true, Ordering::Relaxed);
                break;
            }
        };
        let status = res.status();
        let body = match res.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                fail(&mut out, format!("body: {e}"));
                abort.store(true, Ordering::Relaxed);
                break;
            }
        };
        let done = Instant::now();
        out.answered += 1;
        if status != hyper::StatusCode::OK {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            fail(&mut out, format!("{status}: {text}"));
            abort.store(true, Ordering::Relaxed);
            continue;
        }
        if done >= win.warm_end && done <= win.end {
            out.lat_us
                .push(u32::try_from((done - t0).as_micros()).unwrap_or(u32::MAX));
        }
    }
    out
}

/// CPU time (µs) per thread-name group, from /proc/self/task/*/stat.
fn cpu_by_group() -> HashMap<&'static str, u64> {
    let tick_us = 1_000_000 / clock_ticks();
    let mut m = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return m;
    };
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // comm is in parentheses and may contain spaces; fields follow ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is field 3 (state): utime is field 14, stime field 15.
        let (Some(u), Some(s)) = (f.get(11), f.get(12)) else {
            continue;
        };
        let ticks = u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0);
        let group = if comm.starts_with(SERVER_THREAD) {
            "server"
        } else if comm.starts_with(CLIENT_THREAD) {
            "client"
        } else {
            "other"
        };
        *m.entry(group).or_insert(0) += ticks * tick_us;
    }
    m
}

fn clock_ticks() -> u64 {
    // USER_HZ is 100 on every Linux configuration that matters here.
    100
}

#[derive(Clone, Debug)]
struct PhaseResult {
    rps: f64,
    p50_us: u32,
    p99_us: u32,
    srv_cpu_us_per_req: f64,
    cli_cpu_us_per_req: f64,
    cpu_util: f64,
    measured: u64,
    /// Answered requests, warm-up included.
    answered: u64,
}

async fn run_phase(s: &Settings, t: &Target) -> PhaseResult {
    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(s.warmup);
    let win = Arc::new(Window {
        warm_end,
        end: warm_end + Duration::from_secs_f64(s.secs),
    });
    let issued = Arc::new(AtomicU64::new(0));
    let abort = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..s.conc)
        .map(|i| {
            tokio::spawn(worker(
                t.clone(),
                i as u64,
                s.users,
                Arc::clone(&win),
                Arc::clone(&issued),
                s.max_reqs,
                Arc::clone(&abort),
            ))
        })
        .collect();
    tokio::time::sleep_until(win.warm_end.into()).await;
    let cpu0 = cpu_by_group();
    let t_cpu0 = Instant::now();
    let sampler = {
        let win = Arc::clone(&win);
        let abort = Arc::clone(&abort);
        tokio::spawn(async move {
            // Sample at the end of the window (or on abort).
            while Instant::now() < win.end && !abort.load(Ordering::Relaxed) {
                tokio::time::sleep(
                    Duration::from_millis(20)
                        .min(win.end.saturating_duration_since(Instant::now())),
                )
                .await;
            }
            (cpu_by_group(), Instant::now())
        })
    };
    let mut outs = Vec::with_capacity(handles.len());
    for h in handles {
        outs.push(h.await.expect("worker panicked"));
    }
    let stopped = Instant::now();
    let (cpu1, t_cpu1) = sampler.await.expect("sampler");
    let failed: u64 = outs.iter().map(|o| o.failed).sum();
    if failed > 0 {
        eprintln!(
            "\nABORT: phase `{}` got {failed} failed or non-200 answers; first ones:",
            t.name
        );
        for f in outs.iter().flat_map(|o| &o.failures).take(10) {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
    let mut lat: Vec<u32> = outs
        .iter_mut()
        .flat_map(|o| std::mem::take(&mut o.lat_us))
        .collect();
    lat.sort_unstable();
    let measured = lat.len() as u64;
    let window = (win.end.min(stopped) - win.warm_end).as_secs_f64();
    let pct = |p: usize| {
        lat.get((lat.len() * p / 100).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let d = |g: &str| {
        cpu1.get(g)
            .copied()
            .unwrap_or(0)
            .saturating_sub(cpu0.get(g).copied().unwrap_or(0)) as f64
    };
    let cpu_secs = (t_cpu1 - t_cpu0).as_secs_f64();
    // Requests answered during the CPU sampling window (≈ the measured one).
    let reqs_in_cpu_window = (measured as f64 * cpu_secs / window).max(1.0);
    PhaseResult {
        rps: measured as f64 / window,
        p50_us: pct(50),
        p99_us: pct(99),
        srv_cpu_us_per_req: d("server") / reqs_in_cpu_window,
        cli_cpu_us_per_req: d("client") / reqs_in_cpu_window,
        cpu_util: (d("server") + d("client") + d("other")) / 1e6 / cpu_secs,
        measured,
        answered: outs.iter().map(|o| o.answered).sum(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

/// One request per target, before timing: checks the answer is the real one.
async fn sanity(targets: &[Target]) {
    for t in targets {
        let stream = TcpStream::connect(t.addr).await.expect("connect");
        let (mut sender, conn) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let res = sender.send_request(request(t, 0)).await.expect("send");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, hyper::StatusCode::OK, "{}: {text}", t.name);
        if t.kind == Kind::Upload {
            assert!(
                text.contains(&format!("\"url\":\"{DUMMY_S3}/uploads/uploads/user-0/")),
                "{}: unexpected upload answer: {text}",
                t.name
            );
            assert!(
                headers.contains_key("ratelimit"),
                "{}: no RateLimit header",
                t.name
            );
        }
        println!("sanity {:<8} {status} {} bytes", t.name, body.len());
    }
}

/// Times `f` sequentially (one at a time) for about `budget` or `max`
/// calls; returns µs per call.
async fn per_call<F, Fut>(budget: Duration, max: u64, mut f: F) -> f64
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
async fn consume_allowed(state: AppState, who: uploadgate_core::Subjects) {
    let d = state.meter().consume(&who, 123_456).await.expect("consume");
    assert!(d.allowed);
}

/// The router called in-process (no TCP, no HTTP codec), then its parts, one
/// request at a time on one thread: where a request's server time goes.
fn breakdown(s: &Settings, dir: &std::path::Path) {
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
fn rate_on_threads<M, F>(n: usize, budget: Duration, make: M) -> f64
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
fn uuid_like() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "00000000-0000-4000-8000-{:012x}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn main() {
    let s = Settings::from_env(std::env::args().any(|a| a == "--bench"));
    if let Some(filter) = &s.log {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_new(filter)
                    .expect("UG_BENCH_LOG is a valid filter"),
            )
            .with_writer(std::io::sink)
            .init();
    }
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(s.server_threads)
        .thread_name(SERVER_THREAD)
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(s.client_threads)
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()
        .expect("client runtime");

    // The file store lives on the real disk (not tmpfs) under target/.
    let dir = tempfile::Builder::new()
        .prefix("uploadgate-bench-")
        .tempdir_in(option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, Into::into))
        .expect("temp dir");
    let (mem_addr, file_addr, sdk_addr) = server_rt.block_on(async {
        let mem = start(build_state(&s, MemoryStore::new())).await;
        let file = start(build_state(
            &s,
            FileStore::open(&dir.path().join("serve")).expect("file store"),
        ))
        .await;
        let sdk = start(build_state_with(
            &s,
            MemoryStore::new(),
            Presigner::always_via_sdk,
        ))
        .await;
        (mem, file, sdk)
    });
    let all = [
        Target {
            name: "healthz",
            addr: mem_addr,
            kind: Kind::Healthz,
        },
        Target {
            name: "memory",
            addr: mem_addr,
            kind: Kind::Upload,
        },
        Target {
            name: "file",
            addr: file_addr,
            kind: Kind::Upload,
        },
        Target {
            name: "check",
            addr: mem_addr,
            kind: Kind::Check,
        },
        Target {
            name: "sdk",
            addr: sdk_addr,
            kind: Kind::Upload,
        },
    ];
    let targets: Vec<Target> = s
        .phases
        .iter()
        .map(|p| {
            all.iter()
                .find(|t| t.name == p)
                .unwrap_or_else(|| {
                    panic!("unknown phase {p:?} (healthz, memory, file, check, sdk)")
                })
                .clone()
        })
        .collect();

    println!(
        "uploadgate http bench: {} rounds x ({}s warm-up + {}s), {} connections, {} users, {} cores, \
         server threads {}, client threads {}, limits {:?}, tracing {}, file store in {}",
        s.rounds,
        s.warmup,
        s.secs,
        s.conc,
        s.users,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        s.server_threads,
        s.client_threads,
        s.limits,
        s.log.as_deref().unwrap_or("off"),
        dir.path().display(),
    );
    if s.breakdown_secs > 0.0 {
        breakdown(&s, dir.path());
    }
    let results: Vec<Vec<PhaseResult>> = client_rt.block_on(async {
        sanity(&targets).await;
        let mut results = vec![Vec::new(); targets.len()];
        for round in 1..=s.rounds {
            for (i, t) in targets.iter().enumerate() {
                let r = run_phase(&s, t).await;
                println!(
                    "round {round} {:<8} {:>9.0} req/s  p50 {:>9}  p99 {:>9}  srv {:>6.1} µs/req  cli {:>5.1} µs/req  cpu {:>4.0}%  ({} req)",
                    t.name,
                    r.rps,
                    ms(f64::from(r.p50_us)),
                    ms(f64::from(r.p99_us)),
                    r.srv_cpu_us_per_req,
                    r.cli_cpu_us_per_req,
                    r.cpu_util * 100.0,
                    r.measured,
                );
                results[i].push(r);
            }
        }
        results
    });

    if s.rounds == 0 || targets.is_empty() {
        return;
    }
    println!("\nmedians over {} rounds:", s.rounds);
    println!(
        "  {:<8} {:>9}  {:>9}  {:>9}  {:>10}  {:>10}",
        "phase", "req/s", "p50", "p99", "srv µs/req", "cli µs/req"
    );
    for (t, rs) in targets.iter().zip(&results) {
        let m = |f: fn(&PhaseResult) -> f64| median(rs.iter().map(f).collect());
        println!(
            "  {:<8} {:>9.0}  {:>9}  {:>9}  {:>10.1}  {:>10.1}",
            t.name,
            m(|r| r.rps),
            ms(m(|r| f64::from(r.p50_us))),
            ms(m(|r| f64::from(r.p99_us))),
            m(|r| r.srv_cpu_us_per_req),
            m(|r| r.cli_cpu_us_per_req),
        );
    }
    if let Some(h) = targets.iter().position(|t| t.kind == Kind::Healthz) {
        for (i, t) in targets
            .iter()
            .enumerate()
            .filter(|(_, t)| t.kind != Kind::Healthz)
        {
            let per_round: Vec<f64> = results[i]
                .iter()
                .zip(&results[h])
                .map(|(u, h)| u.rps / h.rps)
                .collect();
            let med_of_medians = median(results[i].iter().map(|r| r.rps).collect())
                / median(results[h].iter().map(|r| r.rps).collect());
            println!(
                "  ratio {}/healthz: {:.3} (ratio of medians; per round: {})",
                t.name,
                med_of_medians,
                per_round
                    .iter()
                    .map(|r| format!("{r:.3}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
    for (t, rs) in targets
        .iter()
        .zip(&results)
        .filter(|(t, _)| t.kind != Kind::Healthz)
    {
        let total: u64 = rs.iter().map(|r| r.answered).sum();
        println!(
            "  {}: {total} requests charged in this phase, ~{:.1} per user",
            t.name,
            total as f64 / s.users as f64
        );
    }
    drop(server_rt);
    drop(dir);
}
