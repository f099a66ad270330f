//! A file written before format versions (JSON records, no marker; see
//! `tests/data/README.md`) opens with this build, reads back exactly the
//! states it held, and is converted in place: the marker is set, records are
//! in the codec, and versions, expiries and the version counter carry on.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use uploadgate_core::{
    FakeClock, FixedState, GcraState, KeyState, LimitState, Limiter, Policy, SlidingState,
    StateKey, Store, Subjects, Timestamp, UserId, Versioned,
};
use uploadgate_store_file::FileStore;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/format0-json.redb");
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The policy and the time the fixture was written with.
const POLICY: &str = "uploads=user:5/3h;rate=user:7/1m:gcra;day=user:1GiB/1d:fixed;month=user:100GiB/1mo:fixed;burst=ip:10/1m";
const WRITTEN_AT: u64 = 1_795_873_565_235;

fn keys() -> [StateKey; 4] {
    let user = |u| StateKey::user(&UserId::parse(u).unwrap());
    [
        user("alice"),
        user("bob"),
        StateKey::ip("203.0.113.7".parse().unwrap()),
        StateKey::ip("2001:db8:1:2::9".parse().unwrap()),
    ]
}

fn sliding(entries: &[(u64, u64)]) -> LimitState {
    LimitState::Sliding(SlidingState {
        entries: entries.to_vec(),
    })
}

fn user_state(uploads: &[(u64, u64)], tat_ns: u64, used: u64) -> KeyState {
    KeyState {
        grants: Default::default(),
        reservations: Default::default(),
        limits: BTreeMap::from([
            (
                "day".to_owned(),
                LimitState::Fixed(FixedState {
                    start: 1_795_824_000_000,
                    used,
                }),
            ),
            (
                "month".to_owned(),
                LimitState::Fixed(FixedState {
                    start: 1_793_491_200_000,
                    used,
                }),
            ),
            (
                "rate".to_owned(),
                LimitState::Gcra(GcraState { tat_ns, rem: 3 }),
            ),
            ("uploads".to_owned(), sliding(uploads)),
        ]),
    }
}

fn ip_state(at: u64) -> KeyState {
    KeyState {
        grants: Default::default(),
        reservations: Default::default(),
        limits: BTreeMap::from([("burst".to_owned(), sliding(&[(at, 1)]))]),
    }
}

/// What the fixture holds, key by key (the values printed when it was made).
fn expected() -> Vec<Option<Versioned>> {
    let v = |version, state| Some(Versioned { version, state });
    vec![
        v(
            7,
            user_state(
                &[
                    (1_795_873_500_000, 1),
                    (1_795_873_501_234, 1),
                    (1_795_873_565_235, 1),
                ],
                1_795_873_573_806_428_571,
                41_002_500,
            ),
        ),
        v(
            5,
            user_state(
                &[(1_795_873_504_234, 1)],
                1_795_873_512_805_428_571,
                7_777_777,
            ),
        ),
        v(8, ip_state(1_795_873_565_235)),
        v(6, ip_state(1_795_873_504_234)),
    ]
}

/// What the file holds besides the states, read straight from it.
#[derive(Debug, PartialEq)]
struct OnDisk {
    /// The format marker.
    format: Option<u64>,
    /// The first byte after each record's header: `{` for JSON, the codec's
    /// format byte otherwise.
    state_starts: Vec<u8>,
    /// The expiry index.
    expiry: Vec<(u64, String)>,
    /// The version counter.
    next_version: Option<u64>,
}

fn on_disk(dir: &Path) -> OnDisk {
    let db = Database::open(dir.join(FileStore::FILE_NAME)).unwrap();
    let tx = db.begin_read().unwrap();
    let meta = tx.open_table(META).unwrap();
    let format = meta.get("format").unwrap().map(|g| g.value());
    let next_version = meta.get("next_version").unwrap().map(|g| g.value());
    let state_starts = tx
        .open_table(STATE)
        .unwrap()
        .iter()
        .unwrap()
        .map(|r| r.unwrap().1.value()[16])
        .collect();
    let expiry = tx
        .open_table(EXPIRY)
        .unwrap()
        .iter()
        .unwrap()
        .map(|r| {
            let (k, _) = r.unwrap();
            (k.value().0, k.value().1.to_owned())
        })
        .collect();
    OnDisk {
        format,
        state_starts,
        expiry,
        next_version,
    }
}

#[tokio::test]
async fn a_json_file_reads_back_exactly_and_is_converted_in_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(FIXTURE, dir.path().join(FileStore::FILE_NAME)).unwrap();
    let expiry_index = vec![
        (1_795_873_564_234, "ip#2001:db8:1:2::/64".to_owned()),
        (1_795_873_625_235, "ip#203.0.113.7".to_owned()),
        (1_796_169_600_000, "user#alice".to_owned()),
        (1_796_169_600_000, "user#bob".to_owned()),
    ];
    // The copy really is the old format: no marker, JSON records.
    assert_eq!(
        on_disk(dir.path()),
        OnDisk {
            format: None,
            state_starts: vec![b'{'; 4],
            expiry: expiry_index.clone(),
            next_version: Some(9),
        }
    );

    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.load(&keys()).await.unwrap(), expected());
    drop(store);
    // Converted: marked format 1, every record in the codec (format byte
    // 1), and the index and the counter as they were.
    assert_eq!(
        on_disk(dir.path()),
        OnDisk {
            format: Some(1),
            state_starts: vec![1; 4],
            expiry: expiry_index,
            next_version: Some(9),
        }
    );

    // A reopen finds the same states, and the limiter carries on from them.
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.load(&keys()).await.unwrap(), expected());
    let clock = FakeClock::new(Timestamp(WRITTEN_AT));
    let policy: Arc<Policy> = Arc::new(POLICY.parse().unwrap());
    let limiter = Limiter::new(policy, store.clone(), clock);
    let alice = Subjects {
        user: UserId::parse("alice").unwrap(),
        ip: Some("203.0.113.7".parse().unwrap()),
    };
    let left = |d: &uploadgate_core::Decision| -> Vec<u64> {
        d.limits.iter().map(|l| l.remaining).collect()
    };
    let peek = limiter.peek(&alice).await.unwrap();
    // uploads 5 - 3; rate: a burst of 7 of which 1 is still draining;
    // day and month less the 41 002 500 bytes; burst 10 - 1.
    assert_eq!(
        left(&peek),
        [2, 6, (1 << 30) - 41_002_500, (100 << 30) - 41_002_500, 9]
    );
    let d = limiter.consume(&alice, 1).await.unwrap();
    assert!(d.allowed);
    assert_eq!(
        left(&d),
        [1, 5, (1 << 30) - 41_002_501, (100 << 30) - 41_002_501, 8]
    );
    // The version counter carried over: the next writes are 9 and 10.
    let got = store.load(&keys()[..1]).await.unwrap();
    assert_eq!(got[0].as_ref().map(|v| v.version), Some(9));
}
