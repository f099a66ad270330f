//! The redb file store: the shared store and ledger conformance suites, and the
//! conversion of files written before format versions (`legacy`).

// Test helpers panic on purpose: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod legacy;

use uploadgate_store_file::FileStore;

uploadgate_core::store_conformance_tests!(
    || async {
        // Each test gets its own directory; leaking it keeps it alive for the
        // test's duration and the OS temp dir reclaims it.
        let dir = tempfile::tempdir().expect("tempdir").keep();
        FileStore::open(&dir).expect("open store")
    },
    purges_itself = true,
    // Clones of one store share its database and writer thread, as the
    // handlers of one process do (a second process cannot open the file).
    shared = |n| async move {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        vec![FileStore::open(&dir).expect("open store"); n]
    }
);

uploadgate_core::ledger_conformance_tests!(|| async {
    // A store of its own per scenario: the ledger starts empty.
    let dir = tempfile::tempdir().expect("tempdir").keep();
    FileStore::open(&dir).expect("open store").ledger()
});
