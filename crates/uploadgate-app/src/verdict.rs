//! What becomes of each settled object, wherever it was settled (the
//! embedded bucket of `serve`, a queue of S3 events): a log line, and with
//! `UPLOADGATE_METRICS=emf` one metric line (`Settled`, `LateSettle`,
//! `Quarantined`, `Duplicate`, `SettleFailed`); and the hand-off that
//! only logs accepted uploads ([`LogHandOff`]).

use std::sync::Arc;

use uploadgate_core::settle::{Accepted, HandOff, PortError};

#[cfg(any(feature = "local", feature = "settle"))]
pub use observing::observe;

/// A hook told of every accepted upload, in process.
pub type AcceptedHook = Arc<dyn Fn(&Accepted) + Send + Sync>;

/// The hand-off of `serve`: a log line per accepted upload, and an
/// optional in-process hook.
#[derive(Clone, Default)]
pub struct LogHandOff {
    hook: Option<AcceptedHook>,
}

impl std::fmt::Debug for LogHandOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandOff")
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl LogHandOff {
    /// Also calls `hook` with every accepted upload (after the log line).
    pub fn with_hook(hook: AcceptedHook) -> Self {
        LogHandOff { hook: Some(hook) }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl HandOff for LogHandOff {
    async fn send(&self, a: &Accepted) -> Result<(), PortError> {
        tracing::info!(
            bucket = %a.bucket,
            key = %a.key,
            user = %a.user,
            size = a.size,
            content_type = %a.content_type,
            checksum_sha256 = a.checksum_sha256.map(|c| hex(&c)),
            granted_at = a.granted_at.as_millis(),
            settled_at = a.settled_at.as_millis(),
            tier = a.tier.as_deref(),
            late = a.late,
            "upload accepted"
        );
        if let Some(hook) = &self.hook {
            hook(a);
        }
        Ok(())
    }
}

/// Logs and metrics of settled objects (only where something settles).
#[cfg(any(feature = "local", feature = "settle"))]
mod observing {
    use std::time::Duration;

    use uploadgate_core::Clock;
    use uploadgate_core::settle::{Landed, SettleError, Verdict};
    use uploadgate_http::metrics::{MetricsSink, SettleOutcome, SettleRecord};

    /// Logs `result` for `landed`, and emits its metric line to `metrics`.
    pub fn observe(
        metrics: Option<&dyn MetricsSink>,
        clock: &dyn Clock,
        landed: &Landed,
        result: &Result<Verdict, SettleError>,
        latency: Duration,
    ) {
        report(landed, result);
        if let Some(sink) = metrics {
            let reason = match result {
                Ok(Verdict::Quarantined(r)) => Some(r.as_str()),
                _ => None,
            };
            sink.emit(
                SettleRecord {
                    timestamp_ms: clock.now().as_millis(),
                    outcome: SettleOutcome::of(result),
                    latency,
                    key: &landed.key,
                    reason,
                }
                .to_line(),
            );
        }
    }

    fn report(landed: &Landed, result: &Result<Verdict, SettleError>) {
        match result {
            Ok(Verdict::Accepted { late }) => {
                tracing::debug!(key = %landed.key, late, "upload settled");
            }
            Ok(Verdict::Duplicate) => {
                tracing::info!(key = %landed.key, "upload settled before; nothing to do");
            }
            Ok(Verdict::Quarantined(reason)) => {
                tracing::warn!(key = %landed.key, reason = reason.as_str(), "upload quarantined");
            }
            Err(e) => {
                tracing::error!(
                    key = %landed.key,
                    error = %e,
                    source = ?std::error::Error::source(e),
                    "settling failed; its reservation will be released after the URL's TTL plus the grace"
                );
            }
        }
    }
}
