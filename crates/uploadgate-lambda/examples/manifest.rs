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

use serde_json::{Value, json};
use uploadgate_app::Settings;
use uploadgate_core::Operation;
use uploadgate_lambda::{LAMBDA_DEFAULTS, UPLOAD_MODE_SETTINGS};

fn operation(op: &Operation) -> Value {
    json!({
        "package": op.package(),
        "service": op.service(),
        "operation": op.name(),
        "iam_action": op.permission(),
        "feature": op.feature(),
    })
}

fn main() -> Result<(), serde_json::Error> {
    let docs = Settings::docs();
    let names = |serve_only: bool| -> Vec<&str> {
        docs.iter()
            .filter(|d| {
                let read = !d.serve_only || UPLOAD_MODE_SETTINGS.contains(&d.name.as_str());
                read != serve_only
            })
            .map(|d| d.name.as_str())
            .collect()
    };
    let defaults: serde_json::Map<String, Value> = LAMBDA_DEFAULTS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    let operations: Vec<Value> = uploadgate_dynamodb::OPERATIONS
        .iter()
        .chain(uploadgate_s3::OPERATIONS)
        .map(operation)
        .collect();
    let manifest = json!({
        "package": env!("CARGO_PKG_NAME"),
        "lambda_settings": names(false),
        "serve_only_settings": names(true),
        "lambda_defaults": defaults,
        "operations": operations,
    });
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(())
}
