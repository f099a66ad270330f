use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time: milliseconds since the Unix epoch, UTC.
///
/// Milliseconds are fine enough for upload quotas and keep state small; the
/// GCRA algorithm works in nanoseconds internally where byte-rate emission
/// intervals would otherwise round to zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// RFC 3339 in UTC, with milliseconds when there are any, as the API,
    /// the export and the hand-off write times; `None` past year 9999.
    pub fn to_rfc3339(self) -> Option<String> {
        let nanos = i128::from(self.0) * 1_000_000;
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()?
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    }

    /// Whole seconds since the epoch, rounded up (for TTL attributes that must
    /// not expire early).
    pub fn as_secs_ceil(self) -> u64 {
        self.0.div_ceil(1000)
    }
}

/// The source of "now". Injected everywhere so tests control time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Timestamp(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Clone, Debug, Default)]
pub struct FakeClock(Arc<AtomicU64>);

impl FakeClock {
    /// A fake clock starting at `start`.
    pub fn new(start: Timestamp) -> Self {
        FakeClock(Arc::new(AtomicU64::new(start.0)))
    }

    /// Moves time forward.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_clones_share_time() {
        let a = FakeClock::new(Timestamp(1_000));
        let b = a.clone();
        a.advance(Duration::from_secs(2));
        assert_eq!(b.now(), Timestamp(3_000));
    }

    #[test]
    fn secs_round_up() {
        assert_eq!(Timestamp(1_001).as_secs_ceil(), 2);
        assert_eq!(Timestamp(1_000).as_secs_ceil(), 1);
    }
}
