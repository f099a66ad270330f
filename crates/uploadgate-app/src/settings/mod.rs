//! Every setting, defined once: [`Settings`], a `clap` argument group.
//!
//! Each field is one setting with one name (`UPLOADGATE_*`), its flag, its
//! default and its help, and a type that parses it (see [`crate::values`]).
//! clap layers the sources: flags beat the environment, which beats the
//! defaults. The optional TOML file (`--config`, the same names without the
//! prefix, lower case) sits between the defaults and the environment: its
//! values become the defaults ([`crate::layers::with_defaults`]). The README's settings
//! table is checked against this definition.
//!
//! Where there is no real environment to read (tests, or a caller with its
//! own lookup such as the Lambda function's), [`Settings::from_lookup`]
//! hands the same values to clap as flags instead, so the parsing and the
//! messages are the same.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use http::HeaderName;
use uploadgate_http::{CorsOrigins, OriginSecret};

mod choices;
mod docs;
mod error;

pub use choices::{
    ChargeChoice, ClientIp, IdentitySource, LogFormat, MetricsFormat, StoreChoice, TargetChoice,
    TokenUse,
};
pub use docs::SettingDoc;
pub(crate) use docs::{env_name, settings_command};
pub use error::SettingError;

use crate::values::{
    self, BucketName, ClaimName, ContentTypes, HttpUrl, KeyPrefix, Limits, Names, ObjectBytes,
    PublicKeyFile, TableName, Tiers,
};

/// Every setting uploadgate reads, parsed into its type.
///
/// Settings under [`SERVE_ONLY`] concern the local server alone (sockets,
/// disk); the Lambda function reads the rest.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = ALL)]
pub struct Settings {
    /// Limits, `;`-separated: `name=subject:amount/window[:algorithm]`. subject `user` or `ip`; amount a count or bytes (`50MiB`); window `90s`, `15m`, `3h`, `24h`, `30d`, `1w`, `1mo` (fixed only); algorithm `sliding` (default), `gcra` or `fixed`.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_LIMITS",
        default_value = "uploads=user:5/3h",
        value_name = "LIMITS"
    )]
    pub limits: Limits,

    /// Largest upload accepted, in bytes (units like `50MiB` allowed).
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_MAX_OBJECT_BYTES",
        default_value = "52428800",
        value_name = "BYTES"
    )]
    pub max_object_bytes: ObjectBytes,

    /// Comma-separated content types an upload may declare.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_CONTENT_TYPES",
        default_value = "application/pdf,image/png,image/jpeg,image/tiff",
        value_name = "TYPES"
    )]
    pub content_types: ContentTypes,

    /// Lifetime of a presigned URL, 1s to 12h.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_URL_TTL",
        default_value = "5m",
        value_name = "DURATION",
        value_parser = values::url_ttl,
    )]
    pub url_ttl: Duration,

    /// Bucket the URLs are signed for.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_BUCKET",
        default_value = "uploads",
        value_name = "NAME"
    )]
    pub bucket: BucketName,

    /// Prefix of every object key: `<prefix><user>/<uuid>/<filename>`. Empty, or ending in `/`.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_KEY_PREFIX",
        default_value = "uploads/",
        value_name = "PREFIX"
    )]
    pub key_prefix: KeyPrefix,

    /// Where the user id comes from: `jwt` (a verified bearer token; the Lambda function's default), `header` (the identity header, set by a trusted upstream), `body` (`userId` in the JSON body, the original design's model: unsafe, any caller can claim any id) or `anonymous` (no user: only `ip` limits).
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_IDENTITY",
        default_value = "header",
        value_name = "MODE"
    )]
    pub identity: IdentitySource,

    /// The identity header (not `authorization`: CloudFront OAC overwrites it).
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_IDENTITY_HEADER",
        default_value = "x-user-id",
        value_name = "HEADER",
        value_parser = values::identity_header,
    )]
    pub identity_header: HeaderName,

    /// `jwt` identity: the only accepted `iss` (required with it), e.g. `https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123`.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_JWT_ISSUER",
        value_name = "URL"
    )]
    pub jwt_issuer: Option<HttpUrl>,

    /// `jwt` identity: comma-separated accepted audiences (required with it): a token's `aud`, or Cognito's `client_id`, must name one.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_JWT_AUDIENCE",
        value_name = "AUDIENCES"
    )]
    pub jwt_audience: Option<Names>,

    /// `jwt` identity: where the issuer's public keys are (JWKS). Default: `<issuer>/.well-known/jwks.json`, Cognito's layout.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_JWKS_URL",
        value_name = "URL"
    )]
    pub jwks_url: Option<HttpUrl>,

    /// `jwt` identity: a PEM public key file (RSA, EC P-256 or Ed25519) to verify with instead of a JWKS.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_JWT_PUBLIC_KEY",
        value_name = "FILE"
    )]
    pub jwt_public_key: Option<PublicKeyFile>,

    /// `jwt` identity: require Cognito's `token_use` claim to be `access` or `id`. Empty: not checked.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_JWT_TOKEN_USE",
        value_name = "USE"
    )]
    pub jwt_token_use: Option<TokenUse>,

    /// `jwt` identity: clock skew allowed on a token's `exp` and `nbf`, 0s to 60s.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_JWT_LEEWAY",
        default_value = "30s",
        value_name = "DURATION",
        value_parser = values::jwt_leeway,
    )]
    pub jwt_leeway: Duration,

    /// `jwt` identity: the claim that holds the user id.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_USER_CLAIM",
        default_value = "sub",
        value_name = "CLAIM"
    )]
    pub user_claim: ClaimName,

    /// `jwt` identity: the header that carries the token: `authorization` (`Bearer <token>`), or another one (a bare token or `Bearer <token>`) behind CloudFront origin access control, which overwrites `authorization`.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_TOKEN_HEADER",
        default_value = "authorization",
        value_name = "HEADER",
        value_parser = values::token_header,
    )]
    pub token_header: HeaderName,

    /// Named policies for quota tiers, `|`-separated, each `name=<limits>` in the `UPLOADGATE_LIMITS` grammar, e.g. `pro=uploads=user:100/3h;volume=user:5GiB/30d`. Empty: none.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_TIERS",
        default_value = "",
        value_name = "TIERS"
    )]
    pub tiers: Tiers,

    /// `jwt` identity: the claim whose value names the caller's tier (a string, or a list whose first tier name wins), e.g. `custom:plan` or `cognito:groups`. No claim or an unknown value: `UPLOADGATE_LIMITS`.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_TIER_CLAIM",
        value_name = "CLAIM"
    )]
    pub tier_claim: Option<ClaimName>,

    /// Refuse uploads that do not declare their SHA-256 (`checksumSha256`), so every URL binds the exact bytes: S3 refuses any other content, not just another length.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_REQUIRE_CHECKSUM",
        default_value = "false",
        value_name = "BOOL",
        value_parser = clap::builder::BoolishValueParser::new(),
        action = clap::ArgAction::Set,
    )]
    pub require_checksum: bool,

    /// Shadow mode: decisions are computed, logged and metered (`ShadowDenied`), never enforced; an over-limit request gets its URL with the would-be `RateLimit` fields.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_SHADOW",
        default_value = "false",
        value_name = "BOOL",
        value_parser = clap::builder::BoolishValueParser::new(),
        action = clap::ArgAction::Set,
    )]
    pub shadow: bool,

    /// Comma-separated origins allowed to call the API from a browser, or `*`. Empty: no CORS.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_CORS_ORIGINS",
        default_value = "",
        value_name = "ORIGINS"
    )]
    pub cors_origins: CorsOrigins,

    /// Where the `ip` subject comes from: `peer` (the TCP peer) or `cloudfront` (`CloudFront-Viewer-Address`).
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_CLIENT_IP",
        default_value = "peer",
        value_name = "SOURCE"
    )]
    pub client_ip: ClientIp,

    /// A secret the origin in front of the gate adds to every request as the `x-origin-verify` header; requests without it are refused (403). Required by `serve` with `UPLOADGATE_CLIENT_IP=cloudfront`, so only CloudFront can vouch for a viewer's address.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_ORIGIN_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub origin_secret: Option<OriginSecret>,

    /// State store: `file` (embedded, durable, in the data dir), `memory` (lost on exit) or `dynamodb` (the table `UPLOADGATE_TABLE`, through the standard AWS configuration; any number of servers can share it).
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_STORE",
        default_value = "file",
        value_name = "STORE"
    )]
    pub store: StoreChoice,

    /// DynamoDB table of the `dynamodb` store (required with it). `uploadgate table create` makes one for local use.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_TABLE",
        value_name = "TABLE"
    )]
    pub table: Option<TableName>,

    /// `dynamodb` store: how long a process denies from its cache without asking DynamoDB, 0s to 5m. It bounds how late a `quota reset` made elsewhere is seen; `0s` makes resets exact at one read per denial.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_DENIAL_TTL",
        default_value = "5s",
        value_name = "DURATION",
        value_parser = values::denial_ttl,
    )]
    pub denial_ttl: Duration,

    /// If the store fails: `false` answers 503; `true` admits the upload anyway.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_FAIL_OPEN",
        default_value = "false",
        value_name = "BOOL",
        value_parser = clap::builder::BoolishValueParser::new(),
        action = clap::ArgAction::Set,
    )]
    pub fail_open: bool,

    /// Where uploads go: `local` (the embedded bucket of `serve`) or `s3` (S3 through the standard AWS configuration: `AWS_REGION`, credentials chain, `AWS_ENDPOINT_URL_S3`).
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_TARGET",
        default_value = "local",
        value_name = "TARGET"
    )]
    pub target: TargetChoice,

    /// When uploads are paid for: `grant` (when the URL is handed out) or `upload` (when the object lands: the grant is a reservation, settled when its object lands and matches, released if nothing landed by the URL's expiry plus `UPLOADGATE_SETTLE_GRACE`). With `UPLOADGATE_TARGET=local` the embedded bucket settles in-process; with `s3`, S3's events through `UPLOADGATE_SETTLE_QUEUE_URL` do; see "Pay for what lands".
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_CHARGE",
        default_value = "grant",
        value_name = "MODE",
        help_heading = SERVE_ONLY,
    )]
    pub charge: ChargeChoice,

    /// `upload` charging: how long after a URL's expiry its unsettled grant is released (its quota handed back), 1m to 24h. An upload started before the expiry may land until then.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_SETTLE_GRACE",
        default_value = "15m",
        value_name = "DURATION",
        value_parser = values::settle_grace,
        help_heading = SERVE_ONLY,
    )]
    pub settle_grace: Duration,

    /// `dynamodb` store: the DynamoDB table of the usage ledger (partition key `user`, sort key `sk`, index `by_month`), where `upload` charging records settled uploads and `GET /v1/usage` reads them (required with both). `uploadgate table create` makes one for local use.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_USAGE_TABLE",
        value_name = "TABLE",
        help_heading = SERVE_ONLY,
    )]
    pub usage_table: Option<TableName>,

    /// `upload` charging on S3: the SQS queue the bucket sends its `s3:ObjectCreated:*` events to (with a dead-letter queue). `uploadgate settle` polls it (`--queue-url`), and so does `serve` with `UPLOADGATE_TARGET=s3`, which needs it.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        visible_alias = "queue-url",
        env = "UPLOADGATE_SETTLE_QUEUE_URL",
        value_name = "URL",
        help_heading = SERVE_ONLY,
    )]
    pub settle_queue_url: Option<HttpUrl>,

    /// `upload` charging on S3: the SQS queue each accepted upload is sent to, as one JSON message, for the processing app (see "Pay for what lands"). Without it, an accepted upload is a log line (`upload accepted`).
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_ACCEPTED_QUEUE_URL",
        value_name = "URL",
        help_heading = SERVE_ONLY,
    )]
    pub accepted_queue_url: Option<HttpUrl>,

    /// Directory of the file store and the local bucket.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_DATA_DIR",
        default_value = "./data",
        value_name = "DIR",
        value_parser = values::data_dir,
        help_heading = SERVE_ONLY,
    )]
    pub data_dir: PathBuf,

    /// Address of the API.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR",
        help_heading = SERVE_ONLY,
    )]
    pub listen: SocketAddr,

    /// Address of the local bucket (target `local`).
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_S3_LISTEN",
        default_value = "127.0.0.1:9000",
        value_name = "ADDR",
        help_heading = SERVE_ONLY,
    )]
    pub s3_listen: SocketAddr,

    /// Time a new connection has to send its first request's headers, 1s to 5m; then it is closed.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_HEADER_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION",
        value_parser = values::header_timeout,
        help_heading = SERVE_ONLY,
    )]
    pub header_timeout: Duration,

    /// Longest pause between chunks of a request body (an upload to the local bucket included), 1s to 10m; then the request fails.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_BODY_TIMEOUT",
        default_value = "30s",
        value_name = "DURATION",
        value_parser = values::body_timeout,
        help_heading = SERVE_ONLY,
    )]
    pub body_timeout: Duration,

    /// Longest a keep-alive connection may wait for its next request, 1s to 1h.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_IDLE_TIMEOUT",
        default_value = "60s",
        value_name = "DURATION",
        value_parser = values::idle_timeout,
        help_heading = SERVE_ONLY,
    )]
    pub idle_timeout: Duration,

    /// Most open connections per listener (lowered to fit the open-file limit). At the cap, a new connection evicts the oldest one that has not sent a complete request.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_MAX_CONNECTIONS",
        default_value = "1024",
        value_name = "COUNT",
        value_parser = values::max_connections,
        help_heading = SERVE_ONLY,
    )]
    pub max_connections: usize,

    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_LOG",
        default_value = "info",
        value_name = "FILTER",
        value_parser = values::log_filter,
    )]
    pub log: String,

    /// Log lines: `text` or `json` (one JSON object per line, with the request id). The Lambda function defaults to `json`.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,

    /// Metrics: `off`, or `emf` (one CloudWatch Embedded Metric Format line per decision on stdout: Allowed, Denied, FailOpen, FailClosed, ShadowDenied, StoreLatency, Retries; with `upload` charging also one per settled object: Settled, LateSettle, Quarantined, Duplicate, SettleFailed). The Lambda function defaults to `emf`.
    #[arg(
        long,
        verbatim_doc_comment,
        global = true,
        env = "UPLOADGATE_METRICS",
        default_value = "off",
        value_name = "FORMAT"
    )]
    pub metrics: MetricsFormat,
}

/// The help heading of settings every runner reads.
pub const ALL: &str = "Settings (each also read from its UPLOADGATE_* variable)";
/// The help heading of settings only `uploadgate serve` reads: the Lambda
/// function has no sockets or disk of its own, so a deployment of it must
/// not set them.
pub const SERVE_ONLY: &str = "Settings of `uploadgate serve` only";
