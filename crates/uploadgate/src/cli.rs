//! The command line: the commands, and every setting as a global flag
//! (`uploadgate_app::Settings`, also read from its `UPLOADGATE_*` variable
//! and from the `--config` file; see the README's configuration table).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use uploadgate_app::layers;
use uploadgate_app::settings::SettingError;
use uploadgate_app::{Config, Settings};

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
