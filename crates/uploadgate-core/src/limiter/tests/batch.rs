//! Coalescing: batches in arrival order with one compare-and-swap, a denial
//! in the middle, which requests share a batch, conflicts with another
//! process, exhaustion.

use std::time::Duration;

use super::harness::*;
use crate::{Backoff, Contention, Decision, LimiterError, StoreError};

#[tokio::test]
async fn a_batch_applies_its_jobs_in_arrival_order_with_one_compare_and_swap() {
    let s = setup(
        "uploads=user:5/1h;burst=ip:10/1h",
        false,
        false,
        Backoff::DEFAULT,
    );
    let (lead, rest) = queue_behind_a_lead(&s, &["a", "b", "c", "d"]).await;
    s.store.open(10);
    let d = lead.await.unwrap().unwrap();
    assert_eq!((d.allowed, d.limits[1].remaining, d.attempts), (true, 9, 1));
    for (h, left) in rest.into_iter().zip([8, 7, 6, 5]) {
        let d = h.await.unwrap().unwrap();
        assert!(d.allowed);
        // Each caller sees the batch as it stood after the jobs before it.
        assert_eq!((d.limits[0].remaining, d.limits[1].remaining), (4, left));
        assert_eq!((d.attempts, d.contention), (1, None));
    }
    let batch = key_set(&[
        ip_key(1),
        user_key("a"),
        user_key("b"),
        user_key("c"),
        user_key("d"),
    ]);
    assert_eq!(
        s.store.cas_keys(),
        [key_set(&[user_key("lead"), ip_key(1)]), batch]
    );
    assert_eq!(remaining(&s, &who("z", 1)).await, [5, 5]);
}

#[tokio::test]
async fn a_denied_job_writes_nothing_and_later_jobs_do_not_see_it() {
    let s = setup(
        "uploads=user:1/1h;burst=ip:10/1h",
        false,
        false,
        Backoff::DEFAULT,
    );
    // `lead` again is over its user limit of 1; `a` and `c` are not.
    let (lead, rest) = queue_behind_a_lead(&s, &["a", "lead", "c"]).await;
    s.store.open(10);
    assert!(lead.await.unwrap().unwrap().allowed);
    let d: Vec<Decision> = futures_util::future::join_all(rest)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(
        d.iter().map(|d| d.allowed).collect::<Vec<_>>(),
        [true, false, true]
    );
    assert_eq!(d[0].limits[1].remaining, 8);
    // The denial reports the ip quota it saw, without its own cost...
    assert_eq!(
        d[1].violated()
            .map(|l| l.limit.name.as_str())
            .collect::<Vec<_>>(),
        ["uploads"]
    );
    assert_eq!(d[1].limits[1].remaining, 8);
    assert_eq!(d[1].retry_after(), Some(Duration::from_secs(3600)));
    // ...and `c` comes after `a` only.
    assert_eq!(d[2].limits[1].remaining, 7);
    assert_eq!(remaining(&s, &who("lead", 1)).await, [0, 7]);
    // The denial was confirmed on the key whose limit denied it.
    assert_eq!(*s.store.refreshed.lock().unwrap(), [vec![user_key("lead")]]);
    assert_eq!(s.store.cas_calls(), 2);
}

#[tokio::test]
async fn only_jobs_that_share_keys_transitively_are_batched_together() {
    let s = setup(
        "uploads=user:5/1h;burst=ip:10/1h",
        false,
        false,
        Backoff::DEFAULT,
    );
    let lead = consume(&s.limiter, who("u1", 1));
    until("the lead reaches the store", || s.store.cas_calls() == 1).await;
    // (u2, ip 1) waits for the lead's ip; (u2, ip 2) and (u3, ip 2) join it
    // through u2 and ip 2. (u1, ip 3) waits for the lead's user key but
    // shares nothing with the others: a batch of its own.
    let rest: Vec<_> = [who("u2", 1), who("u2", 2), who("u3", 2), who("u1", 3)]
        .into_iter()
        .map(|w| consume(&s.limiter, w))
        .collect();
    until("four queue", || s.limiter.core.queue.waiting() == 4).await;
    // A request on other keys does not wait for any of them.
    let apart = consume(&s.limiter, who("u9", 9));
    until("it reaches the store", || s.store.cas_calls() == 2).await;
    s.store.open(10);
    assert!(lead.await.unwrap().unwrap().allowed);
    assert!(apart.await.unwrap().unwrap().allowed);
    let d: Vec<Decision> = futures_util::future::join_all(rest)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let left: Vec<(u64, u64)> = d
        .iter()
        .map(|d| (d.limits[0].remaining, d.limits[1].remaining))
        .collect();
    assert_eq!(left, [(4, 8), (3, 9), (4, 8), (3, 9)]);
    assert!(d.iter().all(|d| d.attempts == 1));
    let cas = s.store.cas_keys();
    assert_eq!(cas.len(), 4);
    let mixed = key_set(&[ip_key(1), ip_key(2), user_key("u2"), user_key("u3")]);
    assert!(cas[2..].contains(&mixed), "{cas:?}");
    assert!(cas[2..].contains(&key_set(&[user_key("u1"), ip_key(3)])));
}

#[tokio::test]
async fn a_conflict_with_another_process_is_retried_on_the_state_it_returns() {
    let backoff = Backoff::new(Duration::from_millis(4), Duration::from_millis(64), 5);
    let s = setup("uploads=user:5/1h;burst=ip:10/1h", false, true, backoff);
    // The other process charges ip 1 just before the batch's write.
    s.store
        .meddle(&s.policy, &s.clock, who("elsewhere", 1), &[2]);
    let (lead, rest) = queue_behind_a_lead(&s, &["a", "b", "c"]).await;
    s.store.open(10);
    assert_eq!(lead.await.unwrap().unwrap().attempts, 1);
    for (h, left) in rest.into_iter().zip([7, 6, 5]) {
        let d = h.await.unwrap().unwrap();
        assert_eq!(
            (d.allowed, d.limits[1].remaining, d.attempts),
            (true, left, 2)
        );
    }
    assert_eq!(s.store.cas_calls(), 3, "the batch retried once, as one");
    let sleeps = s.runtime.sleeps.lock().unwrap().clone();
    assert_eq!(sleeps.len(), 1);
    assert!(sleeps[0] <= backoff.ceiling(1), "{sleeps:?}");
    assert_eq!(remaining(&s, &who("z", 1)).await, [5, 5]);
}

#[tokio::test]
async fn running_out_of_attempts_is_a_contention_denial_that_charges_nothing() {
    let backoff = Backoff::new(Duration::from_millis(2), Duration::from_millis(5), 3);
    let s = setup("uploads=user:50/1h;burst=ip:1000/1h", false, true, backoff);
    s.store
        .meddle(&s.policy, &s.clock, who("elsewhere", 1), &[]);
    let (lead, rest) = queue_behind_a_lead(&s, &["a", "b"]).await;
    s.store.open(100);
    let mut all = vec![lead.await.unwrap().unwrap()];
    for h in rest {
        all.push(h.await.unwrap().unwrap());
    }
    for d in &all {
        assert!(!d.allowed && d.is_contention(), "{d:?}");
        assert_eq!(d.attempts, 3);
        assert_eq!(d.retry_after(), Some(Contention::RETRY_AFTER));
        assert_eq!(d.violated().count(), 0);
        assert_eq!(d.limits[0].remaining, 50);
    }
    // Two batches (the lead, then a and b) of three attempts each.
    assert_eq!(s.store.cas_calls(), 6);
    let sleeps = s.runtime.sleeps.lock().unwrap().clone();
    assert_eq!(
        sleeps.len(),
        4,
        "a pause between attempts, none after the last"
    );
    assert!(sleeps.iter().all(|p| *p <= Duration::from_millis(5)));
    // Only the other process was charged: once per compare-and-swap.
    assert_eq!(remaining(&s, &who("lead", 1)).await, [50, 994]);
    assert_eq!(remaining(&s, &who("a", 1)).await[0], 50);
}

#[tokio::test]
async fn a_lone_request_costs_one_write_and_a_denial_confirms_only_its_violated_key() {
    let s = setup(
        "uploads=user:5/1h;burst=ip:1/1h",
        true,
        false,
        Backoff::DEFAULT,
    );
    let d = s.limiter.consume(&who("a", 1), 1).await.unwrap();
    assert_eq!((d.allowed, d.attempts), (true, 1));
    assert_eq!(s.store.cas_calls(), 1);
    let d = s.limiter.consume(&who("b", 1), 1).await.unwrap();
    assert!(!d.allowed && !d.is_contention());
    assert_eq!(s.store.cas_calls(), 1, "a denial writes nothing");
    assert_eq!(*s.store.refreshed.lock().unwrap(), [vec![ip_key(1)]]);
}

#[tokio::test]
async fn a_corrupt_record_fails_only_the_requests_on_its_key() {
    let s = setup(
        "uploads=user:5/1h;burst=ip:10/1h",
        false,
        false,
        Backoff::DEFAULT,
    );
    *s.store.corrupt.lock().unwrap() = Some(user_key("bad"));
    let (lead, rest) = queue_behind_a_lead(&s, &["a", "bad", "c"]).await;
    s.store.open(10);
    assert!(lead.await.unwrap().unwrap().allowed);
    let d: Vec<_> = futures_util::future::join_all(rest)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        matches!(&d[1], Err(LimiterError::Store(StoreError::Corrupt { key, .. })) if key == "user#bad"),
        "{:?}",
        d[1]
    );
    let left: Vec<u64> = [&d[0], &d[2]]
        .iter()
        .map(|d| d.as_ref().unwrap().limits[1].remaining)
        .collect();
    assert_eq!(left, [8, 7]);
    assert_eq!(s.store.cas_calls(), 2, "the others still share one write");
}
