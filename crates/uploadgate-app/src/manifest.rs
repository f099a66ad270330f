//! The deployment manifest each Lambda function prints from its
//! `examples/manifest.rs`, for `infra/test/test_agreement.py` to hold the
//! Terraform module (the function's environment and its role) to:
//!
//! * `lambda_settings`: every setting the function reads,
//!   `serve_only_settings` the rest of [`Settings::docs`], and
//!   `lambda_defaults` the function's own defaults;
//! * `operations`: every AWS operation the given crates declare next to
//!   their calls, each with its package, IAM action and the cargo feature
//!   that compiles it in. Which of them the function performs follows from
//!   the features of its own build (`cargo tree`), which the test reads.

use serde_json::{Value, json};
use uploadgate_core::Operation;

use crate::Settings;
use crate::settings::SettingDoc;

/// The manifest of `package`: the settings for which `reads` holds, its
/// `defaults`, and the `operations` of the crates it links.
pub fn manifest<'a>(
    package: &str,
    reads: impl Fn(&SettingDoc) -> bool,
    defaults: &[(&str, &str)],
    operations: impl IntoIterator<Item = &'a Operation>,
) -> Value {
    let (read, unread): (Vec<SettingDoc>, Vec<SettingDoc>) =
        Settings::docs().into_iter().partition(|d| reads(d));
    let names =
        |docs: Vec<SettingDoc>| -> Vec<String> { docs.into_iter().map(|d| d.name).collect() };
    let defaults: serde_json::Map<String, Value> = defaults
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    let operations: Vec<Value> = operations
        .into_iter()
        .map(|op| {
            json!({
                "package": op.package(),
                "service": op.service(),
                "operation": op.name(),
                "iam_action": op.permission(),
                "feature": op.feature(),
            })
        })
        .collect();
    json!({
        "package": package,
        "lambda_settings": names(read),
        "serve_only_settings": names(unread),
        "lambda_defaults": defaults,
        "operations": operations,
    })
}
