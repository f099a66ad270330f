//! What the limiter answers: a [`Decision`] (admitted, denied by a limit, or
//! turned away because the key stayed contended), or a [`LimiterError`]
//! when no decision could be made.
//!
//! Losing every compare-and-swap is not an outage: it means other writers
//! kept succeeding on the same key. It is a denial flagged with
//! [`Contention`], with a short retry time, so the HTTP layer answers 429
//! and never fails open on it.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::Subject;
use crate::policy::Limit;
use crate::store::StoreError;

/// Why a decision could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimiterError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The policy counts a subject the request does not have.
    #[error("the policy limits by {0}, but the request has no {0}")]
    MissingSubject(Subject),
    /// The batch deciding this request stopped without answering it (it
    /// panicked). Whether the request was charged is unknown.
    #[error("the batch deciding this request stopped without an answer")]
    Abandoned,
}

impl LimiterError {
    /// Whether the same request may succeed if tried again.
    pub fn is_transient(&self) -> bool {
        match self {
            LimiterError::Store(e) => e.is_transient(),
            LimiterError::MissingSubject(_) | LimiterError::Abandoned => false,
        }
    }
}

/// One limit's part of a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitStatus {
    /// The limit.
    pub limit: Limit,
    /// Quota left after the decision.
    pub remaining: u64,
    /// Time until capacity next frees up.
    pub reset_after: Duration,
    /// `Some` if this limit denied the request: when the same request would
    /// be admitted by it.
    pub retry_after: Option<Duration>,
}

/// A request turned away because its keys stayed contended: every
/// compare-and-swap the limiter tried lost to another writer. No limit
/// denied it and nothing was charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contention {
    /// When to try again. Short: the key is busy, not full.
    pub retry_after: Duration,
}

impl Contention {
    /// The retry time of a contention denial: one second, the finest a
    /// `Retry-After` header can say.
    pub const RETRY_AFTER: Duration = Duration::from_secs(1);
}

/// The answer to "may this upload go ahead?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether every limit allowed it (and it was consumed from all).
    pub allowed: bool,
    /// Per limit, in policy order.
    pub limits: Vec<LimitStatus>,
    /// Compare-and-swap attempts made (1 without contention, 0 for reads).
    pub attempts: u32,
    /// `Some` if the request was denied because the limiter gave up on a
    /// contended key, not because a limit was reached (then no limit is
    /// [`violated`](Decision::violated)).
    pub contention: Option<Contention>,
    /// What became of the request's idempotency key, if it had one.
    pub grant: Option<GrantOutcome>,
    /// `Some` if the request was denied because its user holds
    /// [`Reservation::MAX_PENDING`](crate::Reservation::MAX_PENDING)
    /// reservations not yet settled (upload mode), not because a limit was
    /// reached (then no limit is [`violated`](Decision::violated)).
    pub backlog: Option<Backlog>,
}

/// A grant turned away because its user already holds the most pending
/// reservations one user may (upload mode): admitting it could neither be
/// recorded nor, unrecorded, ever be refunded or settled. Nothing was
/// charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backlog {
    /// When the earliest pending reservation is released at the latest
    /// (its URL's expiry plus the grace), which frees room; settling any
    /// of them frees it sooner.
    pub retry_after: Duration,
}

/// What a request under an idempotency key got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantOutcome {
    /// A new grant, charged now and recorded under the key.
    Granted,
    /// The key already holds a grant for the same request: nothing is
    /// charged, and the answer is the original one (its object key's
    /// unique part, and the limits as they were then).
    Replayed {
        /// The unique part of the original object key.
        unique: [u8; 16],
    },
    /// The key holds a grant for another request: refused, nothing charged.
    Mismatch,
}

/// A request's idempotency key, and what to record under it if admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRequest {
    /// The key (1 to [`Grant::MAX_KEY_LEN`](crate::Grant::MAX_KEY_LEN)
    /// bytes; the caller checks its form).
    pub key: String,
    /// A hash of the request: a retry must match it.
    pub fingerprint: [u8; 16],
    /// The unique part of the object key this request would get.
    pub unique: [u8; 16],
    /// How long the record lasts: the URL's expiry.
    pub expires_at: crate::clock::Timestamp,
    /// Whose state keeps the record: the user's, or in anonymous mode the
    /// client address's.
    pub holder: Subject,
}

/// What one request asks of the limiter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Charge {
    /// The upload's size in bytes.
    pub size: u64,
    /// The quota tier (a name given to
    /// [`Limiter::with_tiers`](crate::Limiter::with_tiers)); `None`, or an
    /// unknown name, is the default policy.
    pub tier: Option<String>,
    /// The idempotency key, if any.
    pub grant: Option<GrantRequest>,
    /// In upload mode (see
    /// [`Limiter::with_settlement`](crate::Limiter::with_settlement)), what
    /// the URL binds, recorded as a pending reservation on the user's key
    /// if admitted. Ignored in grant mode.
    pub reservation: Option<crate::ReservationRequest>,
}

impl Decision {
    /// When the request could next succeed: the latest retry time of the
    /// limits that denied it, or the contention or backlog retry time.
    pub fn retry_after(&self) -> Option<Duration> {
        self.limits
            .iter()
            .filter_map(|l| l.retry_after)
            .chain(self.contention.map(|c| c.retry_after))
            .chain(self.backlog.map(|b| b.retry_after))
            .max()
    }

    /// The limits that denied the request.
    pub fn violated(&self) -> impl Iterator<Item = &LimitStatus> {
        self.limits.iter().filter(|l| l.retry_after.is_some())
    }

    /// Whether the request was denied for contention rather than by a
    /// limit.
    pub fn is_contention(&self) -> bool {
        self.contention.is_some()
    }
}

/// One store failure, answered to every request of a batch. Each copy keeps
/// the failure's kind (so fail-open rules see the same error whichever
/// request they handle) and its message and sources.
pub(super) fn fan_out(err: StoreError, n: usize) -> Vec<StoreError> {
    if n <= 1 {
        return vec![err];
    }
    let shared = |source: Box<dyn StdError + Send + Sync>| Shared(Arc::from(source));
    let copies: Vec<StoreError> = match err {
        StoreError::Unavailable(s) => {
            let s = shared(s);
            (0..n)
                .map(|_| StoreError::Unavailable(Box::new(s.clone())))
                .collect()
        }
        StoreError::Throttled(s) => {
            let s = shared(s);
            (0..n)
                .map(|_| StoreError::Throttled(Box::new(s.clone())))
                .collect()
        }
        StoreError::Corrupt { key, source } => {
            let s = shared(source);
            (0..n)
                .map(|_| StoreError::Corrupt {
                    key: key.clone(),
                    source: Box::new(s.clone()),
                })
                .collect()
        }
        StoreError::Backend(s) => {
            let s = shared(s);
            (0..n)
                .map(|_| StoreError::Backend(Box::new(s.clone())))
                .collect()
        }
        StoreError::BadCursor => (0..n).map(|_| StoreError::BadCursor).collect(),
    };
    copies
}

/// A store error's source, shared by the copies [`fan_out`] makes.
#[derive(Clone)]
struct Shared(Arc<dyn StdError + Send + Sync>);

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl StdError for Shared {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fanned_out_store_error_keeps_its_kind_and_message() {
        let err = StoreError::Unavailable("connection refused".into());
        let copies = fan_out(err, 3);
        assert_eq!(copies.len(), 3);
        for c in &copies {
            assert!(matches!(c, StoreError::Unavailable(_)), "{c:?}");
            assert!(c.is_transient());
            let source = StdError::source(c).map(ToString::to_string);
            assert_eq!(source.as_deref(), Some("connection refused"));
        }
        let copies = fan_out(
            StoreError::Corrupt {
                key: "user#a".into(),
                source: "short".into(),
            },
            2,
        );
        assert!(
            copies
                .iter()
                .all(|c| matches!(c, StoreError::Corrupt { key, .. } if key == "user#a"))
        );
    }

    #[test]
    fn a_contention_denial_says_when_to_retry_and_names_no_limit() {
        let d = Decision {
            allowed: false,
            limits: vec![],
            attempts: 8,
            contention: Some(Contention {
                retry_after: Contention::RETRY_AFTER,
            }),
            grant: None,
            backlog: None,
        };
        assert!(d.is_contention());
        assert_eq!(d.retry_after(), Some(Duration::from_secs(1)));
        assert_eq!(d.violated().count(), 0);
    }
}
