//! The command line. Flags map onto the `UPLOADGATE_*` settings; see the
//! README's configuration table.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A metered gate for direct-to-S3 uploads.
///
/// Browsers ask uploadgate for an upload URL; it charges the caller's quotas
/// atomically and answers with a short-lived, single-use S3 presigned PUT URL,
/// or with 429 and Retry-After when a limit is reached.
#[derive(Debug, Parser)]
#[command(name = "uploadgate", version, about, long_about)]
pub struct Cli {
    /// Configuration shared by every command.
    #[command(flatten)]
    pub global: Global,
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
    /// Directory of the file store and the local bucket [UPLOADGATE_DATA_DIR;
    /// default ./data].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where quota state lives [UPLOADGATE_STORE; default file].
    #[arg(long, global = true, value_enum)]
    pub store: Option<StoreArg>,
}

/// State stores selectable by flag.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StoreArg {
    /// Embedded and durable, in the data directory.
    File,
    /// In memory; lost on exit.
    Memory,
    /// The DynamoDB table UPLOADGATE_TABLE, through the standard AWS
    /// configuration; shared by any number of servers.
    Dynamodb,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gate: the API, and (target `local`) an S3-compatible bucket
    /// on loopback that the URLs point at.
    Serve(ServeArgs),
    /// Inspect or reset a user's quota in the configured store.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage the DynamoDB table of the `dynamodb` store.
    #[command(subcommand)]
    Table(TableCommand),
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

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the API [UPLOADGATE_LISTEN; default 127.0.0.1:8080]. Port 0
    /// picks a free port; the chosen address is printed.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Address of the local bucket [UPLOADGATE_S3_LISTEN; default
    /// 127.0.0.1:9000].
    #[arg(long, value_name = "ADDR")]
    pub s3_listen: Option<SocketAddr>,
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
