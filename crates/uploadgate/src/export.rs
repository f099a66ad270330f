//! `uploadgate usage export`: the usage ledger as CSV or JSON Lines, one
//! record per line, in the order the objects landed.
//!
//! It streams: one ledger page at a time is read, written and flushed, so
//! memory stays flat however large the ledger is, and a reader at the other
//! end of a pipe sees records as they come. The columns are the fields of
//! `GET /v1/usage`'s records (`key`, `bytes`, `contentType`, `tier`,
//! `landedAt`, with times written the same way) plus `user`, so a script
//! can treat both alike. Arguments are checked before anything is opened
//! or written: a bad one is one line naming the flag.

use std::io::Write;

use clap::ValueEnum;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};
use uploadgate_core::usage::{Cursor, Ledger, UsageQuery, UsageRecord};
use uploadgate_core::{StoreError, Timestamp, UserId};

/// Records read from the ledger per page (and written per flush).
pub const PAGE: usize = 1000;

/// The columns, in order: the CSV header, and the JSON keys.
pub const COLUMNS: [&str; 6] = ["user", "key", "bytes", "contentType", "tier", "landedAt"];

/// How records are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Comma-separated values (RFC 4180) with a header row; a record
    /// without a tier has an empty `tier`.
    Csv,
    /// JSON Lines: one JSON object per line; no tier is `null`.
    Jsonl,
}

/// An export bound: an RFC 3339 time, or a date (`YYYY-MM-DD`, that day's
/// 00:00 UTC). A time before 1970 is 1970: nothing landed earlier.
pub fn parse_time(raw: &str) -> Result<Timestamp, String> {
    let bad = || {
        format!(
            "`{raw}` is not an RFC 3339 time or a date (e.g. 2026-12-01T08:00:00Z, 2026-12-01T09:00:00+01:00 or 2026-12-01)"
        )
    };
    let at = match OffsetDateTime::parse(raw, &Rfc3339) {
        Ok(t) => t,
        Err(_) => Date::parse(raw, format_description!("[year]-[month]-[day]"))
            .map_err(|_| bad())?
            .midnight()
            .assume_utc(),
    };
    let ms = at.unix_timestamp_nanos().div_euclid(1_000_000);
    Ok(Timestamp(u64::try_from(ms.max(0)).unwrap_or(u64::MAX)))
}

/// A `--user`: a user id as the gate accepts them.
pub fn parse_user(raw: &str) -> Result<UserId, String> {
    UserId::parse(raw).map_err(|e| format!("`{raw}`: {e}"))
}

/// A time as `GET /v1/usage` writes it: RFC 3339, UTC, with milliseconds
/// when there are any.
pub fn rfc3339(at: Timestamp) -> String {
    // Past year 9999 (no ledger holds that): the milliseconds themselves.
    at.to_rfc3339()
        .unwrap_or_else(|| at.as_millis().to_string())
}

/// One line of the export.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a> {
    user: &'a str,
    key: &'a str,
    bytes: u64,
    content_type: &'a str,
    tier: Option<&'a str>,
    landed_at: String,
}

impl<'a> From<&'a UsageRecord> for Row<'a> {
    fn from(r: &'a UsageRecord) -> Self {
        Row {
            user: r.user.as_str(),
            key: &r.key,
            bytes: r.bytes,
            content_type: &r.content_type,
            tier: r.tier.as_deref(),
            landed_at: rfc3339(r.landed_at),
        }
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The ledger could not be read.
    #[error("reading the usage ledger")]
    Ledger(#[source] StoreError),
    /// The output could not be written.
    #[error("writing the export")]
    Write(#[source] std::io::Error),
}

impl From<csv::Error> for ExportError {
    fn from(e: csv::Error) -> Self {
        // Keep an I/O error's kind (a closed pipe is not a failure).
        if !e.is_io_error() {
            return ExportError::Write(std::io::Error::other(e));
        }
        ExportError::Write(match e.into_kind() {
            csv::ErrorKind::Io(io) => io,
            other => std::io::Error::other(format!("{other:?}")),
        })
    }
}

/// Writes every record of `query` to `out` in `format`, page by page (each
/// page flushed before the next is read). Returns how many records were
/// written. A reader that goes away (a closed pipe, as `| head` does) ends
/// the export early, without an error; the count is then of the pages
/// flushed before.
pub async fn export<L: Ledger>(
    ledger: &L,
    query: &UsageQuery,
    format: Format,
    out: impl Write,
) -> Result<u64, ExportError> {
    let mut written = 0;
    match write_all(ledger, query, format, out, &mut written).await {
        Err(ExportError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(written),
        other => other.map(|()| written),
    }
}

async fn write_all<L: Ledger>(
    ledger: &L,
    query: &UsageQuery,
    format: Format,
    out: impl Write,
    written: &mut u64,
) -> Result<(), ExportError> {
    let mut sink = Sink::new(format, out)?;
    let mut after: Option<Cursor> = None;
    loop {
        let page = ledger
            .page(query, after.as_ref(), PAGE)
            .await
            .map_err(ExportError::Ledger)?;
        for r in &page.records {
            sink.write(&Row::from(r))?;
        }
        sink.flush()?;
        *written += page.records.len() as u64;
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

/// Where rows go, in one format.
enum Sink<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Jsonl(std::io::BufWriter<W>),
}

impl<W: Write> Sink<W> {
    /// Opens the output; CSV writes its header at once, so an empty
    /// export is still a valid file with its columns.
    fn new(format: Format, out: W) -> Result<Self, ExportError> {
        Ok(match format {
            Format::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(out);
                w.write_record(COLUMNS)?;
                Sink::Csv(Box::new(w))
            }
            Format::Jsonl => Sink::Jsonl(std::io::BufWriter::new(out)),
        })
    }

    fn write(&mut self, row: &Row<'_>) -> Result<(), ExportError> {
        match self {
            Sink::Csv(w) => w.serialize(row)?,
            Sink::Jsonl(w) => {
                serde_json::to_writer(&mut *w, row).map_err(|e| ExportError::Write(e.into()))?;
                w.write_all(b"\n").map_err(ExportError::Write)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ExportError> {
        match self {
            Sink::Csv(w) => w.flush(),
            Sink::Jsonl(w) => w.flush(),
        }
        .map_err(ExportError::Write)
    }
}

#[cfg(test)]
mod tests {
    use uploadgate_core::usage::MemoryLedger;

    use super::*;

    fn record(user: &str, at: u64, key: &str, tier: Option<&str>) -> UsageRecord {
        UsageRecord {
            user: UserId::parse(user).unwrap(),
            key: key.to_owned(),
            bytes: at % 1000,
            content_type: "application/pdf".into(),
            tier: tier.map(str::to_owned),
            landed_at: Timestamp(at),
        }
    }

    #[test]
    fn times_and_dates_are_read_as_utc_instants() {
        // 2027-01-15T08:00:00Z
        let t = 1_800_000_000_000;
        assert_eq!(parse_time("2027-01-15T08:00:00Z"), Ok(Timestamp(t)));
        assert_eq!(
            parse_time("2027-01-15T09:00:00.25+01:00"),
            Ok(Timestamp(t + 250))
        );
        assert_eq!(
            parse_time("2027-01-15"),
            Ok(Timestamp(t - 8 * 3_600_000)),
            "a date is its midnight, UTC"
        );
        assert_eq!(parse_time("1969-12-31"), Ok(Timestamp(0)));
        for bad in [
            "",
            "yesterday",
            "2027-1-15",
            "2027-01-15T08:00:00",
            "2027-02-30",
            "1800000000000",
        ] {
            let e = parse_time(bad).unwrap_err();
            assert!(
                e.starts_with(&format!("`{bad}` is not an RFC 3339 time or a date")),
                "{e}"
            );
        }
        assert_eq!(rfc3339(Timestamp(t)), "2027-01-15T08:00:00Z");
        assert_eq!(rfc3339(Timestamp(t + 5)), "2027-01-15T08:00:00.005Z");
    }

    #[test]
    fn users_are_checked_as_the_gate_checks_them() {
        assert_eq!(parse_user("alice").unwrap().as_str(), "alice");
        assert!(parse_user("../etc").unwrap_err().starts_with("`../etc`: "));
        assert!(parse_user("").is_err());
    }

    async fn run(ledger: &MemoryLedger, query: &UsageQuery, format: Format) -> String {
        let mut out = Vec::new();
        export(ledger, query, format, &mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn every_page_is_written_in_order_and_fields_are_quoted() {
        let ledger = MemoryLedger::new();
        // More than a page, appended out of order.
        let n = PAGE as u64 + 2;
        for i in (0..n).rev() {
            ledger
                .append(&record("u", 1_000 + i, &format!("k{i:05}"), None))
                .await
                .unwrap();
        }
        let csv = run(&ledger, &UsageQuery::default(), Format::Csv).await;
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len() as u64, n + 1);
        assert_eq!(lines[0], "user,key,bytes,contentType,tier,landedAt");
        assert_eq!(lines[1], "u,k00000,0,application/pdf,,1970-01-01T00:00:01Z");
        assert_eq!(
            lines[n as usize],
            "u,k01001,1,application/pdf,,1970-01-01T00:00:02.001Z"
        );

        // A key with a comma, a quote and a newline stays one CSV field.
        let odd = MemoryLedger::new();
        odd.append(&record("u", 7, "a,\"b\"\nc", Some("pro")))
            .await
            .unwrap();
        assert_eq!(
            run(&odd, &UsageQuery::default(), Format::Csv).await,
            "user,key,bytes,contentType,tier,landedAt\nu,\"a,\"\"b\"\"\nc\",7,application/pdf,pro,1970-01-01T00:00:00.007Z\n"
        );
        assert_eq!(
            run(&odd, &UsageQuery::default(), Format::Jsonl).await,
            "{\"user\":\"u\",\"key\":\"a,\\\"b\\\"\\nc\",\"bytes\":7,\"contentType\":\"application/pdf\",\"tier\":\"pro\",\"landedAt\":\"1970-01-01T00:00:00.007Z\"}\n"
        );
        // Nothing: CSV is still its header; JSONL is empty.
        let empty = MemoryLedger::new();
        assert_eq!(
            run(&empty, &UsageQuery::default(), Format::Csv).await,
            "user,key,bytes,contentType,tier,landedAt\n"
        );
        assert_eq!(run(&empty, &UsageQuery::default(), Format::Jsonl).await, "");
    }

    /// A writer whose reader has gone away after `left` bytes.
    struct ClosedPipe {
        left: usize,
    }

    impl Write for ClosedPipe {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.left);
            self.left -= n;
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_reader_that_goes_away_ends_the_export_quietly() {
        let ledger = MemoryLedger::new();
        for i in 0..3 {
            ledger.append(&record("u", i, "k", None)).await.unwrap();
        }
        let q = UsageQuery::default();
        assert_eq!(
            export(&ledger, &q, Format::Jsonl, ClosedPipe { left: 10 })
                .await
                .unwrap(),
            0
        );
        // Other write errors are errors.
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::StorageFull.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        assert!(matches!(
            export(&ledger, &q, Format::Csv, Full).await,
            Err(ExportError::Write(e)) if e.kind() == std::io::ErrorKind::StorageFull
        ));
        assert_eq!(
            export(&ledger, &q, Format::Csv, Vec::new()).await.unwrap(),
            3
        );
    }
}
