//! Configuration: read raw values once (file, environment, flags), then
//! validate them into one typed [`Config`] that is passed down.
//!
//! Every setting has one name, `UPLOADGATE_*`; the TOML file uses the same
//! name without the prefix, in lower case (`limits = "..."`). Flags beat the
//! environment, which beats the file, which beats the defaults. An invalid
//! value is a [`ConfigError`] naming the setting, printed on one line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use uploadgate_core::{Algorithm, Amount, Policy, Unit, Window, codec};

/// One setting: its name, default and meaning. The README's configuration
/// table lists exactly these (a test keeps them in step).
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Environment variable name.
    pub name: &'static str,
    /// Default value, as text ("" for none).
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
}

/// Every setting uploadgate reads.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "UPLOADGATE_LIMITS",
        default: "uploads=user:5/3h",
        help: "Limits, `;`-separated: `name=subject:amount/window[:algorithm]`. subject `user` or `ip`; amount a count or bytes (`50MiB`); window `90s`, `15m`, `3h`, `24h`, `30d`, `1w`, `1mo` (fixed only); algorithm `sliding` (default), `gcra` or `fixed`.",
    },
    Setting {
        name: "UPLOADGATE_MAX_OBJECT_BYTES",
        default: "52428800",
        help: "Largest upload accepted, in bytes (units like `50MiB` allowed).",
    },
    Setting {
        name: "UPLOADGATE_CONTENT_TYPES",
        default: "application/pdf,image/png,image/jpeg,image/tiff",
        help: "Comma-separated content types an upload may declare.",
    },
    Setting {
        name: "UPLOADGATE_URL_TTL",
        default: "5m",
        help: "Lifetime of a presigned URL, 1s to 12h.",
    },
    Setting {
        name: "UPLOADGATE_BUCKET",
        default: "uploads",
        help: "Bucket the URLs are signed for.",
    },
    Setting {
        name: "UPLOADGATE_KEY_PREFIX",
        default: "uploads/",
        help: "Prefix of every object key: `<prefix><user>/<uuid>/<filename>`. Empty, or ending in `/`.",
    },
    Setting {
        name: "UPLOADGATE_IDENTITY",
        default: "header",
        help: "Where the user id comes from: `header` (the identity header, set by a trusted upstream) or `body` (`userId` in the JSON body, the original design's model: unsafe, any caller can claim any id).",
    },
    Setting {
        name: "UPLOADGATE_IDENTITY_HEADER",
        default: "x-user-id",
        help: "The identity header (not `authorization`: CloudFront OAC overwrites it).",
    },
    Setting {
        name: "UPLOADGATE_CORS_ORIGINS",
        default: "",
        help: "Comma-separated origins allowed to call the API from a browser, or `*`. Empty: no CORS.",
    },
    Setting {
        name: "UPLOADGATE_CLIENT_IP",
        default: "peer",
        help: "Where the `ip` subject comes from: `peer` (the TCP peer) or `cloudfront` (`CloudFront-Viewer-Address`).",
    },
    Setting {
        name: "UPLOADGATE_STORE",
        default: "file",
        help: "State store: `file` (embedded, durable, in the data dir), `memory` (lost on exit) or `dynamodb` (the table `UPLOADGATE_TABLE`, through the standard AWS configuration; any number of servers can share it).",
    },
    Setting {
        name: "UPLOADGATE_TABLE",
        default: "",
        help: "DynamoDB table of the `dynamodb` store (required with it). `uploadgate table create` makes one for local use.",
    },
    Setting {
        name: "UPLOADGATE_DENIAL_TTL",
        default: "5s",
        help: "`dynamodb` store: how long a process denies from its cache without asking DynamoDB, 0s to 5m. It bounds how late a `quota reset` made elsewhere is seen; `0s` makes resets exact at one read per denial.",
    },
    Setting {
        name: "UPLOADGATE_FAIL_OPEN",
        default: "false",
        help: "If the store fails: `false` answers 503; `true` admits the upload anyway.",
    },
    Setting {
        name: "UPLOADGATE_TARGET",
        default: "local",
        help: "Where uploads go: `local` (the embedded bucket of `serve`) or `s3` (S3 through the standard AWS configuration: `AWS_REGION`, credentials chain, `AWS_ENDPOINT_URL_S3`).",
    },
    Setting {
        name: "UPLOADGATE_DATA_DIR",
        default: "./data",
        help: "Directory of the file store and the local bucket.",
    },
    Setting {
        name: "UPLOADGATE_LISTEN",
        default: "127.0.0.1:8080",
        help: "Address of the API.",
    },
    Setting {
        name: "UPLOADGATE_S3_LISTEN",
        default: "127.0.0.1:9000",
        help: "Address of the local bucket (target `local`).",
    },
    Setting {
        name: "UPLOADGATE_LOG",
        default: "info",
        help: "Log filter (tracing `EnvFilter` syntax).",
    },
    Setting {
        name: "UPLOADGATE_LOG_FORMAT",
        default: "text",
        help: "Log lines: `text` or `json` (one JSON object per line, with the request id). The Lambda function defaults to `json`.",
    },
    Setting {
        name: "UPLOADGATE_METRICS",
        default: "off",
        help: "Metrics: `off`, or `emf` (one CloudWatch Embedded Metric Format line per decision on stdout: Allowed, Denied, FailOpen, FailClosed, StoreLatency, Retries). The Lambda function defaults to `emf`.",
    },
];

/// An invalid setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {setting}: {message}")]
pub struct ConfigError {
    /// The setting's name.
    pub setting: &'static str,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn new(setting: &'static str, message: impl std::fmt::Display) -> Self {
        ConfigError {
            setting,
            message: message.to_string(),
        }
    }
}

/// Raw setting values, by name, before validation.
#[derive(Debug, Clone, Default)]
pub struct RawConfig(BTreeMap<&'static str, String>);

impl RawConfig {
    /// Reads a TOML file of `key = "value"` pairs (setting names without the
    /// prefix, lower case).
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
        })?;
        Self::from_toml_str(&text)
            .map_err(|e| ConfigError::new("--config", format!("{}: {}", path.display(), e.message)))
    }

    /// Parses TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::new("--config", e.message().to_owned()))?;
        let mut raw = RawConfig::default();
        for (k, v) in table {
            let name = format!("UPLOADGATE_{}", k.to_ascii_uppercase());
            let setting = SETTINGS
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| ConfigError::new("--config", format!("unknown setting `{k}`")))?;
            let value = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(ConfigError::new(
                        setting.name,
                        format!("expected a string, got {other}"),
                    ));
                }
            };
            raw.0.insert(setting.name, value);
        }
        Ok(raw)
    }

    /// Overlays every `UPLOADGATE_*` setting found by `lookup` (the
    /// environment, in production).
    pub fn overlay_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        for s in SETTINGS {
            if let Some(v) = lookup(s.name) {
                self.0.insert(s.name, v);
            }
        }
        self
    }

    /// Sets one value (from a command-line flag).
    pub fn set(&mut self, name: &'static str, value: impl Into<String>) {
        self.0.insert(name, value.into());
    }

    fn get(&self, name: &'static str) -> &str {
        self.0
            .get(name)
            .map(String::as_str)
            .or_else(|| SETTINGS.iter().find(|s| s.name == name).map(|s| s.default))
            .unwrap_or("")
    }

    /// Validates everything into a [`Config`].
    pub fn validate(&self) -> Result<Config, ConfigError> {
        Config::from_raw(self)
    }
}

/// Where the user id comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityMode {
    /// A header set by a trusted upstream.
    Header(HeaderName),
    /// `userId` in the JSON body (the original design; unsafe).
    Body,
}

/// Where the `ip` subject comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIpSource {
    /// The connection's peer address.
    Peer,
    /// The `CloudFront-Viewer-Address` header.
    CloudFront,
}

/// Which state store to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// In process memory.
    Memory,
    /// The embedded durable file store.
    File,
    /// A DynamoDB table.
    Dynamodb {
        /// The table name.
        table: String,
        /// How long a cached denial is trusted.
        denial_ttl: Duration,
    },
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where uploads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// The embedded local bucket.
    Local,
    /// S3 through the standard AWS configuration.
    S3,
}

/// Which browser origins may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers.
    None,
    /// Any origin.
    Any,
    /// These origins.
    List(Vec<http::HeaderValue>),
}

/// What the router needs: the gate's behaviour.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// The limits.
    pub policy: Policy,
    /// Largest upload, bytes.
    pub max_object_bytes: u64,
    /// Allowed content types, lower case.
    pub content_types: Vec<String>,
    /// Object key prefix.
    pub key_prefix: String,
    /// Identity source.
    pub identity: IdentityMode,
    /// Client address source.
    pub client_ip: ClientIpSource,
    /// CORS.
    pub cors: CorsOrigins,
    /// Admit when the store fails.
    pub fail_open: bool,
    /// Emit CloudWatch Embedded Metric Format lines.
    pub emf_metrics: bool,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The gate's behaviour.
    pub gate: GateConfig,
    /// URL lifetime.
    pub url_ttl: Duration,
    /// Bucket name.
    pub bucket: String,
    /// State store.
    pub store: StoreKind,
    /// Upload target.
    pub target: TargetKind,
    /// Data directory.
    pub data_dir: PathBuf,
    /// API address.
    pub listen: SocketAddr,
    /// Local bucket address.
    pub s3_listen: SocketAddr,
    /// Log filter.
    pub log: String,
    /// Log line format.
    pub log_format: LogFormat,
}

fn err(setting: &'static str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(setting, message)
}

fn duration(raw: &str) -> Option<Duration> {
    match raw.parse::<Window>() {
        Ok(Window::Span(span)) => Some(span.as_duration()),
        _ => None,
    }
}

/// Refuses a policy whose per-subject state could outgrow one store item
/// ([`codec::MAX_STATE_BYTES`]), on every store, so a policy that works
/// locally also works on DynamoDB.
fn check_state_size(policy: &Policy) -> Result<(), ConfigError> {
    for subject in policy.subjects() {
        match codec::max_encoded_len(policy, subject) {
            Some(n) if n <= codec::MAX_STATE_BYTES => {}
            Some(n) => {
                return Err(err(
                    "UPLOADGATE_LIMITS",
                    format!(
                        "the sliding-window state of the `{subject}` limits could reach {n} bytes, over the {}-byte budget of one store item (a sliding limit remembers every upload in its window); lower the amount, or use `:gcra` or `:fixed`, whose state is constant",
                        codec::MAX_STATE_BYTES
                    ),
                ));
            }
            None => {
                let names: Vec<&str> = policy
                    .limits()
                    .iter()
                    .filter(|l| {
                        l.subject == subject
                            && matches!(l.algorithm, Algorithm::Sliding(_))
                            && l.amount.unit == Unit::Bytes
                    })
                    .map(|l| l.name.as_str())
                    .collect();
                return Err(err(
                    "UPLOADGATE_LIMITS",
                    format!(
                        "sliding limit `{}` counts bytes, and no count limit on `{subject}` bounds how many uploads it must remember; add one (e.g. uploads={subject}:100/24h), or use `:gcra` or `:fixed`",
                        names.join("`, `")
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Config {
    fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        let policy: Policy = raw
            .get("UPLOADGATE_LIMITS")
            .parse()
            .map_err(|e| err("UPLOADGATE_LIMITS", e))?;
        check_state_size(&policy)?;

        let max = raw.get("UPLOADGATE_MAX_OBJECT_BYTES").trim();
        let max_object_bytes = match max.parse::<u64>() {
            Ok(n) if n > 0 => n,
            Ok(_) => {
                return Err(err(
                    "UPLOADGATE_MAX_OBJECT_BYTES",
                    "must be at least 1 byte",
                ));
            }
            Err(_) => match max.parse::<Amount>() {
                Ok(Amount {
                    unit: Unit::Bytes,
                    value,
                }) => value.get(),
                _ => {
                    return Err(err(
                        "UPLOADGATE_MAX_OBJECT_BYTES",
                        format!("`{max}` is not a size in bytes (e.g. 52428800 or 50MiB)"),
                    ));
                }
            },
        };
        // S3 takes at most 5 GiB in one PUT.
        if max_object_bytes > 5 << 30 {
            return Err(err(
                "UPLOADGATE_MAX_OBJECT_BYTES",
                "a single presigned PUT takes at most 5 GiB",
            ));
        }

        let mut content_types = Vec::new();
        for ct in raw
            .get("UPLOADGATE_CONTENT_TYPES")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let ok = ct
                .split_once('/')
                .is_some_and(|(t, s)| is_token(t) && is_token(s));
            if !ok {
                return Err(err(
                    "UPLOADGATE_CONTENT_TYPES",
                    format!("`{ct}` is not a media type like application/pdf"),
                ));
            }
            content_types.push(ct.to_ascii_lowercase());
        }
        if content_types.is_empty() {
            return Err(err(
                "UPLOADGATE_CONTENT_TYPES",
                "at least one content type is required",
            ));
        }

        let ttl_raw = raw.get("UPLOADGATE_URL_TTL").trim();
        let url_ttl = duration(ttl_raw)
            .filter(|d| *d >= Duration::from_secs(1) && *d <= Duration::from_secs(12 * 3600))
            .ok_or_else(|| {
                err(
                    "UPLOADGATE_URL_TTL",
                    format!("`{ttl_raw}` must be a duration from 1s to 12h, like 5m"),
                )
            })?;

        let bucket = raw.get("UPLOADGATE_BUCKET").trim().to_owned();
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && bucket.as_bytes()[0].is_ascii_alphanumeric()
            && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
        if !bucket_ok {
            return Err(err(
                "UPLOADGATE_BUCKET",
                format!("`{bucket}` is not a valid S3 bucket name (3-63 of a-z, 0-9, '.', '-')"),
            ));
        }

        let key_prefix = raw.get("UPLOADGATE_KEY_PREFIX").to_owned();
        let prefix_ok = (key_prefix.is_empty() || key_prefix.ends_with('/'))
            && !key_prefix.starts_with('/')
            && key_prefix.len() <= 256
            && key_prefix.split('/').all(|s| s != "." && s != "..")
            && key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
        if !prefix_ok {
            return Err(err(
                "UPLOADGATE_KEY_PREFIX",
                format!(
                    "`{key_prefix}` must be empty or end with `/`, use only a-z A-Z 0-9 / - _ ., and not start with `/`"
                ),
            ));
        }

        let header = raw
            .get("UPLOADGATE_IDENTITY_HEADER")
            .trim()
            .to_ascii_lowercase();
        let header_name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
            err(
                "UPLOADGATE_IDENTITY_HEADER",
                format!("`{header}` is not a header name"),
            )
        })?;
        if header_name == http::header::AUTHORIZATION {
            return Err(err(
                "UPLOADGATE_IDENTITY_HEADER",
                "must not be `authorization`: CloudFront origin access control overwrites it",
            ));
        }
        let identity = match raw.get("UPLOADGATE_IDENTITY").trim() {
            "header" => IdentityMode::Header(header_name),
            "body" => IdentityMode::Body,
            other => {
                return Err(err(
                    "UPLOADGATE_IDENTITY",
                    format!("unknown mode `{other}` (expected header or body)"),
                ));
            }
        };

        let client_ip = match raw.get("UPLOADGATE_CLIENT_IP").trim() {
            "peer" => ClientIpSource::Peer,
            "cloudfront" => ClientIpSource::CloudFront,
            other => {
                return Err(err(
                    "UPLOADGATE_CLIENT_IP",
                    format!("unknown source `{other}` (expected peer or cloudfront)"),
                ));
            }
        };

        let origins: Vec<&str> = raw
            .get("UPLOADGATE_CORS_ORIGINS")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let cors = if origins.is_empty() {
            CorsOrigins::None
        } else if origins == ["*"] {
            CorsOrigins::Any
        } else {
            let mut list = Vec::new();
            for o in origins {
                let valid = (o.starts_with("http://") || o.starts_with("https://"))
                    && !o.ends_with('/')
                    && o.parse::<http::Uri>()
                        .is_ok_and(|u| u.path() == "/" && u.query().is_none());
                let value = http::HeaderValue::from_str(o).ok().filter(|_| valid);
                list.push(value.ok_or_else(|| {
                    err("UPLOADGATE_CORS_ORIGINS", format!("`{o}` is not an origin like https://app.example.com (scheme and host, no path), or `*` alone"))
                })?);
            }
            CorsOrigins::List(list)
        };

        let fail_open = match raw.get("UPLOADGATE_FAIL_OPEN").trim() {
            "true" | "1" => true,
            "false" | "0" => false,
            other => {
                return Err(err(
                    "UPLOADGATE_FAIL_OPEN",
                    format!("`{other}` is not true or false"),
                ));
            }
        };
        let store = match raw.get("UPLOADGATE_STORE").trim() {
            "memory" => StoreKind::Memory,
            "file" => StoreKind::File,
            "dynamodb" => {
                let table = raw.get("UPLOADGATE_TABLE").trim().to_owned();
                if table.is_empty() {
                    return Err(err(
                        "UPLOADGATE_TABLE",
                        "the dynamodb store needs a table name (create one with `uploadgate table create`)",
                    ));
                }
                let table_ok = (3..=255).contains(&table.len())
                    && table
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
                if !table_ok {
                    return Err(err(
                        "UPLOADGATE_TABLE",
                        format!(
                            "`{table}` is not a DynamoDB table name (3-255 of a-z A-Z 0-9 _ . -)"
                        ),
                    ));
                }
                let ttl_raw = raw.get("UPLOADGATE_DENIAL_TTL").trim();
                let denial_ttl = if matches!(ttl_raw, "0" | "0s") {
                    Some(Duration::ZERO)
                } else {
                    duration(ttl_raw).filter(|d| *d <= Duration::from_secs(300))
                }
                .ok_or_else(|| {
                    err(
                        "UPLOADGATE_DENIAL_TTL",
                        format!("`{ttl_raw}` must be a duration from 0s to 5m, like 5s"),
                    )
                })?;
                StoreKind::Dynamodb { table, denial_ttl }
            }
            other => {
                return Err(err(
                    "UPLOADGATE_STORE",
                    format!("unknown store `{other}` (expected file, memory or dynamodb)"),
                ));
            }
        };
        let target = match raw.get("UPLOADGATE_TARGET").trim() {
            "local" => TargetKind::Local,
            "s3" => TargetKind::S3,
            other => {
                return Err(err(
                    "UPLOADGATE_TARGET",
                    format!("unknown target `{other}` (expected local or s3)"),
                ));
            }
        };
        let data_dir = PathBuf::from(raw.get("UPLOADGATE_DATA_DIR"));
        if data_dir.as_os_str().is_empty() {
            return Err(err("UPLOADGATE_DATA_DIR", "must not be empty"));
        }
        let addr = |name: &'static str| {
            let v = raw.get(name).trim();
            v.parse::<SocketAddr>()
                .map_err(|_| err(name, format!("`{v}` is not an address like 127.0.0.1:8080")))
        };
        let listen = addr("UPLOADGATE_LISTEN")?;
        let s3_listen = addr("UPLOADGATE_S3_LISTEN")?;
        let log = raw.get("UPLOADGATE_LOG").trim().to_owned();
        let log_format = match raw.get("UPLOADGATE_LOG_FORMAT").trim() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(err(
                    "UPLOADGATE_LOG_FORMAT",
                    format!("unknown format `{other}` (expected text or json)"),
                ));
            }
        };
        let emf_metrics = match raw.get("UPLOADGATE_METRICS").trim() {
            "off" => false,
            "emf" => true,
            other => {
                return Err(err(
                    "UPLOADGATE_METRICS",
                    format!("unknown metrics `{other}` (expected off or emf)"),
                ));
            }
        };

        Ok(Config {
            gate: GateConfig {
                policy,
                max_object_bytes,
                content_types,
                key_prefix,
                identity,
                client_ip,
                cors,
                fail_open,
                emf_metrics,
            },
            url_ttl,
            bucket,
            store,
            target,
            data_dir,
            listen,
            s3_listen,
            log,
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RawConfig::default()
            .overlay_env(|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
            .validate()
    }

    #[test]
    fn defaults_are_valid() {
        let c = env(&[]).unwrap();
        assert_eq!(c.gate.policy.to_string(), "uploads=user:5/3h:sliding");
        assert_eq!(c.gate.max_object_bytes, 50 << 20);
        assert_eq!(
            c.gate.content_types,
            ["application/pdf", "image/png", "image/jpeg", "image/tiff"]
        );
        assert_eq!(c.url_ttl, Duration::from_secs(300));
        assert_eq!(
            c.gate.identity,
            IdentityMode::Header(HeaderName::from_static("x-user-id"))
        );
        assert_eq!(c.store, StoreKind::File);
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.gate.cors, CorsOrigins::None);
    }

    #[test]
    fn each_bad_value_names_its_setting() {
        let cases = [
            ("UPLOADGATE_LIMITS", "uploads=user:five/3h"),
            ("UPLOADGATE_MAX_OBJECT_BYTES", "lots"),
            ("UPLOADGATE_MAX_OBJECT_BYTES", "0"),
            ("UPLOADGATE_MAX_OBJECT_BYTES", "6GiB"),
            ("UPLOADGATE_CONTENT_TYPES", "pdf"),
            ("UPLOADGATE_URL_TTL", "8d"),
            ("UPLOADGATE_URL_TTL", "soon"),
            ("UPLOADGATE_BUCKET", "My_Bucket"),
            ("UPLOADGATE_KEY_PREFIX", "../up/"),
            ("UPLOADGATE_KEY_PREFIX", "uploads"),
            ("UPLOADGATE_IDENTITY", "cookie"),
            ("UPLOADGATE_IDENTITY_HEADER", "Authorization"),
            ("UPLOADGATE_CORS_ORIGINS", "https://a.example.com/path"),
            ("UPLOADGATE_CLIENT_IP", "xff"),
            ("UPLOADGATE_STORE", "redis"),
            ("UPLOADGATE_FAIL_OPEN", "maybe"),
            ("UPLOADGATE_TARGET", "gcs"),
            ("UPLOADGATE_LISTEN", "8080"),
            ("UPLOADGATE_LIMITS", "volume=user:50MiB/24h"),
            ("UPLOADGATE_LIMITS", "uploads=user:5000/30d"),
            ("UPLOADGATE_LOG_FORMAT", "xml"),
            ("UPLOADGATE_METRICS", "statsd"),
            ("UPLOADGATE_TABLE", ""),
        ];
        for (name, value) in cases {
            // The table is only read by the dynamodb store.
            let store = if name == "UPLOADGATE_TABLE" {
                "dynamodb"
            } else {
                "file"
            };
            let e = env(&[(name, value), ("UPLOADGATE_STORE", store)]).unwrap_err();
            assert_eq!(e.setting, name, "{value}: {e}");
            let line = e.to_string();
            assert!(line.starts_with(&format!("invalid {name}: ")), "{line}");
            assert!(!line.contains('\n'), "one line: {line}");
        }
    }

    #[test]
    fn the_dynamodb_store_takes_a_table_and_a_denial_ttl() {
        let c = env(&[
            ("UPLOADGATE_STORE", "dynamodb"),
            ("UPLOADGATE_TABLE", "uploadgate-quota"),
        ])
        .unwrap();
        assert_eq!(
            c.store,
            StoreKind::Dynamodb {
                table: "uploadgate-quota".into(),
                denial_ttl: Duration::from_secs(5)
            }
        );
        let c = env(&[
            ("UPLOADGATE_STORE", "dynamodb"),
            ("UPLOADGATE_TABLE", "t_1.x-y"),
            ("UPLOADGATE_DENIAL_TTL", "0s"),
        ])
        .unwrap();
        assert!(matches!(c.store, StoreKind::Dynamodb { denial_ttl, .. } if denial_ttl.is_zero()));
        for (name, value) in [
            ("UPLOADGATE_TABLE", "no spaces allowed"),
            ("UPLOADGATE_DENIAL_TTL", "10m"),
            ("UPLOADGATE_DENIAL_TTL", "-1s"),
        ] {
            // The first pair of a name wins.
            let pairs = [
                (name, value),
                ("UPLOADGATE_STORE", "dynamodb"),
                ("UPLOADGATE_TABLE", "quota"),
            ];
            assert_eq!(env(&pairs).unwrap_err().setting, name, "{value}");
        }
    }

    #[test]
    fn file_then_env_then_flags() {
        let mut raw = RawConfig::from_toml_str(
            "limits = \"a=user:1/1h\"\nurl_ttl = \"10m\"\nmax_object_bytes = 1000\n",
        )
        .unwrap();
        raw = raw.overlay_env(|k| (k == "UPLOADGATE_URL_TTL").then(|| "2m".to_owned()));
        raw.set("UPLOADGATE_LISTEN", "127.0.0.1:0");
        let c = raw.validate().unwrap();
        assert_eq!(c.gate.policy.to_string(), "a=user:1/1h:sliding");
        assert_eq!(c.url_ttl, Duration::from_secs(120));
        assert_eq!(c.gate.max_object_bytes, 1000);
        assert_eq!(c.listen.port(), 0);
        let e = RawConfig::from_toml_str("limts = \"x\"").unwrap_err();
        assert_eq!(e.to_string(), "invalid --config: unknown setting `limts`");
    }
}

#[cfg(test)]
mod readme {
    #[test]
    fn the_readme_documents_every_setting_with_its_default() {
        let readme = include_str!("../../../README.md");
        for s in super::SETTINGS {
            let default = if s.default.is_empty() {
                "(none)".to_owned()
            } else {
                format!("`{}`", s.default)
            };
            let row = format!("| `{}` | {} |", s.name, default);
            assert!(
                readme.contains(&row),
                "README lacks the row for {}: {row}",
                s.name
            );
        }
    }
}
