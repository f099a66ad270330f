//! The IETF `RateLimit-Policy` and `RateLimit` fields
//! (draft-ietf-httpapi-ratelimit-headers-10), as structured-field lists with
//! one item per limit:
//!
//! ```text
//! RateLimit-Policy: "uploads";q=5;w=10800, "volume";q=52428800;w=86400;qu="content-bytes"
//! RateLimit: "uploads";r=4;t=10800, "volume";r=52416455;t=86400
//! ```

use http::HeaderValue;
use sfv::{Integer, KeyRef, ListSerializer, StringRef};
use uploadgate_core::{Decision, Limit, LimitStatus, Unit};

/// `RateLimit-Policy` header name.
pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
/// `RateLimit` header name.
pub const RATELIMIT: &str = "ratelimit";

/// Whole seconds, rounded up, clamped to the structured-field range.
pub fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis().div_ceil(1000))
        .unwrap_or(i64::MAX)
        .min(999_999_999_999_999)
}

fn int(v: u64) -> Integer {
    Integer::try_from(
        i64::try_from(v)
            .unwrap_or(i64::MAX)
            .min(999_999_999_999_999),
    )
    .unwrap_or(Integer::MAX)
}

fn key(k: &'static str) -> &'static KeyRef {
    // Constant, valid keys.
    KeyRef::from_str(k).unwrap_or_else(|_| unreachable!("static key {k}"))
}

fn name(n: &str) -> &StringRef {
    // Limit names are [A-Za-z0-9_-], always valid sf-strings.
    StringRef::from_str(n).unwrap_or_else(|_| unreachable!("limit name {n}"))
}

fn finish(ser: ListSerializer<String>) -> Option<HeaderValue> {
    ser.finish().and_then(|s| HeaderValue::from_str(&s).ok())
}

/// The `RateLimit-Policy` value for a policy's limits.
pub fn policy_header<'a>(limits: impl IntoIterator<Item = &'a Limit>) -> Option<HeaderValue> {
    let mut ser = ListSerializer::new();
    for l in limits {
        let w = (l.window().nominal_ms() / 1000).max(1);
        let mut item = ser.bare_item(name(l.name.as_str()));
        item = item
            .parameter(key("q"), int(l.amount.value.get()))
            .parameter(key("w"), int(w));
        if l.amount.unit == Unit::Bytes {
            item.parameter(key("qu"), name("content-bytes"));
        }
    }
    finish(ser)
}

/// Both fields for a decision: the policy it was made under (a caller's
/// tier may differ from the default policy) and what is left.
pub fn insert_fields(headers: &mut http::HeaderMap, decision: &Decision) {
    if let Some(v) = policy_header(decision.limits.iter().map(|l| &l.limit)) {
        headers.insert(RATELIMIT_POLICY, v);
    }
    if let Some(v) = ratelimit_header(decision) {
        headers.insert(RATELIMIT, v);
    }
}

/// The `RateLimit` value for a decision.
pub fn ratelimit_header(decision: &Decision) -> Option<HeaderValue> {
    let mut ser = ListSerializer::new();
    for LimitStatus {
        limit,
        remaining,
        reset_after,
        ..
    } in &decision.limits
    {
        ser.bare_item(name(limit.name.as_str()))
            .parameter(key("r"), int(*remaining))
            .parameter(
                key("t"),
                Integer::try_from(secs(*reset_after)).unwrap_or(Integer::MAX),
            );
    }
    finish(ser)
}
