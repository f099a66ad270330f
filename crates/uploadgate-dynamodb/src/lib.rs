//! The DynamoDB store of uploadgate: the production state backend, shared by
//! any number of Lambda containers or `uploadgate serve` processes.
//!
//! # Table
//!
//! One item per subject (all of a subject's limits share it):
//!
//! | attribute  | type | meaning |
//! |------------|------|---------|
//! | `pk`       | S    | partition key: `user#<id>` or `ip#<address>` (IPv6 by /64) |
//! | `ver`      | N    | version: a random u64, new on every write; writes are conditioned on it |
//! | `st`       | B    | the limits' state, in the compact [`codec`](uploadgate_core::codec) |
//! | `expireAt` | N    | TTL, epoch seconds: when the state stops mattering |
//!
//! TTL is housekeeping only. DynamoDB deletes expired items late (typically
//! within two days) and they stay visible until then, so decisions rest on
//! the timestamps inside `st`, never on `expireAt`.
//!
//! # Cost of a decision
//!
//! Every consume is one conditional `PutItem` (one key) or one
//! `TransactWriteItems` (user and ip keys together), conditioned on `ver`
//! (`attribute_not_exists(pk)` for a key this process has not seen). The
//! process keeps the last state it saw per key ([`DynamoStore::load_cached`]
//! answers from it), so the hot path is one round trip. A lost condition
//! returns the current item with the failure (`ALL_OLD`); the limiter
//! recomputes on it, after its own jittered backoff, within its bound on
//! attempts (and coalesces one process's requests on a key into one write):
//!
//! | case | calls | units (item under 1 KB) |
//! |------|-------|-------------------------|
//! | allowed, warm or brand-new key, one subject | 1 `PutItem` | 1 WCU |
//! | allowed, user + ip | 1 `TransactWriteItems` | 4 WCU (2 per item) |
//! | cache stale (another process wrote) | +1 failed write per conflict; the current item comes back with it (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), no read | +1 WCU (or +4) each |
//! | repeat denial, cached view younger than the denial TTL | 0 | 0 |
//! | denial on a cached view older than the denial TTL | 1 consistent `GetItem` per key whose limit denied | 1 RCU each |
//!
//! A write is billed on the larger of the old and new item, per started KB;
//! [`codec::max_encoded_len`](uploadgate_core::codec::max_encoded_len) bounds
//! the state and configuration refuses policies whose state could pass
//! [`MAX_STATE_BYTES`](uploadgate_core::codec::MAX_STATE_BYTES).
//!
//! # Repeat denials and `quota reset`
//!
//! Usage only grows between resets, so a cached view that denies is right to
//! deny, except after a `quota reset` (a `DeleteItem`) by another process.
//! A process therefore denies from memory only on a view it confirmed within
//! the denial TTL ([`DynamoStore::with_denial_ttl`], default
//! [`DEFAULT_DENIAL_TTL`]); older views are re-read (one consistent
//! `GetItem`) before denying. That TTL is the staleness bound of a reset;
//! zero makes resets exact at the cost of one read per denial.
//!
//! # Usage ledger
//!
//! With feature `ledger`, `DynamoLedger` keeps the usage ledger on a
//! table of its own, read per user and, through the index `by_month`, over
//! all users in time order (module `usage`; the table is laid out there,
//! and created by `create_usage_table` with `admin`).
//!
//! # Operations and permissions
//!
//! [`OPERATIONS`] lists every DynamoDB operation this crate performs, with
//! the IAM action that authorises it and the feature that compiles it in.
//! The Lambda function's role is checked against it (it is built without
//! `admin`: no deletes, no table administration), and a test records what
//! the client really sends, on every code path, against the list.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use aws_smithy_types::Blob;
use quick_cache::sync::Cache;
use uploadgate_core::{
    CasOutcome, Clock, StateKey, Store, StoreError, SystemClock, Timestamp, Version, Versioned,
    Write, codec,
};

mod client;
mod errors;
mod operations;
#[cfg(feature = "admin")]
mod table;
#[cfg(feature = "test-util")]
pub mod test_util;
#[cfg(feature = "ledger")]
pub mod usage;

pub use client::{client_config, sdk_client};
use errors::{classify, store_error};
pub use operations::OPERATIONS;
#[cfg(all(feature = "admin", feature = "ledger"))]
pub use table::create_usage_table;
#[cfg(feature = "admin")]
pub use table::{Created, TableError, create_table};
#[cfg(feature = "ledger")]
pub use usage::DynamoLedger;

/// The partition key attribute.
pub const PK: &str = "pk";
/// The version attribute (N).
pub const VERSION: &str = "ver";
/// The encoded state attribute (B).
pub const STATE: &str = "st";
/// The TTL attribute (N, epoch seconds).
pub const EXPIRE_AT: &str = "expireAt";

/// How long a cached view that denies is trusted without asking DynamoDB.
pub const DEFAULT_DENIAL_TTL: Duration = Duration::from_secs(5);
/// Keys remembered per process.
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;
/// Most a transaction is retried when DynamoDB reports a conflicting
/// transaction on one of its items (not a failed condition).
const TRANSACTION_RETRIES: u32 = 4;

/// A write's condition expression and its placeholders.
struct Condition {
    expression: &'static str,
    names: HashMap<String, String>,
    values: Option<HashMap<String, AttributeValue>>,
}

/// What the process last saw of a key, and when.
#[derive(Clone, Debug)]
struct Seen {
    state: Option<Versioned>,
    at: Timestamp,
}

/// The DynamoDB store. Cheap to clone; clones share the client and cache.
#[derive(Clone)]
pub struct DynamoStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    table: String,
    cache: Cache<StateKey, Seen>,
    clock: Arc<dyn Clock>,
    denial_ttl_ms: u64,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.inner.table)
            .field("cached_keys", &self.inner.cache.len())
            .field("denial_ttl_ms", &self.inner.denial_ttl_ms)
            .finish()
    }
}

impl DynamoStore {
    /// A store on `table`, with the default cache and denial TTL.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self::build(
            client,
            table.into(),
            Arc::new(SystemClock),
            DEFAULT_DENIAL_TTL,
        )
    }

    fn build(client: Client, table: String, clock: Arc<dyn Clock>, denial_ttl: Duration) -> Self {
        DynamoStore {
            inner: Arc::new(Inner {
                client,
                table,
                cache: Cache::new(DEFAULT_CACHE_CAPACITY),
                clock,
                denial_ttl_ms: u64::try_from(denial_ttl.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    fn rebuild(self, f: impl FnOnce(&mut (Arc<dyn Clock>, Duration))) -> Self {
        let i = &self.inner;
        let mut knobs = (Arc::clone(&i.clock), Duration::from_millis(i.denial_ttl_ms));
        f(&mut knobs);
        Self::build(i.client.clone(), i.table.clone(), knobs.0, knobs.1)
    }

    /// Sets how long a cached denial is trusted (the staleness bound of a
    /// `quota reset` made by another process). Zero re-reads before every
    /// denial.
    pub fn with_denial_ttl(self, ttl: Duration) -> Self {
        self.rebuild(|k| k.1 = ttl)
    }

    /// Reads the cache's notion of time from `clock` (tests).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        self.rebuild(|k| k.0 = clock)
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    fn remember(&self, key: &StateKey, state: Option<Versioned>) {
        let at = self.inner.clock.now();
        self.inner.cache.insert(key.clone(), Seen { state, at });
    }

    fn key_attr(key: &StateKey) -> AttributeValue {
        AttributeValue::S(key.as_str().to_owned())
    }

    fn item(w: &Write, version: Version) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (PK.to_owned(), Self::key_attr(&w.key)),
            (VERSION.to_owned(), AttributeValue::N(version.to_string())),
            (
                STATE.to_owned(),
                AttributeValue::B(Blob::new(codec::encode(&w.state))),
            ),
            (
                EXPIRE_AT.to_owned(),
                // Round up, so TTL never fires before the state is done.
                AttributeValue::N(w.expire_at.0.div_ceil(1000).to_string()),
            ),
        ])
    }

    /// The condition a write of `expected` carries: the key is absent, or
    /// still at the version the new state was computed from.
    fn condition(expected: Option<Version>) -> Condition {
        match expected {
            None => Condition {
                expression: "attribute_not_exists(#k)",
                names: HashMap::from([("#k".to_owned(), PK.to_owned())]),
                values: None,
            },
            Some(v) => Condition {
                expression: "#k = :v",
                names: HashMap::from([("#k".to_owned(), VERSION.to_owned())]),
                values: Some(HashMap::from([(
                    ":v".to_owned(),
                    AttributeValue::N(v.to_string()),
                )])),
            },
        }
    }

    fn put(&self, w: &Write, version: Version) -> Put {
        let c = Self::condition(w.expected);
        Put::builder()
            .table_name(&self.inner.table)
            .set_item(Some(Self::item(w, version)))
            .condition_expression(c.expression)
            .set_expression_attribute_names(Some(c.names))
            .set_expression_attribute_values(c.values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .unwrap_or_else(|e| unreachable!("table name and item are always set: {e}"))
    }

    /// Decodes an item (as returned by GetItem or ALL_OLD).
    fn decode(
        key: &StateKey,
        item: Option<&HashMap<String, AttributeValue>>,
    ) -> Result<Option<Versioned>, StoreError> {
        let Some(item) = item.filter(|i| !i.is_empty()) else {
            return Ok(None);
        };
        let corrupt = |why: String| StoreError::Corrupt {
            key: key.as_str().to_owned(),
            source: why.into(),
        };
        let version = item
            .get(VERSION)
            .and_then(|v| v.as_n().ok())
            .ok_or_else(|| corrupt(format!("no numeric `{VERSION}` attribute")))?
            .parse::<u64>()
            .map_err(|e| corrupt(format!("`{VERSION}`: {e}")))?;
        let bytes = item
            .get(STATE)
            .and_then(|v| v.as_b().ok())
            .ok_or_else(|| corrupt(format!("no binary `{STATE}` attribute")))?;
        let state = codec::decode(bytes.as_ref()).map_err(|e| StoreError::Corrupt {
            key: key.as_str().to_owned(),
            source: Box::new(e),
        })?;
        Ok(Some(Versioned { version, state }))
    }

    async fn get(&self, key: &StateKey) -> Result<Option<Versioned>, StoreError> {
        let out = self
            .inner
            .client
            .get_item()
            .table_name(&self.inner.table)
            .key(PK, Self::key_attr(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        let state = Self::decode(key, out.item())?;
        self.remember(key, state.clone());
        Ok(state)
    }

    async fn read_all(&self, keys: &[StateKey]) -> Result<Vec<Option<Versioned>>, StoreError> {
        futures::future::try_join_all(keys.iter().map(|k| self.get(k))).await
    }

    async fn swap_one(&self, w: Write) -> Result<CasOutcome, StoreError> {
        let version = new_version(w.expected);
        let c = Self::condition(w.expected);
        let res = self
            .inner
            .client
            .put_item()
            .table_name(&self.inner.table)
            .set_item(Some(Self::item(&w, version)))
            .condition_expression(c.expression)
            .set_expression_attribute_names(Some(c.names))
            .set_expression_attribute_values(c.values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(_) => {
                self.remember(
                    &w.key,
                    Some(Versioned {
                        version,
                        state: w.state,
                    }),
                );
                Ok(CasOutcome::Committed(vec![version]))
            }
            Err(err) => match err.into_service_error() {
                PutItemError::ConditionalCheckFailedException(e) => {
                    let current = Self::decode(&w.key, e.item())?;
                    self.remember(&w.key, current.clone());
                    Ok(CasOutcome::Conflict(vec![(w.key, current)]))
                }
                other => Err(classify(other)),
            },
        }
    }

    async fn swap_many(&self, writes: Vec<Write>) -> Result<CasOutcome, StoreError> {
        let versions: Vec<Version> = writes.iter().map(|w| new_version(w.expected)).collect();
        let items: Vec<TransactWriteItem> = writes
            .iter()
            .zip(&versions)
            .map(|(w, v)| TransactWriteItem::builder().put(self.put(w, *v)).build())
            .collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let res = self
                .inner
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match res {
                Ok(_) => {
                    for (w, v) in writes.into_iter().zip(&versions) {
                        self.remember(
                            &w.key,
                            Some(Versioned {
                                version: *v,
                                state: w.state,
                            }),
                        );
                    }
                    return Ok(CasOutcome::Committed(versions));
                }
                Err(err) => err.into_service_error(),
            };
            let TransactWriteItemsError::TransactionCanceledException(cancel) = err else {
                return Err(classify(err));
            };
            let reasons = cancel.cancellation_reasons();
            let mut failed = Vec::new();
            let mut busy = false;
            for (w, reason) in writes.iter().zip(reasons) {
                match reason.code() {
                    Some("ConditionalCheckFailed") => {
                        let current = Self::decode(&w.key, reason.item())?;
                        self.remember(&w.key, current.clone());
                        failed.push((w.key.clone(), current));
                    }
                    None | Some("None") => {}
                    // TransactionConflict, ThrottlingError,
                    // ProvisionedThroughputExceeded: nothing was decided.
                    Some(_) => busy = true,
                }
            }
            if !failed.is_empty() {
                return Ok(CasOutcome::Conflict(failed));
            }
            if !busy || attempt > TRANSACTION_RETRIES {
                return Err(StoreError::Throttled(Box::new(cancel)));
            }
            // Full jitter, doubling from 8 ms.
            let cap = 8u64 << attempt;
            tokio::time::sleep(Duration::from_millis(rand::random_range(0..=cap))).await;
        }
    }
}

/// A fresh version, never equal to the one it replaces. Random, so a key
/// that is deleted and recreated never gets back a version a stale writer
/// still holds (no ABA, to within 2^-64).
fn new_version(previous: Option<Version>) -> Version {
    loop {
        // DynamoDB numbers are decimal; any u64 round-trips exactly.
        let v: Version = rand::random();
        if Some(v) != previous {
            return v;
        }
    }
}

impl Store for DynamoStore {
    async fn load(&self, keys: &[StateKey]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.read_all(keys).await
    }

    async fn load_cached(&self, keys: &[StateKey]) -> Result<Vec<Option<Versioned>>, StoreError> {
        // A miss is a guess of "absent": right for a brand-new key (one
        // write), and a conflict that returns the item otherwise.
        Ok(keys
            .iter()
            .map(|k| self.inner.cache.get(k).and_then(|s| s.state))
            .collect())
    }

    async fn refresh_for_denial(
        &self,
        keys: &[StateKey],
    ) -> Result<Option<Vec<Option<Versioned>>>, StoreError> {
        let now = self.inner.clock.now();
        let fresh = |k: &StateKey| {
            self.inner
                .cache
                .get(k)
                .is_some_and(|s| now.0.saturating_sub(s.at.0) < self.inner.denial_ttl_ms)
        };
        if keys.iter().all(fresh) {
            return Ok(None);
        }
        self.read_all(keys).await.map(Some)
    }

    async fn compare_and_swap(&self, mut writes: Vec<Write>) -> Result<CasOutcome, StoreError> {
        match writes.len() {
            0 => Ok(CasOutcome::Committed(vec![])),
            1 => {
                let w = writes.pop().unwrap_or_else(|| unreachable!("one write"));
                self.swap_one(w).await
            }
            _ => self.swap_many(writes).await,
        }
    }

    async fn purge_expired(&self, _now: Timestamp) -> Result<u64, StoreError> {
        // DynamoDB's TTL on `expireAt` removes idle items.
        Ok(0)
    }
}

/// Only the CLI's `quota reset` deletes (feature `admin`); the Lambda
/// function is built without it, so its role has no `DeleteItem`.
#[cfg(feature = "admin")]
impl uploadgate_core::Reset for DynamoStore {
    async fn delete(&self, key: &StateKey) -> Result<bool, StoreError> {
        self.inner.cache.remove(key);
        let out = self
            .inner
            .client
            .delete_item()
            .table_name(&self.inner.table)
            .key(PK, Self::key_attr(key))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.attributes().is_some_and(|a| !a.is_empty()))
    }
}
