//! Prints, as JSON, what the settle function reads and which AWS operations
//! the crates it links can perform, for `infra/test/test_agreement.py` to
//! hold the Terraform module (the settle function's environment, its role)
//! to, as `uploadgate-lambda`'s manifest does for the gate:
//!
//! ```sh
//! cargo run -p uploadgate-settle-lambda --example manifest
//! ```
//!
//! * `lambda_settings`: every setting the function reads
//!   ([`SETTLE_SETTINGS`]), `serve_only_settings` the rest (settings it
//!   never reads, under that key so the test reads both manifests alike),
//!   and `lambda_defaults` the function's own defaults
//!   ([`SETTLE_DEFAULTS`]).
//! * `operations`: every operation the store, ledger and settle crates
//!   declare, each with its package and the cargo feature that compiles it
//!   in; which ones the function performs follows from the features of its
//!   own build (`cargo tree`), which the test reads. `uploadgate-s3` is
//!   linked too (through the app crate) but its one operation is what a
//!   presigned URL can do, and the settle function opens no presigner: it
//!   signs no URL, so that operation is not listed.

use uploadgate_app::manifest::manifest;
use uploadgate_settle_lambda::{SETTLE_DEFAULTS, SETTLE_SETTINGS};

fn main() -> Result<(), serde_json::Error> {
    let manifest = manifest(
        env!("CARGO_PKG_NAME"),
        |d| SETTLE_SETTINGS.contains(&d.name.as_str()),
        SETTLE_DEFAULTS,
        uploadgate_dynamodb::OPERATIONS
            .iter()
            .chain(uploadgate_settle::OPERATIONS),
    );
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(())
}
