//! Cost of signing one upload URL, side by side: `Presigner::presign`
//! (aws-sigv4 directly, as `POST /v1/uploads` calls it) and
//! `presign_via_sdk` (aws-sdk-s3's `presigned()`, the oracle), both on
//! the local target with fixed credentials.
//!
//! Run: `cargo bench -p uploadgate-s3 --bench presign`. Criterion's `time:`
//! line is the cost per presign; `thrpt:` is presigns per second. A last
//! line, `ratio`, times both paths in interleaved batches and prints µs per
//! presign for each and how many times slower the SDK is.
//!
//! - `{direct,sdk}/fixed_key`: the same key, content type and size every time.
//! - `{direct,sdk}/fresh_key`: a new UUID and object key per call, as the
//!   handler does (the UUID and key building are included).
//! - `{direct,sdk}/start_now`: fresh key and `SystemTime::now()` as the start
//!   time.
//! - `{direct,sdk}/checksum`: fresh key, start now, and a signed
//!   `x-amz-checksum-sha256` (issue 12's shape: one more signed header).
//! - `parts/*`: the UUID and object key alone, for scale.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput, criterion_group};
use uploadgate_core::{ObjectKey, UserId};
use uploadgate_s3::{ChecksumSha256, LocalCredentials, PresignedUpload, Presigner, PutSpec};

fn presigner() -> Presigner {
    let creds = LocalCredentials {
        access_key: "AKIDEXAMPLE".into(),
        secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
    };
    Presigner::for_local(
        "http://127.0.0.1:9000",
        &creds,
        "uploads".into(),
        Duration::from_secs(300),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn fixed_key(user: &UserId) -> ObjectKey {
    ObjectKey::for_upload(
        "uploads/",
        user,
        "0b7e2a43-6f0c-4d7e-9a55-2b1f3f0c9d11",
        "report.pdf",
    )
}

fn fresh_key(user: &UserId) -> ObjectKey {
    ObjectKey::for_upload(
        "uploads/",
        user,
        &uuid::Uuid::new_v4().to_string(),
        "report.pdf",
    )
}

#[derive(Clone, Copy, Debug)]
enum Path {
    Direct,
    Sdk,
}

impl Path {
    const ALL: [Path; 2] = [Path::Direct, Path::Sdk];

    fn name(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Sdk => "sdk",
        }
    }

    async fn sign(
        self,
        p: &Presigner,
        key: &ObjectKey,
        ctype: &str,
        size: u64,
        now: SystemTime,
    ) -> PresignedUpload {
        self.sign_spec(p, &PutSpec::new(key, ctype, size), now)
            .await
    }

    async fn sign_spec(
        self,
        p: &Presigner,
        spec: &PutSpec<'_>,
        now: SystemTime,
    ) -> PresignedUpload {
        match self {
            Path::Direct => p.presign(spec, now).await,
            Path::Sdk => p.presign_via_sdk(spec, now).await,
        }
        .expect("presign")
    }
}

/// SHA-256 of `hello`: a fixed, valid checksum.
fn checksum() -> ChecksumSha256 {
    ChecksumSha256::parse("LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=").expect("valid checksum")
}

fn bench_presign(c: &mut Criterion) {
    let rt = runtime();
    let p = presigner();
    let user = UserId::parse("user-4242").expect("valid user id");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let key = fixed_key(&user);
    let sum = checksum();

    // Sanity: both paths hand out the same URL, the one the handler would,
    // with and without the checksum.
    let direct = rt.block_on(Path::Direct.sign(&p, &key, "application/pdf", 12_345, now));
    let sdk = rt.block_on(Path::Sdk.sign(&p, &key, "application/pdf", 12_345, now));
    assert!(direct.url.contains("X-Amz-Signature="), "{}", direct.url);
    assert_eq!(direct, sdk);
    let spec = PutSpec::new(&key, "application/pdf", 12_345).with_checksum_sha256(&sum);
    let direct = rt.block_on(Path::Direct.sign_spec(&p, &spec, now));
    assert_eq!(direct, rt.block_on(Path::Sdk.sign_spec(&p, &spec, now)));
    assert!(
        direct.url.contains("x-amz-checksum-sha256"),
        "{}",
        direct.url
    );

    let mut g = c.benchmark_group("presign_put");
    g.throughput(Throughput::Elements(1));
    for path in Path::ALL {
        g.bench_function(format!("{}/fixed_key", path.name()), |b| {
            b.to_async(&rt).iter(|| async {
                black_box(
                    path.sign(
                        &p,
                        black_box(&key),
                        "application/pdf",
                        black_box(12_345),
                        now,
                    )
                    .await,
                )
            })
        });
    }
    for path in Path::ALL {
        g.bench_function(format!("{}/fresh_key", path.name()), |b| {
            b.to_async(&rt).iter(|| async {
                let key = fresh_key(&user);
                black_box(path.sign(&p, &key, "application/pdf", 12_345, now).await)
            })
        });
    }
    for path in Path::ALL {
        g.bench_function(format!("{}/start_now", path.name()), |b| {
            b.to_async(&rt).iter(|| async {
                let key = fresh_key(&user);
                black_box(
                    path.sign(&p, &key, "application/pdf", 12_345, SystemTime::now())
                        .await,
                )
            })
        });
    }
    for path in Path::ALL {
        g.bench_function(format!("{}/checksum", path.name()), |b| {
            b.to_async(&rt).iter(|| async {
                let key = fresh_key(&user);
                let spec = PutSpec::new(&key, "application/pdf", 12_345).with_checksum_sha256(&sum);
                black_box(path.sign_spec(&p, &spec, SystemTime::now()).await)
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("parts");
    g.bench_function("uuid_v4_string", |b| {
        b.iter(|| black_box(uuid::Uuid::new_v4().to_string()))
    });
    g.bench_function("object_key", |b| {
        b.iter(|| {
            black_box(ObjectKey::for_upload(
                "uploads/",
                &user,
                "0b7e2a43-6f0c-4d7e-9a55-2b1f3f0c9d11",
                black_box("report.pdf"),
            ))
        })
    });
    g.finish();
}

/// µs per presign on each path (fresh key, `SystemTime::now()`), measured
/// in alternating batches so both see the same machine load; medians. With
/// and without a signed checksum.
fn ratio(full: bool) {
    let rt = runtime();
    let p = presigner();
    let user = UserId::parse("user-4242").expect("valid user id");
    let sum = checksum();
    let (rounds, batch) = if full {
        (7, Duration::from_millis(300))
    } else {
        (1, Duration::from_millis(20))
    };
    for with_checksum in [false, true] {
        let mut us: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (i, path) in Path::ALL.into_iter().enumerate() {
                let start = Instant::now();
                let mut n = 0u32;
                while start.elapsed() < batch {
                    let key = fresh_key(&user);
                    let mut spec = PutSpec::new(&key, "application/pdf", 12_345);
                    if with_checksum {
                        spec = spec.with_checksum_sha256(&sum);
                    }
                    black_box(rt.block_on(path.sign_spec(&p, &spec, SystemTime::now())));
                    n += 1;
                }
                us[i].push(start.elapsed().as_secs_f64() * 1e6 / f64::from(n));
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let direct = median(&mut us[0]);
        let sdk = median(&mut us[1]);
        println!(
            "ratio{}: presign direct {direct:.2} µs, via SDK {sdk:.2} µs per URL (fresh key, now); \
             direct/SDK = {:.3}, the SDK takes x{:.1} the time ({rounds} alternating batches of {} ms, medians)",
            if with_checksum { " (checksum)" } else { "" },
            direct / sdk,
            sdk / direct,
            batch.as_millis()
        );
    }
}

criterion_group!(benches, bench_presign);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratio(std::env::args().any(|a| a == "--bench"));
}
