//! Helpers for tests that need a DynamoDB API (feature `test-util`): find
//! the emulator, or start moto's server through `scripts/moto.sh`.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

/// The DynamoDB endpoint for tests: `AWS_ENDPOINT_URL_DYNAMODB` if set
/// (`./scripts/test` starts moto and sets it), otherwise moto's server
/// started with `scripts/moto.sh start` (idempotent; it stays up for the
/// next run, `scripts/moto.sh stop` ends it). Panics with the script's
/// output if it cannot start.
pub fn endpoint() -> String {
    static ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            if let Ok(e) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB") {
                return e;
            }
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/moto.sh");
            let out = std::process::Command::new("bash")
                .args([script, "start"])
                .output()
                .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
            let stdout = String::from_utf8_lossy(&out.stdout);
            stdout
                .lines()
                .find_map(|l| l.strip_prefix("export AWS_ENDPOINT_URL_DYNAMODB="))
                .filter(|_| out.status.success())
                .unwrap_or_else(|| {
                    panic!(
                        "scripts/moto.sh start failed:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                })
                .to_owned()
        })
        .clone()
}

/// SDK configuration for an emulator at `endpoint`: region us-east-1 and
/// dummy credentials.
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region("us-east-1")
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .load()
        .await
}
