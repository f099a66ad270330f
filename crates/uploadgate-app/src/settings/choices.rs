//! The settings whose values are one of a few words: each an enum that
//! clap parses (`ValueEnum`), so a wrong word is refused with the list of
//! accepted ones.

use clap::ValueEnum;

/// Where the user id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdentitySource {
    /// A verified bearer JWT.
    Jwt,
    /// The identity header, set by a trusted upstream.
    Header,
    /// `userId` in the JSON body (the original design; unsafe).
    Body,
    /// No user: only `ip` limits.
    Anonymous,
}

/// Cognito's kinds of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenUse {
    /// Access tokens (`client_id`, no `aud`).
    Access,
    /// ID tokens (`aud`).
    Id,
}

/// Where the `ip` subject comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientIp {
    /// The TCP peer.
    Peer,
    /// CloudFront's `CloudFront-Viewer-Address` header.
    Cloudfront,
}

/// Which state store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreChoice {
    /// Embedded and durable, in the data directory.
    File,
    /// In memory; lost on exit.
    Memory,
    /// The DynamoDB table `UPLOADGATE_TABLE`.
    Dynamodb,
}

/// Where uploads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetChoice {
    /// The embedded local bucket of `serve`.
    Local,
    /// S3, through the standard AWS configuration.
    S3,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// Which metrics to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricsFormat {
    /// None.
    Off,
    /// CloudWatch Embedded Metric Format lines on stdout.
    Emf,
}

/// When uploads are paid for (`UPLOADGATE_CHARGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChargeChoice {
    /// When the URL is handed out (the default).
    Grant,
    /// When the object lands: a grant is a reservation, settled when its
    /// object lands, released if nothing landed by the URL's expiry plus
    /// the settle grace.
    Upload,
}
