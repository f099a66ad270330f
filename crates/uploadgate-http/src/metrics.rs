//! Metrics as CloudWatch Embedded Metric Format (EMF): one JSON line per
//! decision, which CloudWatch Logs turns into metrics with no agent and no
//! extra API calls (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).
//!
//! Namespace `uploadgate`, dimension `Route` (`uploads` or `upload-check`).
//! Every line carries all six metrics, zero where they do not apply, so
//! sums and rates need no fill-in: `Allowed`, `Denied`, `FailOpen`,
//! `FailClosed`, `ShadowDenied` (Count: admitted in shadow mode although
//! a limit denied it), `Contention` (Count: a key too busy to decide in
//! time, answered 429), `StoreLatency` (Milliseconds: the whole decision,
//! retries included) and `Retries` (Count: compare-and-swap attempts after
//! the first). `requestId` and `limits` ride along as properties for Logs
//! Insights; they are not dimensions, so they cost nothing in metrics.
//!
//! In upload mode the settle step writes one line per landed object
//! ([`SettleRecord`], `Route` = `settle`): `Settled`, `LateSettle` (landed
//! after its reservation was released, charged anyway), `Quarantined`,
//! `Duplicate` (settled before), `SettleFailed` (to be retried) and
//! `SettleLatency` (Milliseconds), with the object key and the quarantine
//! reason as properties.

use std::time::Duration;

use serde_json::json;
use uploadgate_core::settle::{SettleError, Verdict};

/// Where EMF lines go.
pub trait MetricsSink: Send + Sync + 'static {
    /// Writes one line (no trailing newline).
    fn emit(&self, line: String);
}

/// Standard output: what the Lambda runtime ships to CloudWatch Logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stdout;

impl MetricsSink for Stdout {
    fn emit(&self, line: String) {
        use std::io::Write;
        // One write per line, so concurrent lines never interleave.
        let _ = std::io::stdout()
            .lock()
            .write_all(format!("{line}\n").as_bytes());
    }
}

/// How a decision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every limit allowed it.
    Allowed,
    /// A limit denied it (429).
    Denied,
    /// The store failed and `UPLOADGATE_FAIL_OPEN` admitted it.
    FailOpen,
    /// The store failed and the gate answered 503.
    FailClosed,
    /// Shadow mode: a limit would have denied it, but it was admitted.
    ShadowDenied,
    /// Its key was too busy to decide in time (429 with a short
    /// `Retry-After`); nothing was charged.
    Contention,
}

/// One decision's metrics.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// When, ms since the epoch.
    pub timestamp_ms: u64,
    /// `uploads` or `upload-check`.
    pub route: &'static str,
    /// The outcome.
    pub outcome: Outcome,
    /// Time spent deciding, store calls and retries included.
    pub store_latency: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// The request id, if any.
    pub request_id: Option<&'a str>,
    /// The limits involved (the violated ones for a denial), comma-separated.
    pub limits: &'a str,
}

impl Record<'_> {
    /// The EMF line.
    pub fn to_line(&self) -> String {
        let is = |o: Outcome| u8::from(self.outcome == o);
        json!({
            "_aws": {
                "Timestamp": self.timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": "uploadgate",
                    "Dimensions": [["Route"]],
                    "Metrics": [
                        {"Name": "Allowed", "Unit": "Count"},
                        {"Name": "Denied", "Unit": "Count"},
                        {"Name": "FailOpen", "Unit": "Count"},
                        {"Name": "FailClosed", "Unit": "Count"},
                        {"Name": "ShadowDenied", "Unit": "Count"},
                        {"Name": "Contention", "Unit": "Count"},
                        {"Name": "StoreLatency", "Unit": "Milliseconds"},
                        {"Name": "Retries", "Unit": "Count"},
                    ],
                }],
            },
            "Route": self.route,
            "Allowed": is(Outcome::Allowed),
            "Denied": is(Outcome::Denied),
            "FailOpen": is(Outcome::FailOpen),
            "FailClosed": is(Outcome::FailClosed),
            "ShadowDenied": is(Outcome::ShadowDenied),
            "Contention": is(Outcome::Contention),
            "StoreLatency": self.store_latency.as_secs_f64() * 1000.0,
            "Retries": self.retries,
            "requestId": self.request_id,
            "limits": self.limits,
        })
        .to_string()
    }
}

/// What settling one object came to, as a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleOutcome {
    /// It matched its reservation.
    Settled,
    /// It landed after its reservation was released; charged anyway.
    LateSettle,
    /// It was quarantined.
    Quarantined,
    /// It was settled before.
    Duplicate,
    /// Settling failed; the event source retries it.
    Failed,
}

impl SettleOutcome {
    /// The outcome of a settle call.
    pub fn of(result: &Result<Verdict, SettleError>) -> Self {
        match result {
            Ok(Verdict::Accepted { late: false }) => SettleOutcome::Settled,
            Ok(Verdict::Accepted { late: true }) => SettleOutcome::LateSettle,
            Ok(Verdict::Quarantined(_)) => SettleOutcome::Quarantined,
            Ok(Verdict::Duplicate) => SettleOutcome::Duplicate,
            Err(_) => SettleOutcome::Failed,
        }
    }
}

/// One settled object's metrics.
#[derive(Debug, Clone)]
pub struct SettleRecord<'a> {
    /// When, ms since the epoch.
    pub timestamp_ms: u64,
    /// The outcome.
    pub outcome: SettleOutcome,
    /// Time the settle step took.
    pub latency: Duration,
    /// The object key.
    pub key: &'a str,
    /// Why it was quarantined, if it was.
    pub reason: Option<&'a str>,
}

impl SettleRecord<'_> {
    /// The EMF line.
    pub fn to_line(&self) -> String {
        let is = |o: SettleOutcome| u8::from(self.outcome == o);
        json!({
            "_aws": {
                "Timestamp": self.timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": "uploadgate",
                    "Dimensions": [["Route"]],
                    "Metrics": [
                        {"Name": "Settled", "Unit": "Count"},
                        {"Name": "LateSettle", "Unit": "Count"},
                        {"Name": "Quarantined", "Unit": "Count"},
                        {"Name": "Duplicate", "Unit": "Count"},
                        {"Name": "SettleFailed", "Unit": "Count"},
                        {"Name": "SettleLatency", "Unit": "Milliseconds"},
                    ],
                }],
            },
            "Route": "settle",
            "Settled": is(SettleOutcome::Settled),
            "LateSettle": is(SettleOutcome::LateSettle),
            "Quarantined": is(SettleOutcome::Quarantined),
            "Duplicate": is(SettleOutcome::Duplicate),
            "SettleFailed": is(SettleOutcome::Failed),
            "SettleLatency": self.latency.as_secs_f64() * 1000.0,
            "key": self.key,
            "reason": self.reason,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_line_is_valid_emf_with_every_metric_declared_and_set() {
        let line = Record {
            timestamp_ms: 1_800_000_000_123,
            route: "uploads",
            outcome: Outcome::Denied,
            store_latency: Duration::from_micros(2_500),
            retries: 1,
            request_id: Some("req-1"),
            limits: "uploads",
        }
        .to_line();
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 1_800_000_000_123u64);
        assert_eq!(m["Namespace"], "uploadgate");
        // Every declared metric and dimension has a top-level value.
        for d in m["Dimensions"][0].as_array().unwrap() {
            assert!(v[d.as_str().unwrap()].is_string());
        }
        for name in m["Metrics"].as_array().unwrap() {
            assert!(v[name["Name"].as_str().unwrap()].is_number(), "{name}");
        }
        assert_eq!(
            (v["Denied"].as_u64(), v["Allowed"].as_u64()),
            (Some(1), Some(0))
        );
        assert_eq!(v["StoreLatency"].as_f64(), Some(2.5));
        assert_eq!(v["Retries"], 1);
        assert_eq!(v["requestId"], "req-1");
    }

    #[test]
    fn a_settle_line_counts_its_verdict_once() {
        use uploadgate_core::settle::QuarantineReason;
        let q = Ok(Verdict::Quarantined(QuarantineReason::ContentType));
        let line = SettleRecord {
            timestamp_ms: 1,
            outcome: SettleOutcome::of(&q),
            latency: Duration::from_millis(3),
            key: "uploads/a/b/c.pdf",
            reason: Some("content-type"),
        }
        .to_line();
        let v: Value = serde_json::from_str(&line).unwrap();
        let m = &v["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        let counted: Vec<&str> = m
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["Name"].as_str().unwrap())
            .filter(|n| *n != "SettleLatency" && v[*n] == 1)
            .collect();
        assert_eq!(counted, ["Quarantined"]);
        assert_eq!(v["Route"], "settle");
        assert_eq!(v["reason"], "content-type");
        let late = Ok(Verdict::Accepted { late: true });
        assert_eq!(SettleOutcome::of(&late), SettleOutcome::LateSettle);
        let failed = Err(SettleError::Contention);
        assert_eq!(SettleOutcome::of(&failed), SettleOutcome::Failed);
    }
}
