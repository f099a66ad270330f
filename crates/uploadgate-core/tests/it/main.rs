//! Integration tests of the core: the conformance suite on the memory store.

use uploadgate_core::MemoryStore;

uploadgate_core::store_conformance_tests!(|| async { MemoryStore::new() }, purges_itself = true);
