//! The uploadgate application layer, shared by `uploadgate` (the CLI and
//! local server) and the Lambda function.
//!
//! Configuration comes in two phases, as ripgrep does it: [`Settings`] reads
//! every value once into its type (clap layers flags over `UPLOADGATE_*`
//! environment variables over an optional TOML file over the defaults), then
//! [`Config`] checks them as a whole. The wiring that turns a `Config` into
//! running parts is written once: [`open_store`] picks the state store
//! (behind the one type [`AnyStore`]) and [`open_presigner`] the upload
//! target, loading the AWS configuration at most once ([`Aws`]).
//!
//! `serve`'s router state, and in upload mode its in-process settlement
//! (the embedded bucket reporting what lands to the core's settle step),
//! are composed in `settle`; on S3 (feature `settle`), the poller of S3's
//! events through a queue in `queue`.
//!
//! The HTTP crate knows none of this: it takes a
//! [`GateConfig`](uploadgate_http::GateConfig) and a limiter.

mod config;
pub mod layers;
pub mod manifest;
#[cfg(feature = "settle")]
pub mod queue;
pub mod server;
pub mod settings;
#[cfg(feature = "local")]
pub mod settle;
mod settlement;
pub mod telemetry;
pub mod values;
mod verdict;
mod wiring;

pub use config::{Config, StoreKind, TargetKind};
pub use settings::{LogFormat, SettingError, Settings};
pub use verdict::{AcceptedHook, LogHandOff};
#[cfg(feature = "local")]
pub use wiring::LocalTarget;
pub use wiring::{
    AnyLedger, AnyStore, Aws, GateLimiter, LocalTargetHandle, OpenError, open_ledger,
    open_presigner, open_store,
};
