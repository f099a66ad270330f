//! The router's state as `uploadgate serve` runs it, and, in upload mode
//! (`UPLOADGATE_CHARGE=upload`), settlement in-process: the embedded bucket
//! reports every object it stores, and the core's
//! [`Settler`] settles it against its reservation, on a task of its own.
//!
//! * **Never in the way of the `PUT`.** The bucket answers the `PUT` once
//!   the object is stored; settling runs after, spawned. A transient
//!   failure (the store or ledger briefly unavailable) is retried a few
//!   times, then logged: the reservation is then released after its URL's
//!   TTL plus the grace, as if nothing had landed.
//! * **Hand-off.** An accepted upload is logged (`upload accepted`, with
//!   the fields of the accepted message) and given to an optional
//!   in-process hook ([`LogHandOff::with_hook`]): a real queue is the next
//!   step.
//! * **Quarantine.** The bucket marks the object with the tag
//!   `uploadgate-quarantine=<reason>` (see `uploadgate_s3::Landings`).
//! * **Metrics.** Each verdict is one EMF line (`Settled`, `LateSettle`,
//!   `Quarantined`, `Duplicate`, `SettleFailed`) when metrics are on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use uploadgate_core::settle::{Landed, Settle, SettleError, Settler, Verdict};
use uploadgate_core::{Clock, Timestamp};
use uploadgate_http::metrics::{self, MetricsSink};
use uploadgate_http::{AppState, limiter};
use uploadgate_s3::{Landings, LocalBucket, Presigner};

use crate::config::Config;
use crate::verdict;
pub use crate::verdict::{AcceptedHook, LogHandOff};
use crate::wiring::{AnyLedger, AnyStore, GateLimiter, LocalTarget, OpenError};

/// Attempts at settling one object before giving up on a transient error.
const ATTEMPTS: u32 = 4;
/// The pause before the second attempt; doubled before each next one.
const FIRST_PAUSE: Duration = Duration::from_millis(500);

/// The settler `serve` runs.
type ServeSettler = Settler<AnyStore, Arc<dyn Clock>, AnyLedger, LogHandOff, LocalBucket>;

/// What the embedded bucket reports its objects to.
struct Landing {
    settler: Arc<ServeSettler>,
    clock: Arc<dyn Clock>,
    metrics: Option<Arc<dyn MetricsSink>>,
}

impl Landings for Landing {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn landed(&self, landed: Landed) {
        let settler = Arc::clone(&self.settler);
        let clock = Arc::clone(&self.clock);
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = settle(settler.as_ref(), &landed).await;
            verdict::observe(
                metrics.as_deref(),
                clock.as_ref(),
                &landed,
                &result,
                started.elapsed(),
            );
        });
    }
}

/// Settles `landed`, retrying transient failures (every step of the
/// settle step is safe to repeat).
async fn settle(settler: &ServeSettler, landed: &Landed) -> Result<Verdict, SettleError> {
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        match settler.settle(landed).await {
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                tracing::warn!(key = %landed.key, attempt, error = %e, "settling failed; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// The router's state for `config`, on `store` and `clock`, with
/// `GET /v1/usage` on `ledger`, and the limiter it decides with. In upload
/// mode the embedded bucket of `local`, if there is one, reports its
/// objects to a settler on the same limiter, which hands accepted uploads
/// to `hand_off`; on S3 the caller settles S3's events with the limiter
/// (`crate::queue`).
pub fn serve_state(
    config: &Config,
    store: AnyStore,
    ledger: Option<AnyLedger>,
    clock: Arc<dyn Clock>,
    presigner: Presigner,
    local: Option<&LocalTarget>,
    hand_off: LogHandOff,
) -> Result<(AppState, GateLimiter), OpenError> {
    let sink = config
        .gate
        .emf_metrics
        .then(|| Arc::new(metrics::Stdout) as Arc<dyn MetricsSink>);
    let limiter = limiter(&config.gate, store, Arc::clone(&clock));
    if config.gate.settlement.is_some() {
        let ledger = ledger
            .clone()
            .ok_or(OpenError::UploadMode("a usage ledger"))?;
        if let Some(local) = local {
            let bucket = local.bucket();
            let settler = Settler::new(
                limiter.clone(),
                ledger,
                hand_off,
                bucket.clone(),
                config.gate.key_prefix.clone(),
                config.url_ttl,
            )
            .map_err(|_| OpenError::UploadMode("the limiter in upload mode"))?;
            bucket.set_landings(Arc::new(Landing {
                settler: Arc::new(settler),
                clock,
                metrics: sink.clone(),
            }));
        }
    }
    let state = AppState::with_limiter(config.gate.clone(), limiter.clone(), presigner, sink);
    let state = match ledger {
        Some(ledger) => state.with_usage(ledger),
        None => state,
    };
    Ok((state, limiter))
}
