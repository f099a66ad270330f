//! The DynamoDB store against a real DynamoDB API (moto's server on
//! 127.0.0.1; see `support`): the shared conformance suite, then what is
//! specific to this store: calls per decision, repeat denials from memory,
//! the staleness bound of a reset, failing closed, and the declared list of
//! operations against what the client sends. The usage ledger runs the
//! ledger conformance suite (`ledger`).

// Test helpers panic on purpose: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod calls;
mod hot;
mod ledger;
mod operations;
mod router;
mod support;

uploadgate_core::store_conformance_tests!(
    || async { crate::support::store().await },
    purges_itself = false,
    // Separate stores, each with its own client and cache: processes.
    shared = |n| async move {
        let mut stores = vec![];
        for _ in 0..n {
            stores.push(crate::support::store().await);
        }
        stores
    }
);
