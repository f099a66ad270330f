//! `uploadgate usage export` on the file store: records written into its
//! ledger come out as exact CSV and JSON Lines, bounded and filtered; bad
//! arguments are one line naming the flag, and nothing is written.

use std::path::Path;
use std::process::{Command, Output};

use uploadgate_core::usage::{Ledger, UsageRecord};
use uploadgate_core::{Timestamp, UserId};
use uploadgate_store_file::FileStore;

use super::BIN;

/// 2027-01-15T08:00:00Z.
const T: u64 = 1_800_000_000_000;
const HOUR: u64 = 3_600_000;

fn record(user: &str, at: u64, name: &str, bytes: u64, tier: Option<&str>) -> UsageRecord {
    UsageRecord {
        user: UserId::parse(user).unwrap(),
        key: format!("uploads/{user}/{name}"),
        bytes,
        content_type: "application/pdf".into(),
        tier: tier.map(str::to_owned),
        landed_at: Timestamp(at),
    }
}

/// A file store in `dir` whose ledger holds four uploads by two users,
/// over two days, appended out of order; then closed.
async fn ledger_with_records(dir: &Path) {
    let store = FileStore::open(dir).unwrap();
    let ledger = store.ledger();
    for r in [
        // 2027-01-16T09:30:00.250Z
        record("bo", T + 25 * HOUR + 30 * 60_000 + 250, "c.pdf", 300, None),
        // 2027-01-15T08:00:00Z
        record("ana", T, "a.pdf", 100, None),
        // 2027-01-16T00:00:00Z, a key CSV has to quote.
        record("ana", T + 16 * HOUR, "b, \"final\".pdf", 200, Some("pro")),
        // 2027-01-16T23:59:59.999Z
        record("ana", T + 40 * HOUR - 1, "d.pdf", 400, Some("pro")),
    ] {
        ledger.append(&r).await.unwrap();
    }
}

fn export(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["usage", "export"])
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("UPLOADGATE_STORE")
        .output()
        .unwrap()
}

/// Runs an export to success; its stdout.
fn export_ok(dir: &Path, args: &[&str]) -> String {
    let out = export(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

const HEADER: &str = "user,key,bytes,contentType,tier,landedAt\n";
const A: &str = "ana,uploads/ana/a.pdf,100,application/pdf,,2027-01-15T08:00:00Z\n";
const B: &str =
    "ana,\"uploads/ana/b, \"\"final\"\".pdf\",200,application/pdf,pro,2027-01-16T00:00:00Z\n";
const C: &str = "bo,uploads/bo/c.pdf,300,application/pdf,,2027-01-16T09:30:00.25Z\n";
const D: &str = "ana,uploads/ana/d.pdf,400,application/pdf,pro,2027-01-16T23:59:59.999Z\n";

#[tokio::test]
async fn the_ledger_exports_as_exact_csv_and_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    ledger_with_records(dir.path()).await;

    // Everything, in the order the objects landed.
    assert_eq!(
        export_ok(dir.path(), &["--format", "csv"]),
        [HEADER, A, B, C, D].concat()
    );
    assert_eq!(
        export_ok(dir.path(), &["--format", "jsonl"]),
        concat!(
            r#"{"user":"ana","key":"uploads/ana/a.pdf","bytes":100,"contentType":"application/pdf","tier":null,"landedAt":"2027-01-15T08:00:00Z"}"#,
            "\n",
            r#"{"user":"ana","key":"uploads/ana/b, \"final\".pdf","bytes":200,"contentType":"application/pdf","tier":"pro","landedAt":"2027-01-16T00:00:00Z"}"#,
            "\n",
            r#"{"user":"bo","key":"uploads/bo/c.pdf","bytes":300,"contentType":"application/pdf","tier":null,"landedAt":"2027-01-16T09:30:00.25Z"}"#,
            "\n",
            r#"{"user":"ana","key":"uploads/ana/d.pdf","bytes":400,"contentType":"application/pdf","tier":"pro","landedAt":"2027-01-16T23:59:59.999Z"}"#,
            "\n",
        )
    );

    // A day: --since a date is its 00:00 UTC (inclusive), --until the
    // next day's (exclusive).
    assert_eq!(
        export_ok(
            dir.path(),
            &[
                "--since",
                "2027-01-16",
                "--until",
                "2027-01-17",
                "--format",
                "csv"
            ]
        ),
        [HEADER, B, C, D].concat()
    );
    // RFC 3339 bounds in another offset: 09:30:00.250Z is 10:30:00.25+01:00.
    assert_eq!(
        export_ok(
            dir.path(),
            &["--until", "2027-01-16T10:30:00.25+01:00", "--format=csv"]
        ),
        [HEADER, A, B].concat()
    );
    assert_eq!(
        export_ok(
            dir.path(),
            &["--since", "2027-01-16T09:30:00.250Z", "--format", "csv"]
        ),
        [HEADER, C, D].concat()
    );
    // One user, within bounds.
    assert_eq!(
        export_ok(dir.path(), &["--user", "ana", "--format", "csv"]),
        [HEADER, A, B, D].concat()
    );
    assert_eq!(
        export_ok(
            dir.path(),
            &[
                "--user",
                "ana",
                "--since",
                "2027-01-16",
                "--format",
                "jsonl"
            ]
        )
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["bytes"].clone())
        .collect::<Vec<_>>(),
        [200, 400]
    );
    // Nobody's, or nothing in range: the header alone, and no lines.
    assert_eq!(
        export_ok(dir.path(), &["--user", "cy", "--format", "csv"]),
        HEADER
    );
    assert_eq!(
        export_ok(dir.path(), &["--since", "2027-01-17", "--format", "jsonl"]),
        ""
    );
    // The count goes to stderr, never into the data.
    let out = export(dir.path(), &["--format", "jsonl"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "uploadgate: exported 4 usage records\n"
    );
}

#[tokio::test]
async fn bad_arguments_are_one_line_naming_the_flag_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    ledger_with_records(dir.path()).await;
    for (args, line) in [
        (
            &["--since", "yesterday", "--format", "csv"][..],
            "uploadgate: invalid --since: `yesterday` is not an RFC 3339 time or a date (e.g. 2026-12-01T08:00:00Z, 2026-12-01T09:00:00+01:00 or 2026-12-01)",
        ),
        (
            &["--until", "2027-01-16T08:00:00", "--format", "csv"][..],
            "uploadgate: invalid --until: `2027-01-16T08:00:00` is not an RFC 3339 time or a date (e.g. 2026-12-01T08:00:00Z, 2026-12-01T09:00:00+01:00 or 2026-12-01)",
        ),
        (
            &["--format", "xml"][..],
            "uploadgate: invalid --format: unknown value `xml` (expected csv or jsonl)",
        ),
        (
            &[][..],
            "uploadgate: invalid --format: `usage export` needs one: --format csv or --format jsonl",
        ),
        (
            &[
                "--since",
                "2027-01-16",
                "--until",
                "2027-01-16",
                "--format",
                "csv",
            ][..],
            "uploadgate: invalid --until: 2027-01-16T00:00:00Z is not after --since 2027-01-16T00:00:00Z (--since is inclusive, --until exclusive)",
        ),
    ] {
        let out = export(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), format!("{line}\n"));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // A user id the gate would refuse.
    let out = export(dir.path(), &["--user", "../ana", "--format", "csv"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("uploadgate: invalid --user: `../ana`: ") && err.lines().count() == 1,
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn it_reads_only_a_ledger_that_exists_and_is_free() {
    // No store in the data directory: an error, and none is created.
    let empty = tempfile::tempdir().unwrap();
    let out = export(empty.path(), &["--format", "csv"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("uploadgate: no file store at "), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);

    // The memory store has nothing to export once its server is gone.
    let out = Command::new(BIN)
        .args(["usage", "export", "--format", "csv", "--store", "memory"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("uploadgate: the memory store keeps"));

    // The dynamodb store names the usage table it would need.
    let out = Command::new(BIN)
        .args(["usage", "export", "--format", "csv"])
        .env("UPLOADGATE_STORE", "dynamodb")
        .env("UPLOADGATE_TABLE", "quota")
        .env_remove("UPLOADGATE_USAGE_TABLE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("uploadgate: invalid UPLOADGATE_USAGE_TABLE: "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // While a server (here: this process) holds the store, it says so.
    let dir = tempfile::tempdir().unwrap();
    ledger_with_records(dir.path()).await;
    let held = FileStore::open(dir.path()).unwrap();
    let out = export(dir.path(), &["--format", "csv"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is in use by another uploadgate process"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    drop(held);
    assert_eq!(
        export_ok(dir.path(), &["--format", "csv"]).lines().count(),
        5
    );
}

/// The dynamodb store's ledger (moto): a user's records are a `Query` of
/// their partition, everyone's a walk over the `by_month` index, month by
/// month; both export in landing order.
#[tokio::test]
async fn the_dynamodb_ledger_exports_the_same_way() {
    let endpoint = uploadgate_dynamodb::test_util::endpoint();
    let table = format!("uploadgate-export-{}", std::process::id());
    let usage_table = format!("{table}-usage");
    let env = [
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("UPLOADGATE_STORE", "dynamodb"),
        ("UPLOADGATE_TABLE", table.as_str()),
        ("UPLOADGATE_USAGE_TABLE", usage_table.as_str()),
    ];
    super::run_ok(&["table", "create"], &env);
    let config = uploadgate_dynamodb::test_util::sdk_config_for(&endpoint).await;
    let ledger = uploadgate_dynamodb::DynamoLedger::new(
        uploadgate_dynamodb::sdk_client(&config),
        usage_table.as_str(),
    );
    for r in [
        record("bo", T + 25 * HOUR + 30 * 60_000 + 250, "c.pdf", 300, None),
        // 2027-02-01T00:00:00Z: the next month's partition of the index.
        record("bo", T + 16 * HOUR + 16 * 24 * HOUR, "e.pdf", 500, None),
        record("ana", T, "a.pdf", 100, None),
        record("ana", T + 16 * HOUR, "b, \"final\".pdf", 200, Some("pro")),
        record("ana", T + 40 * HOUR - 1, "d.pdf", 400, Some("pro")),
    ] {
        ledger.append(&r).await.unwrap();
    }
    const E: &str = "bo,uploads/bo/e.pdf,500,application/pdf,,2027-02-01T00:00:00Z\n";
    let export = |args: &[&str]| {
        let mut all = vec!["usage", "export"];
        all.extend_from_slice(args);
        let out = Command::new(BIN).args(&all).envs(env).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        export(&["--format", "csv"]),
        [HEADER, A, B, C, D, E].concat()
    );
    assert_eq!(
        export(&["--user", "ana", "--format", "csv"]),
        [HEADER, A, B, D].concat()
    );
    assert_eq!(
        export(&[
            "--since",
            "2027-01-16",
            "--until",
            "2027-02-01",
            "--format",
            "csv"
        ]),
        [HEADER, B, C, D].concat()
    );
    assert_eq!(
        export(&["--user", "bo", "--since", "2027-01-17", "--format", "csv"]),
        [HEADER, E].concat()
    );
}
