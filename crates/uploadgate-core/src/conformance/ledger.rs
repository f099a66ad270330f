//! The ledger conformance suite: one set of scenarios every [`Ledger`]
//! must pass, run by every ledger crate's tests with
//! [`ledger_conformance_tests!`](crate::ledger_conformance_tests), so the
//! memory, file and DynamoDB ledgers cannot drift apart.
//!
//! Each scenario gets a fresh, empty ledger (reads over all users see only
//! its own records). Times are in 2027 and early 2028 and cross month
//! boundaries (one month empty), which is where the DynamoDB ledger
//! changes partitions of its index.

use std::collections::BTreeSet;

use crate::usage::{Appended, Cursor, Ledger, Position, UsagePage, UsageQuery, UsageRecord};
use crate::{StoreError, Timestamp, UserId};

/// 2027-01-01T00:00:00Z.
const JAN: u64 = 1_798_761_600_000;
/// 2027-02-01T00:00:00Z.
const FEB: u64 = 1_801_440_000_000;
/// 2027-03-01T00:00:00Z.
const MAR: u64 = 1_803_859_200_000;
/// 2027-04-01T00:00:00Z.
const APR: u64 = 1_806_537_600_000;
/// 2027-12-01T00:00:00Z.
const DEC: u64 = 1_827_619_200_000;
/// 2028-01-01T00:00:00Z.
const JAN_2028: u64 = 1_830_297_600_000;

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap_or_else(|e| panic!("test id {name}: {e}"))
}

/// A record whose other fields vary with its identity, so a mix-up shows.
fn record(who: &str, at: u64, key: &str) -> UsageRecord {
    UsageRecord {
        user: user(who),
        key: key.to_owned(),
        bytes: at % 100_000 + key.len() as u64,
        content_type: format!("application/x-{}", key.len()),
        tier: key.len().is_multiple_of(2).then(|| format!("tier-{who}")),
        landed_at: Timestamp(at),
    }
}

fn query(since: Option<u64>, until: Option<u64>, who: Option<&str>) -> UsageQuery {
    UsageQuery {
        since: since.map(Timestamp),
        until: until.map(Timestamp),
        user: who.map(user),
    }
}

async fn append_all<L: Ledger>(ledger: &L, records: &[UsageRecord]) {
    for r in records {
        assert_eq!(
            ledger.append(r).await.expect("append"),
            Appended::New,
            "{r:?}"
        );
    }
}

async fn one_page<L: Ledger>(
    ledger: &L,
    q: &UsageQuery,
    after: Option<&Cursor>,
    limit: usize,
) -> UsagePage {
    ledger.page(q, after, limit).await.expect("page")
}

/// Every record of `q`, page by page of `limit`; and how many pages it
/// took. Each page but the last is full, and only the last has no `next`.
async fn read_all<L: Ledger>(
    ledger: &L,
    q: &UsageQuery,
    limit: usize,
) -> (Vec<UsageRecord>, usize) {
    let mut out = Vec::new();
    let mut after: Option<Cursor> = None;
    for pages in 1..=1_000 {
        let page = one_page(ledger, q, after.as_ref(), limit).await;
        assert!(page.records.len() <= limit.max(1), "{q:?}: page too long");
        out.extend(page.records.iter().cloned());
        match page.next {
            Some(next) => {
                assert_eq!(page.records.len(), limit.max(1), "{q:?}: short page");
                after = Some(next);
            }
            None => return (out, pages),
        }
    }
    panic!("{q:?} with limit {limit}: more than 1000 pages");
}

/// The records of `all` that `q` matches, in page order: the oracle.
fn expected(all: &[UsageRecord], q: &UsageQuery) -> Vec<UsageRecord> {
    let mut v: Vec<UsageRecord> = all.iter().filter(|r| q.matches(r)).cloned().collect();
    v.sort_by_key(Position::of);
    v
}

/// An appended record reads back with every field equal, under a read of
/// all users and under its user's.
pub async fn an_appended_record_reads_back_whole<L: Ledger>(ledger: L) {
    let big = UsageRecord {
        user: user("alice@example.com"),
        key: "uploads/alice@example.com/0193/été #1.pdf".to_owned(),
        bytes: u64::MAX,
        content_type: "application/pdf; charset=\"x\"".to_owned(),
        tier: Some("pro".to_owned()),
        landed_at: Timestamp(FEB + 1),
    };
    let small = UsageRecord {
        user: user("bob"),
        key: "uploads/bob/0194/a".to_owned(),
        bytes: 0,
        content_type: "text/plain".to_owned(),
        tier: None,
        landed_at: Timestamp(FEB + 2),
    };
    append_all(&ledger, &[small.clone(), big.clone()]).await;
    let page = one_page(&ledger, &UsageQuery::default(), None, 10).await;
    assert_eq!(page.records, [big.clone(), small.clone()]);
    assert_eq!(page.next, None);
    let mine = one_page(&ledger, &query(None, None, Some("bob")), None, 10).await;
    assert_eq!((mine.records, mine.next), (vec![small], None));
}

/// Appending the same record again (or one with the same user, time and
/// key but other fields) says `Duplicate` and keeps the first, once.
pub async fn a_duplicate_is_reported_and_stored_once<L: Ledger>(ledger: L) {
    let r = record("alice", JAN + 5, "uploads/alice/1/a.pdf");
    append_all(&ledger, std::slice::from_ref(&r)).await;
    assert_eq!(ledger.append(&r).await.expect("again"), Appended::Duplicate);
    let changed = UsageRecord {
        bytes: r.bytes + 1,
        content_type: "image/png".into(),
        tier: Some("other".into()),
        ..r.clone()
    };
    assert_eq!(
        ledger.append(&changed).await.expect("changed"),
        Appended::Duplicate
    );
    for q in [UsageQuery::default(), query(None, None, Some("alice"))] {
        let page = one_page(&ledger, &q, None, 10).await;
        assert_eq!((page.records, page.next), (vec![r.clone()], None), "{q:?}");
    }
}

/// Records of one user at one time with other keys are each stored, and
/// read in key order (byte order: `k` < `k#z` < `k-a`).
pub async fn same_user_and_time_with_other_keys_are_separate_records<L: Ledger>(ledger: L) {
    let keys = ["k-b", "k-a", "k#z", "k", "k-c"];
    let records: Vec<_> = keys.iter().map(|k| record("alice", MAR + 9, k)).collect();
    append_all(&ledger, &records).await;
    for q in [UsageQuery::default(), query(None, None, Some("alice"))] {
        let page = one_page(&ledger, &q, None, 10).await;
        let got: Vec<&str> = page.records.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(got, ["k", "k#z", "k-a", "k-b", "k-c"], "{q:?}");
        assert_eq!(page.records, expected(&records, &q));
    }
}

/// `since` is inclusive and `until` exclusive, for one user and for all;
/// an empty or inverted range reads nothing.
pub async fn since_is_inclusive_and_until_exclusive<L: Ledger>(ledger: L) {
    let (t, u) = (FEB + 1_000, FEB + 2_000);
    let mut records: Vec<_> = [t - 1, t, t + 1, u - 1, u, u + 1]
        .iter()
        .map(|&at| record("alice", at, "uploads/alice/x"))
        .collect();
    records.push(record("bob", t, "uploads/bob/x"));
    append_all(&ledger, &records).await;
    let a = |at: u64| ("alice", at);
    let b = |at: u64| ("bob", at);
    let cases = [
        (Some(t), Some(u), None, vec![a(t), b(t), a(t + 1), a(u - 1)]),
        (
            Some(t),
            Some(u),
            Some("alice"),
            vec![a(t), a(t + 1), a(u - 1)],
        ),
        (
            Some(t),
            None,
            Some("alice"),
            vec![a(t), a(t + 1), a(u - 1), a(u), a(u + 1)],
        ),
        (None, Some(t + 1), None, vec![a(t - 1), a(t), b(t)]),
        (None, Some(t), Some("bob"), vec![]),
        (Some(t + 1), Some(t + 1), None, vec![]),
        (Some(u), Some(t), Some("alice"), vec![]),
    ];
    for (since, until, who, want) in cases {
        let q = query(since, until, who);
        let page = one_page(&ledger, &q, None, 100).await;
        let got: Vec<(&str, u64)> = page
            .records
            .iter()
            .map(|r| (r.user.as_str(), r.landed_at.0))
            .collect();
        assert_eq!(got, want, "{q:?}");
        assert_eq!(page.records, expected(&records, &q), "{q:?}");
        assert_eq!(page.next, None, "{q:?}");
    }
}

/// A user filter reads that user's records and no one else's, even a user
/// whose id is a prefix of another's; an unknown user reads nothing.
pub async fn a_user_filter_reads_only_that_users_records<L: Ledger>(ledger: L) {
    let records = vec![
        record("alice", JAN + 1, "uploads/alice/1"),
        record("al", JAN + 2, "uploads/al/1"),
        record("bob", JAN + 2, "uploads/bob/1"),
        record("alice", JAN + 3, "uploads/alice/2"),
        record("alice2", JAN + 3, "uploads/alice2/1"),
        record("bob", FEB + 4, "uploads/bob/2"),
        record("al", FEB + 5, "uploads/al/2"),
    ];
    append_all(&ledger, &records).await;
    for who in ["alice", "al", "bob", "alice2"] {
        let q = query(None, None, Some(who));
        let page = one_page(&ledger, &q, None, 100).await;
        assert!(page.records.iter().all(|r| r.user.as_str() == who), "{who}");
        assert_eq!(page.records, expected(&records, &q), "{who}");
        assert!(!page.records.is_empty() && page.next.is_none(), "{who}");
    }
    let nobody = one_page(&ledger, &query(None, None, Some("nobody")), None, 100).await;
    assert_eq!(nobody, UsagePage::default());
}

/// Records spread over months (one of them empty), read in small pages:
/// each record exactly once, in order, over more than one page, for all
/// users and for one, with and without a range.
pub async fn small_pages_read_every_record_once_in_order<L: Ledger>(ledger: L) {
    let mut records = vec![
        record("alice", JAN + 10, "uploads/alice/a"),
        record("bob", FEB - 1, "uploads/bob/a"),
        record("alice", FEB - 1, "uploads/alice/b"),
        record("alice", FEB, "uploads/alice/c"),
        record("bob", FEB, "uploads/bob/b"),
        record("alice", FEB + 86_400_000, "uploads/alice/d"),
        // March is empty.
        record("bob", APR, "uploads/bob/c"),
        record("alice", APR + 1, "uploads/alice/e"),
        record("alice", DEC + 7, "uploads/alice/f"),
        record("bob", JAN_2028 - 1, "uploads/bob/d"),
        record("alice", JAN_2028, "uploads/alice/g"),
        record("alice", JAN_2028 + 5, "uploads/alice/h"),
    ];
    for i in 0..4 {
        records.push(record("carol", MAR - 1, &format!("uploads/carol/{i}")));
    }
    append_all(&ledger, &records).await;
    let queries = [
        UsageQuery::default(),
        query(Some(FEB), Some(JAN_2028), None),
        query(Some(FEB - 1), Some(APR + 1), None),
        query(None, None, Some("alice")),
        query(Some(FEB), Some(JAN_2028 + 1), Some("alice")),
        query(Some(JAN + 11), None, Some("bob")),
        query(None, Some(MAR), Some("carol")),
    ];
    for q in &queries {
        let want = expected(&records, q);
        assert!(want.len() >= 4, "{q:?}: too few records to page");
        for limit in [1, 2, 3, 5, 100] {
            let (got, pages) = read_all(&ledger, q, limit).await;
            assert_eq!(got, want, "{q:?}, limit {limit}");
            assert_eq!(pages, want.len().div_ceil(limit).max(1), "{q:?}, {limit}");
        }
    }
}

/// `next` is `None` exactly when nothing follows: a page that ends on the
/// last record has none. A limit of 0 is read as 1.
pub async fn a_page_that_ends_on_the_last_record_has_no_next<L: Ledger>(ledger: L) {
    let records: Vec<_> = (0..3)
        .map(|i| record("alice", FEB + i, "uploads/alice/k"))
        .collect();
    append_all(&ledger, &records).await;
    for q in [UsageQuery::default(), query(None, None, Some("alice"))] {
        let page = one_page(&ledger, &q, None, 3).await;
        assert_eq!((&page.records, &page.next), (&records, &None), "{q:?}");
        let first = one_page(&ledger, &q, None, 2).await;
        assert_eq!(first.records, records[..2], "{q:?}");
        let rest = one_page(&ledger, &q, first.next.as_ref(), 2).await;
        assert_eq!(
            (&rest.records[..], rest.next),
            (&records[2..], None),
            "{q:?}"
        );
        let zero = one_page(&ledger, &q, None, 0).await;
        assert_eq!(zero.records, records[..1], "{q:?}");
        let after = one_page(&ledger, &q, zero.next.as_ref(), 0).await;
        assert_eq!(after.records, records[1..2], "{q:?}");
    }
}

/// An empty ledger, a range with nothing in it and the page after the last
/// record all read no records and no `next`.
pub async fn an_empty_result_has_no_next<L: Ledger>(ledger: L) {
    for q in [UsageQuery::default(), query(None, None, Some("alice"))] {
        assert_eq!(one_page(&ledger, &q, None, 5).await, UsagePage::default());
    }
    let last = record("alice", APR, "uploads/alice/k");
    append_all(&ledger, std::slice::from_ref(&last)).await;
    for q in [
        query(Some(APR + 1), None, None),
        query(None, Some(APR), Some("alice")),
        query(Some(JAN), Some(MAR), None),
    ] {
        assert_eq!(
            one_page(&ledger, &q, None, 5).await,
            UsagePage::default(),
            "{q:?}"
        );
    }
    let after_last = Cursor::after(&Position::of(&last));
    for q in [UsageQuery::default(), query(None, None, Some("alice"))] {
        let page = one_page(&ledger, &q, Some(&after_last), 5).await;
        assert_eq!(page, UsagePage::default(), "{q:?}");
    }
}

/// Two users with the same key and time hold two records; pages of one
/// read each exactly once.
pub async fn the_same_key_and_time_for_two_users_are_two_records<L: Ledger>(ledger: L) {
    let records = vec![
        record("alice", DEC, "shared/key"),
        record("bob", DEC, "shared/key"),
        record("carol", DEC, "shared/key"),
    ];
    append_all(&ledger, &records).await;
    let (got, pages) = read_all(&ledger, &UsageQuery::default(), 1).await;
    assert_eq!(pages, 3);
    let got: BTreeSet<Position> = got.iter().map(Position::of).collect();
    let want: BTreeSet<Position> = records.iter().map(Position::of).collect();
    assert_eq!(got, want);
    for r in &records {
        let q = query(None, None, Some(r.user.as_str()));
        let page = one_page(&ledger, &q, None, 5).await;
        assert_eq!(
            (&page.records[..], page.next),
            (std::slice::from_ref(r), None)
        );
    }
}

/// A cursor from a read without a range, given to a read whose range
/// starts later, starts at the range; bytes no ledger made are refused.
pub async fn a_cursor_is_clamped_to_the_range_and_garbage_refused<L: Ledger>(ledger: L) {
    let records: Vec<_> = [JAN + 1, FEB + 1, APR + 1]
        .iter()
        .map(|&at| record("alice", at, "uploads/alice/k"))
        .collect();
    append_all(&ledger, &records).await;
    for who in [None, Some("alice")] {
        let first = one_page(&ledger, &query(None, None, who), None, 1).await;
        assert_eq!(first.records, records[..1]);
        let later = query(Some(MAR), None, who);
        let page = one_page(&ledger, &later, first.next.as_ref(), 5).await;
        assert_eq!(
            (&page.records[..], page.next),
            (&records[2..], None),
            "{who:?}"
        );
        let earlier = query(None, Some(JAN + 1), who);
        let page = one_page(&ledger, &earlier, first.next.as_ref(), 5).await;
        assert_eq!(page, UsagePage::default(), "{who:?}");
        for bad in [vec![], vec![0xff; 12], b"not a cursor".to_vec()] {
            let err = ledger
                .page(&query(None, None, who), Some(&Cursor(bad)), 5)
                .await
                .expect_err("a bad cursor must be refused");
            assert!(matches!(err, StoreError::BadCursor), "{err:?}");
        }
    }
}

/// Generates one `#[tokio::test]` per ledger scenario. `$make` is an
/// expression callable with no arguments that returns a future of a
/// fresh, empty ledger.
#[macro_export]
macro_rules! ledger_conformance_tests {
    ($make:expr) => {
        mod ledger_conformance {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance::ledger as c;

            $crate::ledger_conformance_tests!(@each $make;
                an_appended_record_reads_back_whole,
                a_duplicate_is_reported_and_stored_once,
                same_user_and_time_with_other_keys_are_separate_records,
                since_is_inclusive_and_until_exclusive,
                a_user_filter_reads_only_that_users_records,
                small_pages_read_every_record_once_in_order,
                a_page_that_ends_on_the_last_record_has_no_next,
                an_empty_result_has_no_next,
                the_same_key_and_time_for_two_users_are_two_records,
                a_cursor_is_clamped_to_the_range_and_garbage_refused,
            );
        }
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                c::$name(($make)().await).await
            }
        )*
    };
}
