//! The usage ledger on DynamoDB (feature `ledger`).
//!
//! # Table
//!
//! A table of its own (not the limits table), one item per settled upload:
//!
//! | attribute     | type | meaning |
//! |---------------|------|---------|
//! | `user`        | S    | partition key: the user id |
//! | `sk`          | S    | sort key: `<landed_at, ms, 20 digits>#<object key>` |
//! | `month`       | S    | `YYYY-MM` (UTC) of `landed_at`: the partition of index `by_month` |
//! | `bytes`       | N    | size |
//! | `contentType` | S    | content type |
//! | `tier`        | S    | the caller's tier; absent without one |
//!
//! Index `by_month` (global, projection ALL): partition `month`, sort `sk`.
//! `sk` sorts by time (zero-padded, so as text), then by key, which is the
//! page order; an append is one `PutItem` conditioned on
//! `attribute_not_exists(sk)`, and a failed condition is the duplicate.
//!
//! One user's page is a `Query` of their partition. A page over all users
//! queries `by_month` one month after another, in order, so each month's
//! records come sorted and the months follow each other; a `Scan` would
//! come in no order at all. The months that hold records are listed in a
//! partition of their own, [`MONTHS_PARTITION`] (no user id can contain
//! `#`): an append first puts its month's marker there, once per month per
//! process, so a read without bounds knows where to start and end, and a
//! read skips empty months. A marker has no `month`, so it stays out of
//! the index. A page reads one more record than asked (to know whether
//! more follow), so `next` is `None` exactly when nothing follows.
//!
//! Reads are eventually consistent (an index has no other kind), so a
//! record may show up a moment after its append.
//!
//! # Cost
//!
//! An append: one `PutItem` on the table and its copy in the index (two
//! write units under 1 KB), plus a marker `PutItem` the first time a
//! process appends in a month. A page: one `Query` per month it touches
//! (after a `Query` of the month list when it reads all users).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use uploadgate_core::usage::{
    Appended, Cursor, Ledger, Position, Resume, UsagePage, UsageQuery, UsageRecord,
};
use uploadgate_core::{StoreError, Timestamp, UserId};

use crate::{classify, store_error};

/// Partition key (S): the user id.
pub const USER: &str = "user";
/// Sort key (S): `<landed_at as 20-digit ms>#<key>`.
pub const SORT_KEY: &str = "sk";
/// `YYYY-MM` of `landed_at` (S): the partition key of [`BY_MONTH`].
pub const MONTH: &str = "month";
/// The index that reads every user's records of a month in order.
pub const BY_MONTH: &str = "by_month";
/// Size in bytes (N).
pub const BYTES: &str = "bytes";
/// Content type (S).
pub const CONTENT_TYPE: &str = "contentType";
/// Tier (S), absent without one.
pub const TIER: &str = "tier";
/// The partition whose items (sort key `YYYY-MM`) list the months that
/// hold records.
pub const MONTHS_PARTITION: &str = "#months";

/// The usage ledger on a DynamoDB table laid out as the module says.
/// Cheap to clone; clones share the client and the months already marked.
#[derive(Clone)]
pub struct DynamoLedger {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    table: String,
    marked: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for DynamoLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoLedger")
            .field("table", &self.inner.table)
            .finish()
    }
}

/// The sort key of a record.
pub fn sort_key(landed_at: Timestamp, key: &str) -> String {
    format!("{:020}#{key}", landed_at.0)
}

/// `YYYY-MM` (UTC) of `at`; times past year 9999 all fall in `9999-12`,
/// which keeps months in the order of their times.
pub fn month_of(at: Timestamp) -> String {
    let nanos = i128::from(at.0) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!("{:04}-{:02}", t.year(), u8::from(t.month())),
        Err(_) => "9999-12".to_owned(),
    }
}

/// The bounds of a query on `sk` (`since` inclusive, `until` exclusive),
/// as a key condition on top of the partition's.
fn key_condition(since: Option<&str>, until: Option<&str>) -> &'static str {
    match (since, until) {
        (Some(_), Some(_)) => "#p = :p AND #s BETWEEN :lo AND :hi",
        (Some(_), None) => "#p = :p AND #s >= :lo",
        (None, Some(_)) => "#p = :p AND #s < :hi",
        (None, None) => "#p = :p",
    }
}

/// One `Query` of a partition, with bounds on `sk` and where to resume.
struct Partition<'a> {
    index: Option<&'static str>,
    attr: &'static str,
    value: String,
    lo: Option<&'a str>,
    hi: Option<&'a str>,
    start: Option<HashMap<String, AttributeValue>>,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl DynamoLedger {
    /// A ledger on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoLedger {
            inner: Arc::new(Inner {
                client,
                table: table.into(),
                marked: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    fn marked(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A set of strings is valid whatever panicked while holding it.
        self.inner.marked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `month`'s marker unless this process already did: before the
    /// record, so every record's month is listed.
    async fn mark(&self, month: &str) -> Result<(), StoreError> {
        if self.marked().contains(month) {
            return Ok(());
        }
        self.inner
            .client
            .put_item()
            .table_name(&self.inner.table)
            .item(USER, s(MONTHS_PARTITION))
            .item(SORT_KEY, s(month))
            .send()
            .await
            .map_err(store_error)?;
        self.marked().insert(month.to_owned());
        Ok(())
    }

    fn item(record: &UsageRecord) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::from([
            (USER.to_owned(), s(record.user.as_str())),
            (
                SORT_KEY.to_owned(),
                s(sort_key(record.landed_at, &record.key)),
            ),
            (MONTH.to_owned(), s(month_of(record.landed_at))),
            (
                BYTES.to_owned(),
                AttributeValue::N(record.bytes.to_string()),
            ),
            (CONTENT_TYPE.to_owned(), s(&record.content_type)),
        ]);
        if let Some(tier) = &record.tier {
            item.insert(TIER.to_owned(), s(tier));
        }
        item
    }

    fn decode(item: &HashMap<String, AttributeValue>) -> Result<UsageRecord, StoreError> {
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
        let user = text(USER).map_or("?", String::as_str);
        let sk = text(SORT_KEY).map_or("?", String::as_str);
        let corrupt = |why: String| StoreError::Corrupt {
            key: format!("usage {user} {sk}"),
            source: why.into(),
        };
        let (at, key) = sk
            .split_once('#')
            .filter(|(at, _)| at.len() == 20)
            .and_then(|(at, key)| Some((at.parse::<u64>().ok()?, key)))
            .ok_or_else(|| corrupt(format!("`{SORT_KEY}` is not <20 digits>#<key>")))?;
        let bytes = item
            .get(BYTES)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| corrupt(format!("no whole `{BYTES}`")))?;
        Ok(UsageRecord {
            user: UserId::parse(user).map_err(|e| corrupt(e.to_string()))?,
            key: key.to_owned(),
            bytes,
            content_type: text(CONTENT_TYPE)
                .ok_or_else(|| corrupt(format!("no `{CONTENT_TYPE}`")))?
                .clone(),
            tier: text(TIER).cloned(),
            landed_at: Timestamp(at),
        })
    }

    /// Queries `p` until `out` holds `want` records or the partition ends.
    async fn read(
        &self,
        mut p: Partition<'_>,
        want: usize,
        out: &mut Vec<UsageRecord>,
    ) -> Result<(), StoreError> {
        let mut values = HashMap::from([(":p".to_owned(), s(&p.value))]);
        values.extend(p.lo.map(|lo| (":lo".to_owned(), s(lo))));
        values.extend(p.hi.map(|hi| (":hi".to_owned(), s(hi))));
        let mut names = HashMap::from([("#p".to_owned(), p.attr.to_owned())]);
        if p.lo.is_some() || p.hi.is_some() {
            names.insert("#s".to_owned(), SORT_KEY.to_owned());
        }
        while out.len() < want {
            let need = i32::try_from(want - out.len()).unwrap_or(i32::MAX);
            let page = self
                .inner
                .client
                .query()
                .table_name(&self.inner.table)
                .set_index_name(p.index.map(str::to_owned))
                .key_condition_expression(key_condition(p.lo, p.hi))
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .set_exclusive_start_key(p.start.take())
                .limit(need)
                .send()
                .await
                .map_err(store_error)?;
            for item in page.items() {
                out.push(Self::decode(item)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => p.start = Some(k),
                _ => break,
            }
        }
        Ok(())
    }

    /// The months in `[from, to]` that hold records, in order.
    async fn months(&self, from: &str, to: Option<&str>) -> Result<Vec<String>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let mut values = HashMap::from([
                (":p".to_owned(), s(MONTHS_PARTITION)),
                (":lo".to_owned(), s(from)),
            ]);
            values.extend(to.map(|to| (":hi".to_owned(), s(to))));
            let out = self
                .inner
                .client
                .query()
                .table_name(&self.inner.table)
                .key_condition_expression(key_condition(Some(from), to))
                .expression_attribute_names("#p", USER)
                .expression_attribute_names("#s", SORT_KEY)
                .set_expression_attribute_values(Some(values))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            found.extend(
                out.items()
                    .iter()
                    .filter_map(|i| i.get(SORT_KEY)?.as_s().ok().cloned()),
            );
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(found),
            }
        }
    }

    async fn read_user(
        &self,
        user: &UserId,
        bounds: (Option<&str>, Option<&str>),
        start: &Resume,
        want: usize,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        let mut out = Vec::new();
        let start = match start {
            Resume::Done => return Ok(out),
            Resume::From(_) => None,
            Resume::After(p) => Some(HashMap::from([
                (USER.to_owned(), s(user.as_str())),
                (SORT_KEY.to_owned(), s(sort_key(p.landed_at, &p.key))),
            ])),
        };
        let p = Partition {
            index: None,
            attr: USER,
            value: user.as_str().to_owned(),
            lo: bounds.0,
            hi: bounds.1,
            start,
        };
        self.read(p, want, &mut out).await?;
        Ok(out)
    }

    async fn read_all_users(
        &self,
        query: &UsageQuery,
        bounds: (Option<&str>, Option<&str>),
        start: &Resume,
        want: usize,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        let mut out = Vec::new();
        let (first, after) = match start {
            Resume::Done => return Ok(out),
            Resume::From(t) => (month_of(*t), None),
            Resume::After(p) => (month_of(p.landed_at), Some(p)),
        };
        // `until` is past `since` here (else `Done`), so `until - 1` is in range.
        let last = query.until.map(|u| month_of(Timestamp(u.0 - 1)));
        for month in self.months(&first, last.as_deref()).await? {
            let start = after.filter(|_| month == first).map(|p: &Position| {
                HashMap::from([
                    (MONTH.to_owned(), s(&month)),
                    (SORT_KEY.to_owned(), s(sort_key(p.landed_at, &p.key))),
                    (USER.to_owned(), s(p.user.as_str())),
                ])
            });
            let p = Partition {
                index: Some(BY_MONTH),
                attr: MONTH,
                value: month,
                lo: bounds.0,
                hi: bounds.1,
                start,
            };
            self.read(p, want, &mut out).await?;
            if out.len() >= want {
                break;
            }
        }
        Ok(out)
    }
}

impl Ledger for DynamoLedger {
    async fn append(&self, record: &UsageRecord) -> Result<Appended, StoreError> {
        self.mark(&month_of(record.landed_at)).await?;
        let res = self
            .inner
            .client
            .put_item()
            .table_name(&self.inner.table)
            .set_item(Some(Self::item(record)))
            .condition_expression("attribute_not_exists(#sk)")
            .expression_attribute_names("#sk", SORT_KEY)
            .send()
            .await;
        match res {
            Ok(_) => Ok(Appended::New),
            Err(err) => match err.into_service_error() {
                PutItemError::ConditionalCheckFailedException(_) => Ok(Appended::Duplicate),
                other => Err(classify(other)),
            },
        }
    }

    async fn page(
        &self,
        query: &UsageQuery,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<UsagePage, StoreError> {
        let start = query.resume(after)?;
        let lo = query.since.map(|t| format!("{:020}#", t.0));
        let hi = query.until.map(|t| format!("{:020}", t.0));
        let bounds = (lo.as_deref(), hi.as_deref());
        let want = limit.max(1).saturating_add(1);
        let records = match &query.user {
            Some(user) => self.read_user(user, bounds, &start, want).await?,
            None => self.read_all_users(query, bounds, &start, want).await?,
        };
        Ok(UsagePage::from_overfetch(records, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc_calendar_months_in_time_order() {
        let cases = [
            (0, "1970-01"),
            (951_868_800_000 - 1, "2000-02"),
            (951_868_800_000, "2000-03"),
            (1_801_440_000_000 - 1, "2027-01"),
            (1_801_440_000_000, "2027-02"),
            (1_835_395_200_000, "2028-02"),
            (253_402_214_400_000, "9999-12"),
            (u64::MAX, "9999-12"),
        ];
        for (ms, want) in cases {
            assert_eq!(month_of(Timestamp(ms)), want, "{ms}");
        }
    }

    #[test]
    fn sort_keys_sort_by_time_then_key_and_decode_back() {
        let a = sort_key(Timestamp(9), "z");
        let b = sort_key(Timestamp(10), "a");
        let c = sort_key(Timestamp(10), "a#b");
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(sort_key(Timestamp(u64::MAX), "k").len(), 22);
        let r = UsageRecord {
            user: UserId::parse("alice").unwrap(),
            key: "uploads/alice/x#y".into(),
            bytes: u64::MAX,
            content_type: "image/png".into(),
            tier: None,
            landed_at: Timestamp(1_801_440_000_000),
        };
        let item = DynamoLedger::item(&r);
        assert_eq!(item[MONTH], s("2027-02"));
        assert_eq!(item[SORT_KEY], s("00000001801440000000#uploads/alice/x#y"));
        assert!(!item.contains_key(TIER));
        assert_eq!(DynamoLedger::decode(&item).unwrap(), r);
        let mut bad = item.clone();
        bad.insert(SORT_KEY.into(), s("12#k"));
        assert!(matches!(
            DynamoLedger::decode(&bad),
            Err(StoreError::Corrupt { key, .. }) if key == "usage alice 12#k"
        ));
    }
}
