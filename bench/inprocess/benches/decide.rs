//! One decision, in process: each algorithm's pure transition
//! (`algorithm::evaluate` on a key already holding 4 uploads of 5), the whole
//! `Limiter::consume` on the memory store (state load, decision,
//! compare-and-swap), and, as the lower bound, a `governor` check (direct,
//! and keyed by user as our state is).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use uploadgate_core::algorithm::evaluate;
use uploadgate_core::{FakeClock, Limiter, MemoryStore, Policy, Subjects, Timestamp, UserId};

const T0: Timestamp = Timestamp(1_800_000_000_000);

fn decide(c: &mut Criterion) {
    let mut g = c.benchmark_group("decision");
    for (name, raw) in [
        ("sliding", "uploads=user:5/3h"),
        ("gcra", "uploads=user:5/3h:gcra"),
        ("fixed", "uploads=user:5/24h:fixed"),
    ] {
        let policy: Policy = raw.parse().expect("policy");
        let limit = &policy.limits()[0];
        let (mut state, mut now) = (None, T0);
        for _ in 0..4 {
            state = evaluate(limit, state.as_ref(), now, 1).1.map(|(s, _)| s);
            now = Timestamp(now.0 + 1_000);
        }
        g.bench_function(format!("uploadgate {name} (pure transition)"), |b| {
            b.iter(|| evaluate(limit, black_box(state.as_ref()), black_box(now), 1))
        });
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let policy = Arc::new(
        "uploads=user:1000000000/3h:gcra"
            .parse::<Policy>()
            .expect("policy"),
    );
    let limiter = Limiter::new(policy, MemoryStore::new(), FakeClock::new(T0));
    let who = Subjects {
        user: UserId::parse("alice").expect("user"),
        ip: None,
    };
    g.bench_function("uploadgate Limiter::consume (memory store, gcra)", |b| {
        b.iter(|| {
            rt.block_on(limiter.consume(black_box(&who), 1))
                .expect("decision")
        })
    });

    let quota = Quota::per_second(NonZeroU32::MAX);
    let direct = RateLimiter::direct(quota);
    g.bench_function("governor check (direct)", |b| {
        b.iter(|| black_box(&direct).check())
    });
    let keyed = RateLimiter::keyed(quota);
    let key = "user#alice".to_owned();
    g.bench_function("governor check_key (keyed, dashmap)", |b| {
        b.iter(|| black_box(&keyed).check_key(black_box(&key)))
    });
    g.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
