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
//! - `jwt`: `POST /v1/uploads` on the memory store with
//!   `UPLOADGATE_IDENTITY=jwt`: every request carries an ES256 bearer token
//!   (one per user), verified against a PEM key;
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
//! (`uploads=user:1500/1h`: sliding, the default algorithm, with about the
//! largest count the configuration's state-size check admits; a run charges
//! each of 10000 users a few dozen uploads at most), `UG_BENCH_LOG` (unset: no tracing
//! subscriber; e.g. `info`: the `serve` command's subscriber and filter,
//! writing to a sink, to measure logging cost), `UG_BENCH_PHASES`
//! (`healthz,memory,file,jwt`), `UG_BENCH_BREAKDOWN_SECS` (1; 0 skips the
//! in-process breakdown printed first).
//!
//! The bench process uses the binary's global allocator (mimalloc), so the
//! figures are those of `uploadgate serve`.
//!
//! Run: `cargo bench -p uploadgate --bench http`. Without `--bench` (as
//! `cargo test --benches` runs it) it does a short smoke run instead.

#![allow(missing_docs)]

mod breakdown;
mod jwt;
mod load;

use breakdown::breakdown;
use load::{Kind, PhaseResult, Target, ms, run_phase, sanity};

/// As in `src/main.rs`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
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
            limits: env_or("UG_BENCH_LIMITS", "uploads=user:1500/1h".to_owned()),
            log: std::env::var("UG_BENCH_LOG").ok().filter(|s| !s.is_empty()),
            phases: env_or("UG_BENCH_PHASES", "healthz,memory,file,jwt".to_owned())
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
    build_state_full(settings, store, &[], adapt)
}

/// [`build_state`] with more settings (`UPLOADGATE_*` pairs).
fn build_state_env<S: Store>(settings: &Settings, store: S, env: &[(&str, &str)]) -> AppState {
    build_state_full(settings, store, env, |p| p)
}

fn build_state_full<S: Store>(
    settings: &Settings,
    store: S,
    env: &[(&str, &str)],
    adapt: impl FnOnce(Presigner) -> Presigner,
) -> AppState {
    let limits = settings.limits.clone();
    let config = Config::from_lookup(&[], move |k| {
        (k == "UPLOADGATE_LIMITS")
            .then(|| limits.clone())
            .or_else(|| {
                env.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            })
    })
    .expect("bench configuration is valid");
    let presigner = adapt(presigner(config.bucket.clone(), config.url_ttl));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    AppState::new(config.gate, store, clock, presigner)
}

/// Starts the router on 127.0.0.1:0 exactly as `serve` does (the same
/// server, with `serve`'s default limits); returns its address. Runs on the
/// current (server) runtime.
async fn start(state: AppState) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let limits = uploadgate_app::server::Limits {
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        max_connections: 1024,
    };
    tokio::spawn(uploadgate_app::server::serve(
        listener,
        router(state),
        limits,
        std::future::pending(),
    ));
    addr
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
    let (jwt_key, tokens) = jwt::tokens(dir.path(), s.users.min(2_000));
    let (mem_addr, file_addr, sdk_addr, jwt_addr) = server_rt.block_on(async {
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
        let jwt_key = jwt_key.to_string_lossy().into_owned();
        let jwt = start(build_state_env(
            &s,
            MemoryStore::new(),
            &[
                ("UPLOADGATE_IDENTITY", "jwt"),
                ("UPLOADGATE_JWT_ISSUER", jwt::ISSUER),
                ("UPLOADGATE_JWT_AUDIENCE", jwt::AUDIENCE),
                ("UPLOADGATE_JWT_PUBLIC_KEY", &jwt_key),
            ],
        ))
        .await;
        (mem, file, sdk, jwt)
    });
    let all = [
        Target {
            name: "healthz",
            addr: mem_addr,
            kind: Kind::Healthz,
            tokens: None,
        },
        Target {
            name: "memory",
            addr: mem_addr,
            kind: Kind::Upload,
            tokens: None,
        },
        Target {
            name: "file",
            addr: file_addr,
            kind: Kind::Upload,
            tokens: None,
        },
        Target {
            name: "check",
            addr: mem_addr,
            kind: Kind::Check,
            tokens: None,
        },
        Target {
            name: "sdk",
            addr: sdk_addr,
            kind: Kind::Upload,
            tokens: None,
        },
        Target {
            name: "jwt",
            addr: jwt_addr,
            kind: Kind::UploadJwt,
            tokens: Some(tokens.clone()),
        },
    ];
    let targets: Vec<Target> = s
        .phases
        .iter()
        .map(|p| {
            all.iter()
                .find(|t| t.name == p)
                .unwrap_or_else(|| {
                    panic!("unknown phase {p:?} (healthz, memory, file, check, sdk, jwt)")
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
        breakdown(&s, dir.path(), &tokens);
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

    load::report(&s, &targets, &results);
    drop(server_rt);
    drop(dir);
}
