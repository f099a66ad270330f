//! The command line: the commands, and every setting as a global flag
//! (`uploadgate_app::Settings`, also read from its `UPLOADGATE_*` variable
//! and from the `--config` file; see the README's configuration table).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use uploadgate_app::layers;
use uploadgate_app::settings::SettingError;
use uploadgate_app::{Config, Settings};
use uploadgate_core::usage::UsageQuery;
use uploadgate_core::{Timestamp, UserId};

use crate::export;

/// A metered gate for direct-to-S3 uploads.
///
/// Browsers ask uploadgate for an upload URL; it charges the caller's quotas
/// atomically and answers with a short-lived, single-use S3 presigned PUT URL,
/// or with 429 and Retry-After when a limit is reached.
#[derive(Debug, Parser)]
#[command(name = "uploadgate", version, about, long_about)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// Every setting.
    #[command(flatten)]
    pub settings: Settings,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// TOML file of settings (names without the UPLOADGATE_ prefix, lower
    /// case). The environment overrides it; flags override both.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gate: the API, and (target `local`) an S3-compatible bucket
    /// on loopback that the URLs point at.
    Serve,
    /// Inspect or reset a user's quota in the configured store.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage the DynamoDB table of the `dynamodb` store.
    #[command(subcommand)]
    Table(TableCommand),
    /// Settle uploads that landed in S3 (UPLOADGATE_CHARGE=upload): long-poll
    /// the SQS queue of the bucket's s3:ObjectCreated:* events
    /// (UPLOADGATE_SETTLE_QUEUE_URL, or --queue-url), settle each object
    /// against its reservation in the gate's dynamodb store, record it in the
    /// usage ledger, and hand it off (UPLOADGATE_ACCEPTED_QUEUE_URL); tag what
    /// does not match. Runs until interrupted; as many as you like.
    Settle,
    /// Read the usage ledger (what upload mode settled).
    #[command(subcommand)]
    Usage(UsageCommand),
}

/// `usage` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Write the settled uploads to stdout, one per line, in the order they
    /// landed: CSV (with a header row) or JSON Lines, with the fields of
    /// `GET /v1/usage` plus `user`. Reads the ledger of the configured
    /// store, as `serve` opens it (stop `serve` first on the file store:
    /// its database is locked while it runs).
    Export(ExportArgs),
}

/// What `usage export` writes.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only uploads that landed at or after T: an RFC 3339 time
    /// (2026-12-01T08:00:00Z) or a date (2026-12-01, its 00:00 UTC).
    #[arg(long, value_name = "T", value_parser = export::parse_time)]
    pub since: Option<Timestamp>,
    /// Only uploads that landed before T (same forms as --since).
    #[arg(long, value_name = "T", value_parser = export::parse_time)]
    pub until: Option<Timestamp>,
    /// Only this user's uploads.
    #[arg(long, value_name = "USER", value_parser = export::parse_user)]
    pub user: Option<UserId>,
    /// Output format (required).
    #[arg(long, value_enum)]
    pub format: Option<export::Format>,
}

impl ExportArgs {
    /// The ledger query and the format, checked together: `--format` is
    /// required, and `--until` must be after `--since`.
    pub fn checked(self) -> Result<(UsageQuery, export::Format), SettingError> {
        let format = self.format.ok_or_else(|| {
            SettingError::new(
                "--format",
                "`usage export` needs one: --format csv or --format jsonl",
            )
        })?;
        if let (Some(since), Some(until)) = (self.since, self.until)
            && until <= since
        {
            return Err(SettingError::new(
                "--until",
                format!(
                    "{} is not after --since {} (--since is inclusive, --until exclusive)",
                    export::rfc3339(until),
                    export::rfc3339(since)
                ),
            ));
        }
        Ok((
            UsageQuery {
                since: self.since,
                until: self.until,
                user: self.user,
            },
            format,
        ))
    }
}

/// `table` subcommands.
#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Create the table UPLOADGATE_TABLE (on-demand, partition key `pk`, TTL
    /// on `expireAt`) in the DynamoDB the standard AWS settings point at
    /// (AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB, the credentials chain). For
    /// local use; in AWS, Terraform owns the table. Does nothing if it
    /// exists, except turning TTL on.
    Create,
}

/// `quota` subcommands.
#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Show what a user has left of each user limit.
    Show {
        /// The user id.
        user: String,
    },
    /// Forget all of a user's usage, so every user limit is full again.
    Reset {
        /// The user id.
        user: String,
    },
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective values. Exits
    /// non-zero with one line naming the bad setting.
    Check,
}

/// A parsed command line: the command, the checked configuration, and
/// every setting's effective value with its source (for `config check`).
pub struct Invocation {
    /// The command.
    pub command: Command,
    /// The configuration.
    pub config: Config,
    /// (name, value, source) per setting.
    pub effective: Vec<(String, String, &'static str)>,
}

/// Parses `args` over the environment and the `--config` file. A bad
/// setting is one line naming it; usage errors and `--help` are clap's own
/// (printed, then the process exits).
pub fn parse(args: Vec<OsString>) -> Result<Invocation, SettingError> {
    let file = match layers::config_flag(args.get(1..).unwrap_or_default()) {
        Some(path) => layers::read_file(&path)?,
        None => Vec::new(),
    };
    let mut cmd = layers::with_defaults(Cli::command(), &file);
    let matches = match cmd.try_get_matches_from_mut(args) {
        Ok(m) => m,
        Err(e) => match layers::one_line(&cmd, &e) {
            Some(bad) => return Err(bad),
            None => e.exit(),
        },
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok(Invocation {
        command: cli.command,
        config: cli.settings.try_into()?,
        effective: layers::effective(&matches, &file),
    })
}
