//! The IETF `RateLimit-Policy` and `RateLimit` fields
//! (draft-ietf-httpapi-ratelimit-headers-10), as structured-field lists with
//! one item per limit:
//!
//! ```text
//! RateLimit-Policy: "uploads";q=5;w=10800, "volume";q=52428800;w=86400;qu="content-bytes"
//! RateLimit: "uploads";r=4;t=10800, "volume";r=52416455;t=86400
//! ```

use http::{HeaderName, HeaderValue};
use sfv::{Integer, KeyRef, ListSerializer, StringRef};
use uploadgate_core::{Decision, Limit, LimitStatus, Policy, Unit};

/// `RateLimit-Policy` header name (a constant: a `&str` name is parsed
/// again on every insert).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` header name.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

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
    insert_fields_with(headers, decision, &PolicyFields::default());
}

/// [`insert_fields`], taking the `RateLimit-Policy` value from `known`
/// when the decision was made under one of its policies.
pub(crate) fn insert_fields_with(
    headers: &mut http::HeaderMap,
    decision: &Decision,
    known: &PolicyFields,
) {
    if let Some(v) = known.for_decision(decision) {
        headers.insert(RATELIMIT_POLICY, v);
    }
    if let Some(v) = ratelimit_header(decision) {
        headers.insert(RATELIMIT, v);
    }
}

/// The `RateLimit-Policy` values of a gate's policies (the default one and
/// each tier's), serialized once at start-up rather than per answer.
#[derive(Debug, Default)]
pub(crate) struct PolicyFields(Vec<(Vec<Limit>, HeaderValue)>);

impl PolicyFields {
    pub(crate) fn new<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Self {
        PolicyFields(
            policies
                .into_iter()
                .filter_map(|p| {
                    let value = policy_header(p.limits())?;
                    Some((p.limits().to_vec(), value))
                })
                .collect(),
        )
    }

    /// The value for `limits`: a known policy's when they are exactly its
    /// limits, in its order; otherwise serialized now.
    pub(crate) fn for_limits<'a>(
        &self,
        limits: impl Iterator<Item = &'a Limit> + Clone,
    ) -> Option<HeaderValue> {
        match self
            .0
            .iter()
            .find(|(known, _)| known.iter().eq(limits.clone()))
        {
            Some((_, value)) => Some(value.clone()),
            None => policy_header(limits),
        }
    }

    /// The value for the limits `decision` reports.
    fn for_decision(&self, decision: &Decision) -> Option<HeaderValue> {
        self.for_limits(decision.limits.iter().map(|l| &l.limit))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn decision(policy: &Policy) -> Decision {
        Decision {
            allowed: true,
            limits: policy
                .limits()
                .iter()
                .map(|limit| LimitStatus {
                    limit: limit.clone(),
                    remaining: 1,
                    reset_after: Duration::from_secs(1),
                    retry_after: None,
                })
                .collect(),
            attempts: 1,
            contention: None,
            grant: None,
            backlog: None,
        }
    }

    #[test]
    fn a_known_policy_is_answered_with_its_precomputed_value_and_any_other_is_serialized() {
        let default = "uploads=user:5/3h;volume=user:50MiB/24h"
            .parse::<Policy>()
            .unwrap();
        let pro = "uploads=user:50/3h".parse::<Policy>().unwrap();
        let other = "uploads=user:7/1h".parse::<Policy>().unwrap();
        let fields = PolicyFields::new([&default, &pro]);
        for p in [&default, &pro, &other] {
            let mut headers = http::HeaderMap::new();
            insert_fields_with(&mut headers, &decision(p), &fields);
            assert_eq!(
                headers.get(&RATELIMIT_POLICY),
                policy_header(p.limits()).as_ref(),
                "{p:?}"
            );
        }
        let mut headers = http::HeaderMap::new();
        insert_fields_with(&mut headers, &decision(&pro), &fields);
        assert_eq!(headers[&RATELIMIT_POLICY], "\"uploads\";q=50;w=10800");
        // Same limits in another order are another policy's answer.
        let swapped = "volume=user:50MiB/24h;uploads=user:5/3h"
            .parse::<Policy>()
            .unwrap();
        let mut headers = http::HeaderMap::new();
        insert_fields_with(&mut headers, &decision(&swapped), &fields);
        assert_eq!(
            headers[&RATELIMIT_POLICY],
            "\"volume\";q=52428800;w=86400;qu=\"content-bytes\", \"uploads\";q=5;w=10800"
        );
    }
}
