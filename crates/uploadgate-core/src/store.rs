//! The storage port: compare-and-swap on versioned per-key state.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::algorithm::{FixedState, GcraState, SlidingState};
use crate::clock::Timestamp;
use crate::domain::StateKey;
use crate::reservation::Reservation;

/// An opaque version of a key's state. A store hands out a fresh version on
/// every successful write and never reuses one for the same key, even after
/// a delete, so a stale version can never match again (no ABA).
pub type Version = u64;

/// All limit states of one subject, keyed by limit name, the grants made
/// under idempotency keys, and (on a user's key, in upload mode) the
/// reservations not yet forgotten. Stores keep it in the compact
/// [`codec`](crate::codec).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyState {
    /// Limit name -> that limit's state.
    pub limits: BTreeMap<String, LimitState>,
    /// Idempotency key -> the grant made under it, until it expires.
    pub grants: BTreeMap<String, Grant>,
    /// The unique part of an object key -> its reservation.
    pub reservations: BTreeMap<[u8; 16], Reservation>,
}

/// An upload granted under an idempotency key: a retry with the same key
/// and the same request gets the same object key and limits, and is not
/// charged again. Kept in the state of the key it was charged to, so the
/// charge and the record are one compare-and-swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The unique part of the object key (a UUID's bytes).
    pub unique: [u8; 16],
    /// A hash of the request that made it: a retry must match it.
    pub fingerprint: [u8; 16],
    /// When it stops mattering: the URL's expiry.
    pub expires_at: Timestamp,
    /// What each limit of the policy reported when it was granted:
    /// (remaining, the time capacity next frees up, ms since the epoch).
    pub limits: Vec<(u64, u64)>,
}

impl Grant {
    /// Most grants one key keeps (the newest); older ones are forgotten
    /// early, so state stays bounded whatever the traffic.
    pub const MAX_PER_KEY: usize = 8;
    /// Longest idempotency key, in bytes.
    pub const MAX_KEY_LEN: usize = 64;
}

/// The state of one limit, as its algorithm keeps it. A state of another
/// algorithm than the limit's (after a policy change) is read as empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitState {
    /// A sliding window's admitted requests.
    Sliding(SlidingState),
    /// A GCRA limit's theoretical arrival time.
    Gcra(GcraState),
    /// A fixed window's usage.
    Fixed(FixedState),
}

/// A key's state with the version it was read at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The version to condition the next write on.
    pub version: Version,
    /// The state.
    pub state: KeyState,
}

/// One conditional write of a compare-and-swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The key.
    pub key: StateKey,
    /// The version the new state was computed from; `None` means the key
    /// must not exist.
    pub expected: Option<Version>,
    /// The new state.
    pub state: KeyState,
    /// When the state stops mattering; stores may delete it after this.
    pub expire_at: Timestamp,
}

/// The result of a compare-and-swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CasOutcome {
    /// Every write was applied, atomically. The new versions, in order.
    Committed(Vec<Version>),
    /// At least one expectation failed and nothing was written. Carries the
    /// current state of the keys whose expectation failed (at least one), so
    /// the caller can recompute without another read.
    Conflict(Vec<(StateKey, Option<Versioned>)>),
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or timed out.
    #[error("state store unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// The backend is throttling us, even after its own retries.
    #[error("state store throttled")]
    Throttled(#[source] Box<dyn StdError + Send + Sync>),
    /// Stored state could not be decoded. The operation that reports it
    /// wrote nothing (a store cannot condition a write on state it cannot
    /// read), so the limiter still decides requests on other keys.
    #[error("stored state for `{key}` is corrupt")]
    Corrupt {
        /// The key.
        key: String,
        /// Why it failed to decode.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// Any other backend failure.
    #[error("state store failed")]
    Backend(#[source] Box<dyn StdError + Send + Sync>),
    /// A page of the usage ledger was asked for after a cursor that no
    /// ledger made (the caller's mistake: nothing was read).
    #[error("not a usage ledger cursor")]
    BadCursor,
}

impl StoreError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Throttled(_))
    }
}

/// The one atomic operation every backend provides.
///
/// Algorithms never read-then-write: the [`Limiter`](crate::Limiter) reads
/// versioned state, computes the new state with a pure function, and writes
/// it back conditioned on the version it read. A conflict hands back the
/// current state and the limiter recomputes.
pub trait Store: Send + Sync + 'static {
    /// Reads the current state of each key (authoritative).
    fn load(
        &self,
        keys: &[StateKey],
    ) -> impl Future<Output = Result<Vec<Option<Versioned>>, StoreError>> + Send;

    /// The store's best knowledge of each key, which may be stale or absent.
    /// A wrong guess costs a conflict, never a wrong decision: writes are
    /// conditional. Remote stores answer from a local cache here.
    fn load_cached(
        &self,
        keys: &[StateKey],
    ) -> impl Future<Output = Result<Vec<Option<Versioned>>, StoreError>> + Send {
        self.load(keys)
    }

    /// Called once per key before the limiter denies a request on state
    /// that came from [`load_cached`](Store::load_cached); `keys` are those
    /// whose limits denied it (a stale view of the others cannot make a
    /// denial wrong). Returns `None` if that view is recent enough to deny
    /// on, or the authoritative state of `keys` to decide again.
    ///
    /// Usage only grows between resets (other writers add consumption, time
    /// only frees it), so a stale view that denies is still right to deny;
    /// only a `delete` (quota reset) elsewhere can make it wrong. A caching
    /// store bounds that staleness here. The default, for stores whose
    /// `load_cached` is authoritative, is `None`.
    fn refresh_for_denial(
        &self,
        keys: &[StateKey],
    ) -> impl Future<Output = Result<Option<Vec<Option<Versioned>>>, StoreError>> + Send {
        let _ = keys;
        std::future::ready(Ok(None))
    }

    /// Applies all writes if and only if every key is still at its expected
    /// version.
    fn compare_and_swap(
        &self,
        writes: Vec<Write>,
    ) -> impl Future<Output = Result<CasOutcome, StoreError>> + Send;

    /// Deletes state whose `expire_at` is before `now`. Returns how many keys
    /// were removed. Stores with their own expiry (DynamoDB TTL) may do
    /// nothing.
    fn purge_expired(&self, now: Timestamp)
    -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Forgetting a subject's usage (`uploadgate quota reset`): an operator's
/// action, kept out of [`Store`] so that what only decides (the Lambda
/// function) is built without it and its role need not be allowed to
/// delete.
pub trait Reset: Store {
    /// Removes a key's state unconditionally. Returns whether it existed.
    fn delete(&self, key: &StateKey) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl<S: Reset> Reset for std::sync::Arc<S> {
    fn delete(&self, key: &StateKey) -> impl Future<Output = Result<bool, StoreError>> + Send {
        S::delete(self, key)
    }
}

/// A shared store is a store: tests and tools keep a handle to the store a
/// limiter uses.
impl<S: Store> Store for std::sync::Arc<S> {
    fn load(
        &self,
        keys: &[StateKey],
    ) -> impl Future<Output = Result<Vec<Option<Versioned>>, StoreError>> + Send {
        S::load(self, keys)
    }

    fn load_cached(
        &self,
        keys: &[StateKey],
    ) -> impl Future<Output = Result<Vec<Option<Versioned>>, StoreError>> + Send {
        S::load_cached(self, keys)
    }

    fn refresh_for_denial(
        &self,
        keys: &[StateKey],
    ) -> impl Future<Output = Result<Option<Vec<Option<Versioned>>>, StoreError>> + Send {
        S::refresh_for_denial(self, keys)
    }

    fn compare_and_swap(
        &self,
        writes: Vec<Write>,
    ) -> impl Future<Output = Result<CasOutcome, StoreError>> + Send {
        S::compare_and_swap(self, writes)
    }

    fn purge_expired(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        S::purge_expired(self, now)
    }
}

/// A process-local store. Correct under any concurrency within the process;
/// state is lost on exit.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<StateKey, Entry>>,
    next_version: AtomicU64,
}

#[derive(Debug, Clone)]
struct Entry {
    version: Version,
    state: KeyState,
    expire_at: Timestamp,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys held (for tests of cleanup).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StateKey, Entry>> {
        // A panic while holding the lock cannot leave an entry half-written
        // (entries are replaced whole), so a poisoned map is still valid.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn current(map: &HashMap<StateKey, Entry>, key: &StateKey) -> Option<Versioned> {
        map.get(key).map(|e| Versioned {
            version: e.version,
            state: e.state.clone(),
        })
    }
}

impl Store for MemoryStore {
    async fn load(&self, keys: &[StateKey]) -> Result<Vec<Option<Versioned>>, StoreError> {
        let map = self.lock();
        Ok(keys.iter().map(|k| Self::current(&map, k)).collect())
    }

    async fn compare_and_swap(&self, writes: Vec<Write>) -> Result<CasOutcome, StoreError> {
        let mut map = self.lock();
        let failed: Vec<(StateKey, Option<Versioned>)> = writes
            .iter()
            .filter(|w| map.get(&w.key).map(|e| e.version) != w.expected)
            .map(|w| (w.key.clone(), Self::current(&map, &w.key)))
            .collect();
        if !failed.is_empty() {
            return Ok(CasOutcome::Conflict(failed));
        }
        let mut versions = Vec::with_capacity(writes.len());
        for w in writes {
            let version = self.next_version.fetch_add(1, Ordering::Relaxed) + 1;
            versions.push(version);
            map.insert(
                w.key,
                Entry {
                    version,
                    state: w.state,
                    expire_at: w.expire_at,
                },
            );
        }
        Ok(CasOutcome::Committed(versions))
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, e| e.expire_at >= now);
        Ok((before - map.len()) as u64)
    }
}

impl Reset for MemoryStore {
    async fn delete(&self, key: &StateKey) -> Result<bool, StoreError> {
        Ok(self.lock().remove(key).is_some())
    }
}
