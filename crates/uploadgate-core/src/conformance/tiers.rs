//! Conformance scenarios of what a key's state holds besides one policy's
//! limits: other tiers' limits (a user who changes tier) and grants made
//! under idempotency keys. They run on every store, because the state must
//! survive each store's encoding and compare-and-swap.

use std::sync::Arc;
use std::time::Duration;

use crate::{
    Charge, Clock, FakeClock, GrantOutcome, GrantRequest, Limiter, Policy, Store, Subject,
    Subjects, Timestamp,
};

use super::fresh_user;

fn clock() -> FakeClock {
    FakeClock::new(Timestamp(1_800_000_000_000))
}

fn charge(tier: Option<&str>, size: u64) -> Charge {
    Charge {
        size,
        tier: tier.map(str::to_owned),
        grant: None,
        reservation: None,
    }
}

/// A user who moves to another tier is judged by it on the very next
/// request, keeps what they used of the limits both tiers have, and finds
/// what they used of the others when they come back.
pub async fn a_tier_change_takes_effect_at_once_and_keeps_usage<S: Store>(store: S) {
    let clock = clock();
    let default: Policy = "uploads=user:2/1h;volume=user:100B/1d"
        .parse()
        .expect("policy");
    let pro: Policy = "uploads=user:5/1h".parse().expect("policy");
    let limiter =
        Limiter::new(Arc::new(default), store, clock.clone()).with_tiers(vec![("pro".into(), pro)]);
    let who = Subjects {
        user: fresh_user("tier"),
        ip: None,
    };
    for _ in 0..2 {
        assert!(
            limiter
                .charge(&who, &charge(None, 30))
                .await
                .expect("free")
                .allowed
        );
    }
    let d = limiter
        .charge(&who, &charge(None, 30))
        .await
        .expect("free 3");
    assert!(!d.allowed, "the free tier allows 2");
    // The upgrade bites on the next request: 5 uploads, 2 already used.
    let d = limiter
        .charge(&who, &charge(Some("pro"), 30))
        .await
        .expect("pro");
    assert!(d.allowed);
    assert_eq!(d.limits.len(), 1);
    assert_eq!(d.limits[0].remaining, 2, "5 - (2 + this one)");
    let q = limiter
        .peek_tier(&who, Some("pro"))
        .await
        .expect("peek pro");
    assert_eq!(q.limits[0].remaining, 2);
    // Back on the free tier: the byte limit the pro tier does not have still
    // remembers the 60 bytes, and the upload count all 3.
    clock.advance(Duration::from_secs(1));
    let q = limiter.peek_tier(&who, None).await.expect("peek free");
    assert_eq!(q.limits[0].remaining, 0, "3 uploads used of 2");
    assert_eq!(q.limits[1].remaining, 40, "100 B - 60 B");
    // An unknown tier name is the default policy.
    let q = limiter
        .peek_tier(&who, Some("gold"))
        .await
        .expect("peek unknown");
    assert_eq!(q.limits.len(), 2);
}

/// A retry under the same idempotency key with the same request is
/// answered as the first one was, and charges nothing; with another
/// request it is refused; once the grant expires the key is free again.
pub async fn an_idempotent_retry_is_free_and_a_changed_request_is_refused<S: Store>(store: S) {
    let clock = clock();
    let policy: Policy = "uploads=user:3/1h".parse().expect("policy");
    let limiter = Limiter::new(Arc::new(policy), store, clock.clone());
    let who = Subjects {
        user: fresh_user("idem"),
        ip: None,
    };
    let expires = Timestamp(clock.now().as_millis() + 300_000);
    let ask = |fingerprint: u8, unique: u8| Charge {
        size: 10,
        tier: None,
        grant: Some(GrantRequest {
            key: "retry-7f3a".into(),
            fingerprint: [fingerprint; 16],
            unique: [unique; 16],
            expires_at: expires,
            holder: Subject::User,
        }),
        reservation: None,
    };
    let first = limiter.charge(&who, &ask(1, 0xa1)).await.expect("first");
    assert!(first.allowed);
    assert_eq!(first.grant, Some(GrantOutcome::Granted));
    assert_eq!(first.limits[0].remaining, 2);
    clock.advance(Duration::from_secs(10));
    // The same request again (a new object key offered): the original one.
    let again = limiter.charge(&who, &ask(1, 0xb2)).await.expect("again");
    assert!(again.allowed);
    assert_eq!(
        again.grant,
        Some(GrantOutcome::Replayed { unique: [0xa1; 16] })
    );
    assert_eq!(again.limits[0].remaining, 2, "the limits as first answered");
    // Another request under the same key.
    let other = limiter.charge(&who, &ask(2, 0xc3)).await.expect("other");
    assert!(!other.allowed);
    assert_eq!(other.grant, Some(GrantOutcome::Mismatch));
    assert_eq!(
        limiter.peek(&who).await.expect("peek").limits[0].remaining,
        2,
        "only the first was charged"
    );
    // The record lives as long as the URL.
    clock.advance(Duration::from_secs(300));
    let later = limiter.charge(&who, &ask(2, 0xd4)).await.expect("later");
    assert!(later.allowed);
    assert_eq!(later.grant, Some(GrantOutcome::Granted));
    assert_eq!(later.limits[0].remaining, 1);
}
