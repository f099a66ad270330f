//! `GET /v1/usage`: the caller's own settled uploads, from the usage ledger
//! (upload mode records one per object that landed and matched its URL).
//!
//! A page is read straight from the ledger: `records` in the order they
//! landed, and `uploads` and `bytes` totalling **that page** (a total over
//! the whole range would read every page of it). `next` is the cursor of
//! the following page, `null` after the last; it is the ledger's own cursor
//! in unpadded base64url, so paging costs nothing between calls. Consumes
//! no quota.
//!
//! Every answer also carries the caller's **totals**, whatever the page:
//! `month` (the current UTC calendar month) and `windows` (one per limit of
//! the caller's policy on the user, over the window that limit counts
//! now). They are summed from the ledger, one pass over the caller's own
//! records from the earliest of those starts, a page of [`TOTALS_PAGE`] at
//! a time. The read grows with the caller's settled uploads in that span
//! (one ledger read per 1,000), which their count limits bound: 5 per 3 h
//! is at most 1,240 a month, two reads. A policy with no count limit, or a
//! very large one, makes a busy caller's totals cost more reads; a running
//! total kept beside the ledger would make it one. The times come from the
//! router's clock (the limiter's), so tests inject them.

use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uploadgate_core::algorithm::window_bounds;
use uploadgate_core::usage::{Cursor, Ledger, UsagePage, UsageQuery};
use uploadgate_core::{
    Algorithm, LimiterError, Policy, StoreError, Subject, Timestamp, UserId, Window,
};

use crate::AppState;
use crate::error::ApiError;
use crate::meter::BoxFuture;
use crate::routes::ok_json;

/// Records per page when the caller does not say.
const DEFAULT_LIMIT: usize = 100;
/// Most records per page.
const MAX_LIMIT: usize = 1000;
/// Records per ledger read when summing the totals.
const TOTALS_PAGE: usize = 1000;

/// The usage ledger as the handler sees it: [`Ledger`]'s reads, object-safe
/// (one boxed future per page), so the router holds any backend.
pub trait UsageLog: Send + Sync + 'static {
    /// Up to `limit` records of `query` after `after` (see [`Ledger::page`]).
    fn page<'a>(
        &'a self,
        query: &'a UsageQuery,
        after: Option<&'a Cursor>,
        limit: usize,
    ) -> BoxFuture<'a, Result<UsagePage, StoreError>>;
}

impl<L: Ledger> UsageLog for L {
    fn page<'a>(
        &'a self,
        query: &'a UsageQuery,
        after: Option<&'a Cursor>,
        limit: usize,
    ) -> BoxFuture<'a, Result<UsagePage, StoreError>> {
        Box::pin(Ledger::page(self, query, after, limit))
    }
}

/// The query of a usage request, checked.
#[derive(Debug, Default, PartialEq, Eq)]
struct Params {
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    cursor: Option<Cursor>,
    limit: Option<usize>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

/// An RFC 3339 time; one before 1970 is 1970 (nothing landed earlier).
fn time_param(name: &str, value: &str) -> Result<Timestamp, ApiError> {
    let t = OffsetDateTime::parse(value, &Rfc3339).map_err(|_| {
        bad(format!(
            "`{name}` must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"
        ))
    })?;
    let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
    Ok(Timestamp(u64::try_from(ms.max(0)).unwrap_or(u64::MAX)))
}

impl Params {
    /// `since`, `until` (RFC 3339), `cursor` and `limit` (1-1000); other
    /// parameters (`userId` in body identity mode) are not this route's.
    fn parse(query: Option<&str>) -> Result<Params, ApiError> {
        let mut p = Params::default();
        let mut seen: Vec<String> = Vec::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if !matches!(&*k, "since" | "until" | "cursor" | "limit") {
                continue;
            }
            if seen.iter().any(|s| *s == k) {
                return Err(bad(format!("`{k}` is repeated")));
            }
            seen.push(k.to_string());
            match &*k {
                "since" => p.since = Some(time_param("since", &v)?),
                "until" => p.until = Some(time_param("until", &v)?),
                "cursor" => {
                    let bytes = URL_SAFE_NO_PAD
                        .decode(v.as_bytes())
                        .ok()
                        .filter(|b| !b.is_empty())
                        .ok_or_else(|| bad("`cursor` is not one this API gave out"))?;
                    p.cursor = Some(Cursor(bytes));
                }
                _ => {
                    let n = v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            bad(format!(
                                "`limit` must be a whole number from 1 to {MAX_LIMIT}"
                            ))
                        })?;
                    p.limit = Some(n);
                }
            }
        }
        Ok(p)
    }

    /// Whether the range holds no time at all (`until` at or before
    /// `since`): an empty page, without asking the ledger.
    fn is_empty(&self) -> bool {
        matches!((self.since, self.until), (Some(s), Some(u)) if u <= s)
    }
}

/// A time as the answer writes it: RFC 3339, UTC, milliseconds.
fn rfc3339(at: Timestamp) -> Result<String, ApiError> {
    at.to_rfc3339().ok_or_else(|| {
        ApiError::Internal(format!("time {} ms is past year 9999", at.as_millis()).into())
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordJson<'a> {
    key: &'a str,
    bytes: u64,
    content_type: &'a str,
    tier: Option<&'a str>,
    landed_at: String,
}

#[derive(Serialize)]
struct UsageAnswer<'a> {
    user: &'a str,
    since: Option<String>,
    until: Option<String>,
    uploads: usize,
    bytes: u64,
    records: Vec<RecordJson<'a>>,
    next: Option<String>,
    month: MonthJson,
    windows: Vec<WindowJson<'a>>,
}

/// The caller's settled uploads this UTC calendar month.
#[derive(Serialize)]
struct MonthJson {
    start: String,
    uploads: u64,
    bytes: u64,
}

/// The caller's settled uploads in the window one of their limits counts.
#[derive(Serialize)]
struct WindowJson<'a> {
    policy: &'a str,
    window: String,
    uploads: u64,
    bytes: u64,
}

/// Settled uploads and bytes from `start` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tally {
    start: Timestamp,
    uploads: u64,
    bytes: u64,
}

impl Tally {
    fn from(start: Timestamp) -> Self {
        Tally {
            start,
            uploads: 0,
            bytes: 0,
        }
    }
}

/// Where the window that `algorithm` counts at `now` starts: for sliding
/// and GCRA the last window length, for which an upload at `now - W` has
/// just left (`(now - W, now]`); for fixed the current calendar window.
fn window_start(algorithm: Algorithm, now: Timestamp) -> Timestamp {
    match algorithm {
        Algorithm::Sliding(span) | Algorithm::Gcra(span) => {
            Timestamp((now.0 + 1).saturating_sub(span.as_millis()))
        }
        Algorithm::Fixed(window) => Timestamp(window_bounds(window, now.0).0),
    }
}

/// The caller's totals: this month's, then one per user limit of `policy`
/// (in the policy's order), from one pass over `user`'s records since the
/// earliest start. Records that landed after `now` (a clock ahead of this
/// one) count too.
async fn totals(
    ledger: &dyn UsageLog,
    user: &UserId,
    policy: &Policy,
    now: Timestamp,
) -> Result<(Tally, Vec<Tally>), StoreError> {
    let mut month = Tally::from(Timestamp(window_bounds(Window::CalendarMonth, now.0).0));
    let mut windows: Vec<Tally> = policy
        .limits()
        .iter()
        .filter(|l| l.subject == Subject::User)
        .map(|l| Tally::from(window_start(l.algorithm, now)))
        .collect();
    let since = windows
        .iter()
        .map(|t| t.start)
        .fold(month.start, Timestamp::min);
    let query = UsageQuery {
        since: Some(since),
        until: None,
        user: Some(user.clone()),
    };
    let mut after: Option<Cursor> = None;
    loop {
        let page = ledger.page(&query, after.as_ref(), TOTALS_PAGE).await?;
        for r in &page.records {
            for t in std::iter::once(&mut month).chain(windows.iter_mut()) {
                if r.landed_at >= t.start {
                    t.uploads += 1;
                    t.bytes = t.bytes.saturating_add(r.bytes);
                }
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok((month, windows)),
        }
    }
}

/// `GET /v1/usage`.
pub async fn usage(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    let caller = st.inner.identity.caller(&parts, None).await?;
    // A ledger may hold what an earlier upload mode recorded, but a gate
    // charging on grant adds nothing to it: its totals would read as none.
    if st.inner.gate.settlement.is_none() {
        return Err(ApiError::UsageNotRecorded(
            "this gate charges when it hands out a URL (UPLOADGATE_CHARGE=grant), so it records no usage",
        ));
    }
    let Some(ledger) = st.inner.usage.get() else {
        return Err(ApiError::UsageNotRecorded(
            "this deployment keeps no usage ledger",
        ));
    };
    let Some(user) = caller.user.clone() else {
        return Err(ApiError::UsageNotRecorded(
            "usage is recorded per user, and this gate has none (UPLOADGATE_IDENTITY=anonymous)",
        ));
    };
    let params = Params::parse(parts.uri.query())?;
    let tier = crate::charge::tier(&st, &caller);
    let policy = st.inner.meter.policy_of(tier.as_deref());
    let unavailable = |e| ApiError::Unavailable(LimiterError::Store(e));
    let query = UsageQuery {
        since: params.since,
        until: params.until,
        user: Some(user.clone()),
    };
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    let page = if params.is_empty() {
        UsagePage::default()
    } else {
        ledger
            .page(&query, params.cursor.as_ref(), limit)
            .await
            .map_err(|e| match e {
                StoreError::BadCursor => bad("`cursor` is not one this API gave out"),
                e => unavailable(e),
            })?
    };
    let (month, windows) = totals(ledger.as_ref(), &user, policy, st.inner.meter.now())
        .await
        .map_err(unavailable)?;
    let windows = policy
        .limits()
        .iter()
        .filter(|l| l.subject == Subject::User)
        .zip(windows)
        .map(|(l, t)| WindowJson {
            policy: l.name.as_str(),
            window: l.window().to_string(),
            uploads: t.uploads,
            bytes: t.bytes,
        })
        .collect();
    let records = page
        .records
        .iter()
        .map(|r| {
            Ok(RecordJson {
                key: &r.key,
                bytes: r.bytes,
                content_type: &r.content_type,
                tier: r.tier.as_deref(),
                landed_at: rfc3339(r.landed_at)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    ok_json(
        &st,
        None,
        &UsageAnswer {
            user: user.as_str(),
            since: params.since.map(rfc3339).transpose()?,
            until: params.until.map(rfc3339).transpose()?,
            uploads: records.len(),
            bytes: page.records.iter().map(|r| r.bytes).sum(),
            records,
            next: page.next.map(|c| URL_SAFE_NO_PAD.encode(c.0)),
            month: MonthJson {
                start: rfc3339(month.start)?,
                uploads: month.uploads,
                bytes: month.bytes,
            },
            windows,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_and_named() {
        assert_eq!(Params::parse(None).unwrap(), Params::default());
        let p = Params::parse(Some(
            "since=2027-01-15T08:00:00Z&until=2027-01-15T09:00:00.5%2B01:00&limit=5&cursor=AQID&userId=x",
        ))
        .unwrap();
        assert_eq!(p.since, Some(Timestamp(1_800_000_000_000)));
        // 09:00:00.5 at +01:00 is 08:00:00.5 UTC.
        assert_eq!(p.until, Some(Timestamp(1_800_000_000_500)));
        assert_eq!(p.limit, Some(5));
        assert_eq!(p.cursor, Some(Cursor(vec![1, 2, 3])));
        for (query, names) in [
            ("limit=0", "`limit`"),
            ("limit=1001", "`limit`"),
            ("limit=ten", "`limit`"),
            ("since=yesterday", "`since`"),
            ("until=2027-01-15", "`until`"),
            ("cursor=***", "`cursor`"),
            ("cursor=", "`cursor`"),
            ("limit=1&limit=2", "`limit` is repeated"),
        ] {
            let e = Params::parse(Some(query)).unwrap_err();
            assert!(matches!(e, ApiError::BadRequest(_)), "{query}");
            assert!(e.to_string().contains(names), "{query}: {e}");
        }
        // Valid times are taken as they come: before 1970 is 1970, and a
        // range that ends before it starts is empty.
        let p = Params::parse(Some("since=0001-01-01T00:00:00.5-01:00")).unwrap();
        assert_eq!(p.since, Some(Timestamp(0)));
        let p = Params::parse(Some(
            "since=2027-01-15T09:00:00Z&until=2027-01-15T08:00:00Z",
        ))
        .unwrap();
        assert!(p.is_empty());
        let p = Params::parse(Some("since=2027-01-15T09:00:00Z")).unwrap();
        assert!(!p.is_empty());
    }

    #[test]
    fn each_algorithm_counts_from_where_its_window_starts() {
        let limit = |raw: &str| raw.parse::<uploadgate_core::Limit>().unwrap().algorithm;
        // 2027-01-15T08:00:00.250Z
        let now = Timestamp(1_800_000_000_250);
        // Sliding and GCRA: the last window length, the instant `now - W`
        // itself already out.
        let three_hours_ago = 1_800_000_000_250 - 3 * 3_600_000;
        assert_eq!(
            window_start(limit("a=user:5/3h"), now),
            Timestamp(three_hours_ago + 1)
        );
        assert_eq!(
            window_start(limit("a=user:5/3h:gcra"), now),
            Timestamp(three_hours_ago + 1)
        );
        // Fixed: the calendar window (the UTC day, the month).
        assert_eq!(
            rfc3339(window_start(limit("a=user:5/1d:fixed"), now)).unwrap(),
            "2027-01-15T00:00:00Z"
        );
        assert_eq!(
            rfc3339(window_start(limit("a=user:5/1mo:fixed"), now)).unwrap(),
            "2027-01-01T00:00:00Z"
        );
        // A window longer than all time so far starts at the epoch.
        assert_eq!(
            window_start(limit("a=user:5/1d"), Timestamp(5)),
            Timestamp(0)
        );
    }

    #[test]
    fn times_are_written_in_utc_with_milliseconds() {
        assert_eq!(
            rfc3339(Timestamp(1_800_000_000_123)).unwrap(),
            "2027-01-15T08:00:00.123Z"
        );
        assert_eq!(
            rfc3339(Timestamp(1_800_000_000_000)).unwrap(),
            "2027-01-15T08:00:00Z"
        );
    }
}
