//! Prints, as JSON, what the Lambda function reads and which AWS operations
//! the crates it links can perform, for `infra/test/test_agreement.py` to
//! hold the Terraform module (the function's environment, its role) to:
//!
//! ```sh
//! cargo run -p uploadgate-lambda --example manifest
//! ```
//!
//! * `lambda_settings`: every setting the function reads (all of
//!   [`Settings::docs`] but the `serve`-only ones, and of those the
//!   [`UPLOAD_MODE_SETTINGS`]), `serve_only_settings` the rest, and
//!   `lambda_defaults` the function's own defaults ([`LAMBDA_DEFAULTS`]).
//! * `operations`: every operation the store and presigner crates declare,
//!   each with its package and the cargo feature that compiles it in. An
//!   example is built with dev-dependencies, whose features can differ from
//!   the function's, so this lists them all; which ones the function
//!   performs follows from the features of its own build (`cargo tree`),
//!   which the test reads.

use uploadgate_app::manifest::manifest;
use uploadgate_lambda::{LAMBDA_DEFAULTS, UPLOAD_MODE_SETTINGS};

fn main() -> Result<(), serde_json::Error> {
    let manifest = manifest(
        env!("CARGO_PKG_NAME"),
        |d| !d.serve_only || UPLOAD_MODE_SETTINGS.contains(&d.name.as_str()),
        LAMBDA_DEFAULTS,
        uploadgate_dynamodb::OPERATIONS
            .iter()
            .chain(uploadgate_s3::OPERATIONS),
    );
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(())
}
