//! The settle function: the settle step of `uploadgate settle`, driven by a
//! Lambda event source mapping on the queue of the bucket's
//! `s3:ObjectCreated:*` events, with partial batch failures
//! (`ReportBatchItemFailures`): a message that cannot be settled now is
//! listed, delivered again after its visibility timeout, and after the
//! queue's receive count lands in the dead-letter queue.
//!
//! It reads the gate's settings (the same limits, tiers, key prefix, URL
//! lifetime and grace: it settles against the reservations the gate
//! made) with the defaults of a settle function.

use uploadgate_app::{Config, SettingError, StoreKind};

/// The settle function's defaults: CloudWatch wants JSON log lines and EMF
/// metrics; it settles S3 uploads of upload mode on the dynamodb store.
pub const SETTLE_DEFAULTS: &[(&str, &str)] = &[
    ("UPLOADGATE_LOG_FORMAT", "json"),
    ("UPLOADGATE_METRICS", "emf"),
    ("UPLOADGATE_IDENTITY", "jwt"),
    ("UPLOADGATE_CHARGE", "upload"),
    ("UPLOADGATE_TARGET", "s3"),
    ("UPLOADGATE_STORE", "dynamodb"),
];

/// Every setting the settle function reads: what settling uses (the
/// store and its tables, the bucket, the policies and tiers it refunds
/// to, the key prefix, URL lifetime and grace of the reservations, the
/// queues, logging), and what the configuration's checks need to accept
/// the gate's configuration (the identity mode and, with `jwt`, its issuer
/// and audience; content types, fail-open and shadow mode, which upload
/// mode checks). The gate's request-only settings (CORS, client address,
/// origin secret, token header and claims, checksum requirement, object
/// size) are not among them: the settle function's environment leaves
/// them out, and its deployment's manifest (`examples/manifest.rs`) lists
/// exactly these.
pub const SETTLE_SETTINGS: &[&str] = &[
    "UPLOADGATE_LIMITS",
    "UPLOADGATE_CONTENT_TYPES",
    "UPLOADGATE_URL_TTL",
    "UPLOADGATE_BUCKET",
    "UPLOADGATE_KEY_PREFIX",
    "UPLOADGATE_IDENTITY",
    "UPLOADGATE_JWT_ISSUER",
    "UPLOADGATE_JWT_AUDIENCE",
    "UPLOADGATE_TIERS",
    "UPLOADGATE_TIER_CLAIM",
    "UPLOADGATE_SHADOW",
    "UPLOADGATE_STORE",
    "UPLOADGATE_TABLE",
    "UPLOADGATE_DENIAL_TTL",
    "UPLOADGATE_FAIL_OPEN",
    "UPLOADGATE_TARGET",
    "UPLOADGATE_CHARGE",
    "UPLOADGATE_SETTLE_GRACE",
    "UPLOADGATE_USAGE_TABLE",
    "UPLOADGATE_SETTLE_QUEUE_URL",
    "UPLOADGATE_ACCEPTED_QUEUE_URL",
    "UPLOADGATE_LOG",
    "UPLOADGATE_LOG_FORMAT",
    "UPLOADGATE_METRICS",
];

/// Reads the configuration from `lookup` (the process environment in the
/// function) with [`SETTLE_DEFAULTS`], and refuses what it cannot settle
/// with: grant mode (nothing is reserved) and any store but `dynamodb`
/// (the gate's state must be shared).
pub fn load_config(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, SettingError> {
    let config = Config::from_lookup(SETTLE_DEFAULTS, lookup)?;
    if config.gate.settlement.is_none() {
        return Err(SettingError::new(
            "UPLOADGATE_CHARGE",
            "the settle function settles the reservations of upload mode; `grant` reserves nothing",
        ));
    }
    if !matches!(config.store, StoreKind::Dynamodb { .. }) {
        return Err(SettingError::new(
            "UPLOADGATE_STORE",
            "the settle function works on the gate's dynamodb table",
        ));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const GATE: &[(&str, &str)] = &[
        (
            "UPLOADGATE_JWT_ISSUER",
            "https://cognito-idp.eu-west-1.amazonaws.com/pool",
        ),
        ("UPLOADGATE_JWT_AUDIENCE", "client"),
        ("UPLOADGATE_TABLE", "quota"),
        ("UPLOADGATE_USAGE_TABLE", "usage"),
        ("UPLOADGATE_BUCKET", "uploads"),
        (
            "UPLOADGATE_SETTLE_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/uploadgate-events",
        ),
    ];

    #[test]
    fn the_gate_settings_settle_in_upload_mode_on_dynamodb() {
        let c = load_config(env(GATE)).unwrap();
        assert_eq!(c.gate.settlement, Some(std::time::Duration::from_secs(900)));
        assert!(matches!(
            &c.store,
            StoreKind::Dynamodb { table, usage_table: Some(u), .. } if table == "quota" && u == "usage"
        ));
    }

    #[test]
    fn its_settings_are_documented_and_its_defaults_among_them() {
        let names: Vec<String> = uploadgate_app::Settings::docs()
            .into_iter()
            .map(|d| d.name)
            .collect();
        for s in SETTLE_SETTINGS {
            assert!(names.iter().any(|n| n == s), "{s} is not a setting");
        }
        for (k, _) in SETTLE_DEFAULTS {
            assert!(SETTLE_SETTINGS.contains(k), "{k}");
        }
        // The gate's settings restricted to these settle.
        assert!(GATE.iter().all(|(k, _)| SETTLE_SETTINGS.contains(k)));
    }

    #[test]
    fn what_it_cannot_settle_with_is_refused_naming_the_setting() {
        let mut grant = GATE.to_vec();
        grant.retain(|(k, _)| *k != "UPLOADGATE_SETTLE_QUEUE_URL");
        grant.push(("UPLOADGATE_CHARGE", "grant"));
        grant.retain(|(k, _)| *k != "UPLOADGATE_USAGE_TABLE");
        let e = load_config(env(&grant)).unwrap_err();
        assert_eq!(e.setting, "UPLOADGATE_CHARGE", "{e}");

        let mut memory = GATE.to_vec();
        memory.retain(|(k, _)| !["UPLOADGATE_TABLE", "UPLOADGATE_USAGE_TABLE"].contains(k));
        memory.push(("UPLOADGATE_STORE", "memory"));
        let e = load_config(env(&memory)).unwrap_err();
        assert_eq!(e.setting, "UPLOADGATE_STORE", "{e}");

        let mut no_usage = GATE.to_vec();
        no_usage.retain(|(k, _)| *k != "UPLOADGATE_USAGE_TABLE");
        let e = load_config(env(&no_usage)).unwrap_err();
        assert_eq!(e.setting, "UPLOADGATE_USAGE_TABLE", "{e}");
    }
}
