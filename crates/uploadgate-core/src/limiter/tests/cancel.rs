//! Cancellation: a caller's future dropped while it waits, while its
//! batch writes, before its batch starts, or before a retry. Nobody else is
//! stranded and nothing is charged twice.

use std::future::Future;

use super::harness::*;
use crate::Backoff;

#[tokio::test]
async fn a_dropped_caller_strands_nobody_and_is_charged_at_most_once() {
    let s = setup(
        "uploads=user:5/1h;burst=ip:10/1h",
        false,
        false,
        Backoff::DEFAULT,
    );
    let (lead, mut rest) = queue_behind_a_lead(&s, &["a", "b", "c"]).await;
    // b leaves while it waits: it is never charged.
    let b = rest.remove(1);
    b.abort();
    assert!(b.await.unwrap_err().is_cancelled());
    s.store.open(1);
    assert!(lead.await.unwrap().unwrap().allowed);
    // a and c drive their batch together; a leaves while its write is in
    // flight, and c carries it through.
    until("the batch reaches the store", || s.store.cas_calls() == 2).await;
    let c = rest.pop().unwrap();
    let a = rest.pop().unwrap();
    a.abort();
    assert!(a.await.unwrap_err().is_cancelled());
    s.store.open(10);
    let d = c.await.unwrap().unwrap();
    assert_eq!((d.allowed, d.limits[1].remaining, d.attempts), (true, 7, 1));
    assert_eq!(s.store.cas_calls(), 2, "nothing was retried");
    assert_eq!(
        s.store.cas_keys()[1],
        key_set(&[ip_key(1), user_key("a"), user_key("c")])
    );
    // a's write was in flight: it stands, once. b's never started.
    assert_eq!(remaining(&s, &who("a", 1)).await, [4, 7]);
    assert_eq!(remaining(&s, &who("b", 1)).await, [5, 7]);
}

#[tokio::test]
async fn with_a_runtime_a_batch_finishes_when_all_its_callers_leave() {
    let s = setup(
        "uploads=user:5/1h;burst=ip:10/1h",
        false,
        true,
        Backoff::DEFAULT,
    );
    let (lead, rest) = queue_behind_a_lead(&s, &["a", "b"]).await;
    s.store.open(1);
    assert!(lead.await.unwrap().unwrap().allowed);
    until("the batch reaches the store", || s.store.cas_calls() == 2).await;
    for h in rest {
        h.abort();
        assert!(h.await.unwrap_err().is_cancelled());
    }
    // A request that queues behind the abandoned batch is still answered,
    // after it: the spawned batch completes and frees the key.
    let late = consume(&s.limiter, who("late", 1));
    until("it queues", || s.limiter.core.queue.waiting() == 1).await;
    s.store.open(10);
    let d = late.await.unwrap().unwrap();
    assert_eq!((d.allowed, d.limits[1].remaining), (true, 6));
    assert_eq!(remaining(&s, &who("a", 1)).await, [4, 6]);
}

#[tokio::test]
async fn a_batch_whose_callers_all_left_before_it_started_frees_its_keys() {
    let s = setup(
        "uploads=user:5/1h;burst=ip:10/1h",
        false,
        false,
        Backoff::DEFAULT,
    );
    let lead = consume(&s.limiter, who("lead", 1));
    until("the lead reaches the store", || s.store.cas_calls() == 1).await;
    // A caller polled once (so it waits), then never again...
    let a_who = who("a", 1);
    let mut a = Box::pin(s.limiter.consume(&a_who, 1));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(a.as_mut().poll(&mut cx).is_pending());
    assert_eq!(s.limiter.core.queue.waiting(), 1);
    // ...is handed its batch when the lead ends, and leaves before the
    // batch is ever polled: nobody runs it.
    s.store.open(10);
    assert!(lead.await.unwrap().unwrap().allowed);
    drop(a);
    // Its keys are free again: the next request leads at once.
    let b = consume(&s.limiter, who("b", 1));
    until("b reaches the store", || s.store.cas_calls() == 2).await;
    let d = b.await.unwrap().unwrap();
    assert_eq!((d.allowed, d.limits[1].remaining), (true, 8));
    assert_eq!(
        remaining(&s, &who("a", 1)).await,
        [5, 8],
        "a was not charged"
    );
}

#[tokio::test]
async fn a_caller_that_leaves_before_a_retry_is_left_out_of_it() {
    let s = setup(
        "uploads=user:5/1h;burst=ip:10/1h",
        false,
        true,
        Backoff::DEFAULT,
    );
    s.store
        .meddle(&s.policy, &s.clock, who("elsewhere", 1), &[2]);
    let (lead, mut rest) = queue_behind_a_lead(&s, &["a", "b", "c"]).await;
    s.store.open(1);
    assert!(lead.await.unwrap().unwrap().allowed);
    until("the batch reaches the store", || s.store.cas_calls() == 2).await;
    // b leaves while the first attempt is in flight; that attempt then
    // loses to the other process, and the retry goes on without b.
    let b = rest.remove(1);
    b.abort();
    assert!(b.await.unwrap_err().is_cancelled());
    s.store.open(10);
    for (h, left) in rest.into_iter().zip([7, 6]) {
        let d = h.await.unwrap().unwrap();
        assert_eq!(
            (d.allowed, d.limits[1].remaining, d.attempts),
            (true, left, 2)
        );
    }
    assert_eq!(
        s.store.cas_keys()[2],
        key_set(&[ip_key(1), user_key("a"), user_key("c")])
    );
    assert_eq!(remaining(&s, &who("b", 1)).await, [5, 6]);
}
