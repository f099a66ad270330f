//! Cost of signing one upload URL: `Presigner::presign_put` as
//! `POST /v1/uploads` calls it (local target, fixed credentials).
//!
//! Run: `cargo bench -p uploadgate-s3 --bench presign`. Criterion's `time:`
//! line is the cost per presign; `thrpt:` is presigns per second.
//!
//! - `fixed_key`: the same key, content type and size every time.
//! - `fresh_key`: a new UUID and object key per call, as the handler does
//!   (the UUID and key building are included).
//! - `start_now`: fresh key and `SystemTime::now()` as the start time.
//! - `parts/*`: the UUID and object key alone, for scale.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use uploadgate_core::{ObjectKey, UserId};
use uploadgate_s3::{LocalCredentials, Presigner};

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

fn bench_presign(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let p = presigner();
    let user = UserId::parse("user-4242").expect("valid user id");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let key = ObjectKey::for_upload(
        "uploads/",
        &user,
        "0b7e2a43-6f0c-4d7e-9a55-2b1f3f0c9d11",
        "report.pdf",
    );

    // Sanity: the URL is the one the handler would hand out.
    let up = rt
        .block_on(p.presign_put(&key, "application/pdf", 12_345, now))
        .expect("presign");
    assert!(up.url.contains("X-Amz-Signature="), "{}", up.url);

    let mut g = c.benchmark_group("presign_put");
    g.throughput(Throughput::Elements(1));
    g.bench_function("fixed_key", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                p.presign_put(black_box(&key), "application/pdf", black_box(12_345), now)
                    .await
                    .expect("presign"),
            )
        })
    });
    g.bench_function("fresh_key", |b| {
        b.to_async(&rt).iter(|| async {
            let key = ObjectKey::for_upload(
                "uploads/",
                &user,
                &uuid::Uuid::new_v4().to_string(),
                "report.pdf",
            );
            black_box(
                p.presign_put(&key, "application/pdf", 12_345, now)
                    .await
                    .expect("presign"),
            )
        })
    });
    g.bench_function("start_now", |b| {
        b.to_async(&rt).iter(|| async {
            let key = ObjectKey::for_upload(
                "uploads/",
                &user,
                &uuid::Uuid::new_v4().to_string(),
                "report.pdf",
            );
            black_box(
                p.presign_put(&key, "application/pdf", 12_345, SystemTime::now())
                    .await
                    .expect("presign"),
            )
        })
    });
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

criterion_group!(benches, bench_presign);
criterion_main!(benches);
