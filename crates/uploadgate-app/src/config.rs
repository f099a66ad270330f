//! The second phase of configuration: [`Settings`] (each value parsed on its
//! own) become one [`Config`], checked as a whole, that is passed down. Rules
//! that tie settings together (the `dynamodb` store needs a table) live here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use uploadgate_core::Subject;
use uploadgate_http::token::{JwtConfig, KeySource};
use uploadgate_http::{ClientIpSource, GateConfig, IdentityMode};

use crate::settings::{
    ClientIp, IdentitySource, LogFormat, MetricsFormat, SettingError, Settings, StoreChoice,
    TargetChoice, TokenUse,
};

/// Which state store to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// In process memory.
    Memory,
    /// The embedded durable file store, in the data directory.
    File,
    /// A DynamoDB table.
    Dynamodb {
        /// The table name.
        table: String,
        /// How long a cached denial is trusted.
        denial_ttl: Duration,
        /// The usage ledger's table, if the deployment keeps one.
        usage_table: Option<String>,
    },
}

/// Where uploads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// The embedded local bucket.
    Local,
    /// S3 through the standard AWS configuration.
    S3,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// What the router needs.
    pub gate: GateConfig,
    /// URL lifetime.
    pub url_ttl: Duration,
    /// Bucket name.
    pub bucket: String,
    /// State store.
    pub store: StoreKind,
    /// Upload target.
    pub target: TargetKind,
    /// Data directory (file store, local bucket).
    pub data_dir: PathBuf,
    /// API address.
    pub listen: SocketAddr,
    /// Local bucket address.
    pub s3_listen: SocketAddr,
    /// Log filter.
    pub log: String,
    /// Log line format.
    pub log_format: LogFormat,
    /// Timeouts and connection cap of each `serve` listener.
    pub server: crate::server::Limits,
    /// Upload mode on S3: the queue of the bucket's `ObjectCreated` events.
    pub settle_queue_url: Option<String>,
    /// Upload mode: the queue accepted uploads are handed off to (a log
    /// line without one).
    pub accepted_queue_url: Option<String>,
}

impl TryFrom<Settings> for Config {
    type Error = SettingError;

    fn try_from(s: Settings) -> Result<Self, SettingError> {
        let identity = identity(&s)?;
        let settlement = crate::settlement::settlement(&s)?;
        let store = match s.store {
            StoreChoice::Memory => StoreKind::Memory,
            StoreChoice::File => StoreKind::File,
            StoreChoice::Dynamodb => StoreKind::Dynamodb {
                table: s
                    .table
                    .ok_or_else(|| {
                        SettingError::new(
                            "UPLOADGATE_TABLE",
                            "the dynamodb store needs a table name (create one with `uploadgate table create`)",
                        )
                    })?
                    .0,
                denial_ttl: s.denial_ttl,
                usage_table: s.usage_table.map(|t| t.0),
            },
        };
        let client_ip = match s.client_ip {
            ClientIp::Peer => ClientIpSource::Peer,
            ClientIp::Cloudfront => ClientIpSource::CloudFront,
        };
        Ok(Config {
            gate: GateConfig {
                policy: s.limits.0,
                max_object_bytes: s.max_object_bytes.0,
                content_types: s.content_types.0,
                key_prefix: s.key_prefix.0,
                identity,
                client_ip,
                cors: s.cors_origins,
                origin_secret: s.origin_secret,
                fail_open: s.fail_open,
                emf_metrics: s.metrics == MetricsFormat::Emf,
                shadow: s.shadow,
                require_checksum: s.require_checksum,
                tiers: s.tiers.0,
                settlement,
            },
            url_ttl: s.url_ttl,
            bucket: s.bucket.0,
            store,
            target: match s.target {
                TargetChoice::Local => TargetKind::Local,
                TargetChoice::S3 => TargetKind::S3,
            },
            data_dir: s.data_dir,
            listen: s.listen,
            s3_listen: s.s3_listen,
            log: s.log,
            log_format: s.log_format,
            server: crate::server::Limits {
                header_timeout: s.header_timeout,
                body_timeout: s.body_timeout,
                idle_timeout: s.idle_timeout,
                max_connections: s.max_connections,
            },
            settle_queue_url: s.settle_queue_url.map(|u| u.0),
            accepted_queue_url: s.accepted_queue_url.map(|u| u.0),
        })
    }
}

/// The identity mode, and the settings that only it reads.
fn identity(s: &Settings) -> Result<IdentityMode, SettingError> {
    let jwt_only = [
        ("UPLOADGATE_JWT_ISSUER", s.jwt_issuer.is_some()),
        ("UPLOADGATE_JWT_AUDIENCE", s.jwt_audience.is_some()),
        ("UPLOADGATE_JWKS_URL", s.jwks_url.is_some()),
        ("UPLOADGATE_JWT_PUBLIC_KEY", s.jwt_public_key.is_some()),
        ("UPLOADGATE_TIER_CLAIM", s.tier_claim.is_some()),
        ("UPLOADGATE_TIERS", !s.tiers.0.is_empty()),
    ];
    if s.identity != IdentitySource::Jwt
        && let Some((name, _)) = jwt_only.iter().find(|(_, set)| *set)
    {
        // A token setting with another mode is a deployment that believes
        // it verifies tokens and does not: refuse it.
        return Err(SettingError::new(
            *name,
            "is only read with UPLOADGATE_IDENTITY=jwt (tokens and the tiers they name)",
        ));
    }
    match s.identity {
        IdentitySource::Header => Ok(IdentityMode::Header(s.identity_header.clone())),
        IdentitySource::Body => Ok(IdentityMode::Body),
        IdentitySource::Anonymous => {
            if let Some(l) = s
                .limits
                .0
                .limits()
                .iter()
                .find(|l| l.subject == Subject::User)
            {
                return Err(SettingError::new(
                    "UPLOADGATE_LIMITS",
                    format!(
                        "limit `{}` counts per user, but UPLOADGATE_IDENTITY=anonymous has no users; limit by `ip` instead",
                        l.name
                    ),
                ));
            }
            Ok(IdentityMode::Anonymous)
        }
        IdentitySource::Jwt => {
            let issuer = s.jwt_issuer.as_ref().ok_or_else(|| {
                SettingError::new(
                    "UPLOADGATE_JWT_ISSUER",
                    "required with UPLOADGATE_IDENTITY=jwt: the issuer whose tokens are accepted",
                )
            })?;
            let audiences = s.jwt_audience.as_ref().ok_or_else(|| {
                SettingError::new(
                    "UPLOADGATE_JWT_AUDIENCE",
                    "required with UPLOADGATE_IDENTITY=jwt: the app client id(s) tokens must be issued for",
                )
            })?;
            let keys = match (&s.jwt_public_key, &s.jwks_url) {
                (Some(_), Some(_)) => {
                    return Err(SettingError::new(
                        "UPLOADGATE_JWT_PUBLIC_KEY",
                        "give either a public key file or UPLOADGATE_JWKS_URL, not both",
                    ));
                }
                (Some(file), None) => KeySource::Static(file.key.clone()),
                (None, Some(url)) => KeySource::Jwks(url.0.clone()),
                (None, None) => KeySource::Jwks(format!(
                    "{}/.well-known/jwks.json",
                    issuer.0.trim_end_matches('/')
                )),
            };
            if s.tier_claim.is_some() == s.tiers.0.is_empty() {
                return Err(if s.tier_claim.is_some() {
                    SettingError::new(
                        "UPLOADGATE_TIER_CLAIM",
                        "no tiers are defined (UPLOADGATE_TIERS)",
                    )
                } else {
                    SettingError::new(
                        "UPLOADGATE_TIERS",
                        "tiers are chosen by a token claim: set UPLOADGATE_TIER_CLAIM",
                    )
                });
            }
            Ok(IdentityMode::Jwt(Box::new(JwtConfig {
                issuer: issuer.0.clone(),
                audiences: audiences.0.clone(),
                keys,
                token_use: s.jwt_token_use.map(|u| {
                    match u {
                        TokenUse::Access => "access",
                        TokenUse::Id => "id",
                    }
                    .to_owned()
                }),
                user_claim: s.user_claim.0.clone(),
                tier_claim: s.tier_claim.as_ref().map(|c| c.0.clone()),
                leeway: s.jwt_leeway,
                header: s.token_header.clone(),
            })))
        }
    }
}

impl Config {
    /// The configuration from `lookup` (setting names to values) over
    /// `defaults`, as [`Settings::from_lookup`] reads it.
    pub fn from_lookup(
        defaults: &[(&str, &str)],
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, SettingError> {
        Settings::from_lookup(defaults, lookup)?.try_into()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http::HeaderName;
    use uploadgate_http::CorsOrigins;

    /// The configuration of `pairs` as the environment, with no defaults.
    pub(crate) fn env(pairs: &[(&str, &str)]) -> Result<Config, SettingError> {
        Config::from_lookup(&[], |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
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
        assert!(
            matches!(&c.gate.identity, IdentityMode::Header(h) if h == HeaderName::from_static("x-user-id"))
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
            ("UPLOADGATE_LOG", "[[["),
            ("UPLOADGATE_METRICS", "statsd"),
            ("UPLOADGATE_DATA_DIR", ""),
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
    fn identity_modes_refuse_what_they_cannot_honour() {
        // Anonymous mode has no users to limit.
        let e = env(&[
            ("UPLOADGATE_IDENTITY", "anonymous"),
            ("UPLOADGATE_LIMITS", "burst=ip:10/1m;uploads=user:5/3h"),
        ])
        .unwrap_err();
        assert_eq!(e.setting, "UPLOADGATE_LIMITS");
        assert!(e.message.contains("`uploads` counts per user"), "{e}");
        assert!(
            env(&[
                ("UPLOADGATE_IDENTITY", "anonymous"),
                ("UPLOADGATE_LIMITS", "burst=ip:10/1m")
            ])
            .is_ok()
        );
        // A token setting outside jwt mode would be a gate that believes it
        // verifies tokens.
        let e = env(&[("UPLOADGATE_JWT_ISSUER", "https://issuer.example.com")]).unwrap_err();
        assert_eq!(e.setting, "UPLOADGATE_JWT_ISSUER");
        // jwt needs an issuer and an audience; tiers need their claim.
        let jwt = [
            ("UPLOADGATE_IDENTITY", "jwt"),
            ("UPLOADGATE_JWT_ISSUER", "https://issuer.example.com"),
            ("UPLOADGATE_JWT_AUDIENCE", "client"),
        ];
        assert!(matches!(
            env(&jwt).unwrap().gate.identity,
            IdentityMode::Jwt(_)
        ));
        assert_eq!(
            env(&jwt[..2]).unwrap_err().setting,
            "UPLOADGATE_JWT_AUDIENCE"
        );
        let mut tiers = jwt.to_vec();
        tiers.push(("UPLOADGATE_TIERS", "pro=uploads=user:9/1h"));
        assert_eq!(env(&tiers).unwrap_err().setting, "UPLOADGATE_TIERS");
        tiers.push(("UPLOADGATE_TIER_CLAIM", "plan"));
        assert_eq!(env(&tiers).unwrap().gate.tiers.len(), 1);
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
                denial_ttl: Duration::from_secs(5),
                usage_table: None,
            }
        );
        let c = env(&[
            ("UPLOADGATE_STORE", "dynamodb"),
            ("UPLOADGATE_TABLE", "t_1.x-y"),
            ("UPLOADGATE_DENIAL_TTL", "0s"),
        ])
        .unwrap();
        assert!(matches!(c.store, StoreKind::Dynamodb { denial_ttl, .. } if denial_ttl.is_zero()));
        let e = env(&[("UPLOADGATE_STORE", "dynamodb")]).unwrap_err();
        assert_eq!(e.setting, "UPLOADGATE_TABLE");
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
}
