//! The load: a closed-loop keep-alive HTTP/1.1 client per connection
//! (hyper's connection-level client, one request in flight each), CPU time
//! per thread group, and the per-phase and summary reports.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{CLIENT_THREAD, DUMMY_S3, SERVER_THREAD, Settings, UPLOAD_BODY};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Healthz,
    Upload,
    /// `POST /upload-check` with `{}`: the same parsing, limiter charge and
    /// JSON answer as an upload, but no presign (and no key, UUID or expiry).
    Check,
    /// `POST /v1/uploads` as a verified bearer token (one per user).
    UploadJwt,
}

#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) name: &'static str,
    pub(crate) addr: SocketAddr,
    pub(crate) kind: Kind,
    /// Per-user tokens, for [`Kind::UploadJwt`].
    pub(crate) tokens: Option<Arc<Vec<String>>>,
}

pub(crate) fn request(t: &Target, user: u64) -> hyper::Request<Full<Bytes>> {
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
        Kind::UploadJwt => {
            let tokens = t.tokens.as_ref().expect("jwt targets have tokens");
            let token = &tokens[(user % tokens.len() as u64) as usize];
            b.method("POST")
                .uri("/v1/uploads")
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Full::new(Bytes::from_static(UPLOAD_BODY.as_bytes())))
        }
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
pub(crate) struct WorkerOut {
    /// Latencies (µs) of 200 answers completed inside the measured window.
    lat_us: Vec<u32>,
    /// Requests answered (any status), whole phase.
    answered: u64,
    failures: Vec<String>,
    failed: u64,
}

pub(crate) struct Window {
    warm_end: Instant,
    end: Instant,
}

pub(crate) async fn worker(
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
pub(crate) fn cpu_by_group() -> HashMap<&'static str, u64> {
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

pub(crate) fn clock_ticks() -> u64 {
    // USER_HZ is 100 on every Linux configuration that matters here.
    100
}

#[derive(Clone, Debug)]
pub(crate) struct PhaseResult {
    pub(crate) rps: f64,
    pub(crate) p50_us: u32,
    pub(crate) p99_us: u32,
    pub(crate) srv_cpu_us_per_req: f64,
    pub(crate) cli_cpu_us_per_req: f64,
    pub(crate) cpu_util: f64,
    pub(crate) measured: u64,
    /// Answered requests, warm-up included.
    pub(crate) answered: u64,
}

pub(crate) async fn run_phase(s: &Settings, t: &Target) -> PhaseResult {
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

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub(crate) fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

/// One request per target, before timing: checks the answer is the real one.
pub(crate) async fn sanity(targets: &[Target]) {
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
        if matches!(t.kind, Kind::Upload | Kind::UploadJwt) {
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

/// The medians over all rounds, the ratios to `healthz`, and how much each
/// phase charged.
pub(crate) fn report(s: &Settings, targets: &[Target], results: &[Vec<PhaseResult>]) {
    if s.rounds == 0 || targets.is_empty() {
        return;
    }
    println!("\nmedians over {} rounds:", s.rounds);
    println!(
        "  {:<8} {:>9}  {:>9}  {:>9}  {:>10}  {:>10}",
        "phase", "req/s", "p50", "p99", "srv µs/req", "cli µs/req"
    );
    for (t, rs) in targets.iter().zip(results) {
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
        .zip(results)
        .filter(|(t, _)| t.kind != Kind::Healthz)
    {
        let total: u64 = rs.iter().map(|r| r.answered).sum();
        println!(
            "  {}: {total} requests charged in this phase, ~{:.1} per user",
            t.name,
            total as f64 / s.users as f64
        );
    }
}
