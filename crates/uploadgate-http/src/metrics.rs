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

use std::time::Duration;

use serde_json::json;

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
}
