//! Integration tests of the core: the conformance suites on the memory store
//! and the memory ledger.

// Test helpers panic on purpose: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use uploadgate_core::MemoryStore;

uploadgate_core::store_conformance_tests!(
    || async { MemoryStore::new() },
    purges_itself = true,
    // Four limiters over one store, as four processes would share one.
    shared = |n| async move {
        let store = Arc::new(MemoryStore::new());
        (0..n).map(|_| Arc::clone(&store)).collect::<Vec<_>>()
    }
);

uploadgate_core::ledger_conformance_tests!(|| async {
    uploadgate_core::usage::MemoryLedger::new()
});
