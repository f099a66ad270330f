//! The value types of the settings, each parsed once from text (a flag, an
//! environment variable or a TOML value) by its `FromStr`. Their errors are
//! the second half of the one-line message that names the setting.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http::HeaderName;
use uploadgate_core::{Algorithm, Amount, Policy, Unit, codec};

/// A policy whose per-subject state fits one store item.
///
/// Refused here rather than at the first request, on every store, so a
/// policy that works locally also works on DynamoDB: a sliding window
/// remembers every upload in it, and [`codec::max_encoded_len`] bounds how
/// large that can get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits(pub Policy);

impl FromStr for Limits {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let policy: Policy = raw.parse().map_err(|e| format!("{e}"))?;
        check_state_size(&policy)?;
        Ok(Limits(policy))
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Refuses a policy whose state could outgrow [`codec::MAX_STATE_BYTES`].
pub fn check_state_size(policy: &Policy) -> Result<(), String> {
    for subject in policy.subjects() {
        match codec::max_encoded_len(policy, subject) {
            Some(n) if n <= codec::MAX_STATE_BYTES => {}
            Some(n) => {
                return Err(format!(
                    "the sliding-window state of the `{subject}` limits could reach {n} bytes, over the {}-byte budget of one store item (a sliding limit remembers every upload in its window); lower the amount, or use `:gcra` or `:fixed`, whose state is constant",
                    codec::MAX_STATE_BYTES
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
                return Err(format!(
                    "sliding limit `{}` counts bytes, and no count limit on `{subject}` bounds how many uploads it must remember; add one (e.g. uploads={subject}:100/24h), or use `:gcra` or `:fixed`",
                    names.join("`, `")
                ));
            }
        }
    }
    Ok(())
}

/// A size in bytes: a plain number, or a number with a unit (`50MiB`,
/// `10MB`), at least 1 byte and at most 5 GiB (the most one S3 `PUT` takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectBytes(pub u64);

impl ObjectBytes {
    const MAX: u64 = 5 << 30;
}

impl FromStr for ObjectBytes {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let n = match raw.parse::<u64>() {
            Ok(n) => n,
            Err(_) => match raw.parse::<Amount>() {
                Ok(Amount {
                    unit: Unit::Bytes,
                    value,
                }) => value.get(),
                _ => {
                    return Err(format!(
                        "`{raw}` is not a size in bytes (e.g. 52428800 or 50MiB)"
                    ));
                }
            },
        };
        match n {
            0 => Err("must be at least 1 byte".into()),
            n if n > Self::MAX => Err("a single presigned PUT takes at most 5 GiB".into()),
            n => Ok(ObjectBytes(n)),
        }
    }
}

impl fmt::Display for ObjectBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Comma-separated media types, stored lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentTypes(pub Vec<String>);

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl FromStr for ContentTypes {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let mut types = Vec::new();
        for ct in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let ok = ct
                .split_once('/')
                .is_some_and(|(t, s)| is_token(t) && is_token(s));
            if !ok {
                return Err(format!("`{ct}` is not a media type like application/pdf"));
            }
            types.push(ct.to_ascii_lowercase());
        }
        if types.is_empty() {
            return Err("at least one content type is required".into());
        }
        Ok(ContentTypes(types))
    }
}

impl fmt::Display for ContentTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// A duration in `humantime` form (`90s`, `5m`, `3h`), within a range.
fn duration_between(raw: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let raw = raw.trim();
    let range = || {
        format!(
            "`{raw}` must be a duration from {} to {}, like 5m",
            humantime::format_duration(min),
            humantime::format_duration(max)
        )
    };
    // `0` alone is a duration of nothing, as `0s` is.
    let d = if raw == "0" {
        Duration::ZERO
    } else {
        humantime::parse_duration(raw).map_err(|_| range())?
    };
    if d < min || d > max {
        return Err(range());
    }
    Ok(d)
}

/// The lifetime of a presigned URL: 1 s to 12 h. Role credentials sign
/// them, and a URL dies with its credentials, so keep it short.
pub fn url_ttl(raw: &str) -> Result<Duration, String> {
    duration_between(raw, Duration::from_secs(1), Duration::from_secs(12 * 3600))
}

/// How long a cached denial is trusted: 0 s to 5 min.
pub fn denial_ttl(raw: &str) -> Result<Duration, String> {
    duration_between(raw, Duration::ZERO, Duration::from_secs(300))
}

/// `UPLOADGATE_SETTLE_GRACE`: 1m to 24h.
pub fn settle_grace(raw: &str) -> Result<Duration, String> {
    duration_between(raw, Duration::from_secs(60), Duration::from_secs(24 * 3600))
}

/// An S3 bucket name (3-63 of a-z, 0-9, `.`, `-`, starting and ending
/// with a letter or digit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketName(pub String);

impl FromStr for BucketName {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let b = raw.trim();
        let ok = (3..=63).contains(&b.len())
            && b.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
            && b.starts_with(|c: char| c.is_ascii_alphanumeric())
            && b.ends_with(|c: char| c.is_ascii_alphanumeric());
        if ok {
            Ok(BucketName(b.to_owned()))
        } else {
            Err(format!(
                "`{b}` is not a valid S3 bucket name (3-63 of a-z, 0-9, '.', '-')"
            ))
        }
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The prefix of every object key: empty or ending in `/`, no `.`/`..`
/// segment, not starting with `/`, of a-z A-Z 0-9 / - _ .
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrefix(pub String);

impl FromStr for KeyPrefix {
    type Err = String;
    fn from_str(p: &str) -> Result<Self, String> {
        let ok = (p.is_empty() || p.ends_with('/'))
            && !p.starts_with('/')
            && p.len() <= 256
            && p.split('/').all(|s| s != "." && s != "..")
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
        if ok {
            Ok(KeyPrefix(p.to_owned()))
        } else {
            Err(format!(
                "`{p}` must be empty or end with `/`, use only a-z A-Z 0-9 / - _ ., and not start with `/`"
            ))
        }
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DynamoDB table name (3-255 of a-z A-Z 0-9 _ . -).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName(pub String);

impl FromStr for TableName {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let t = raw.trim();
        if t.is_empty() {
            return Err(
                "the dynamodb store needs a table name (create one with `uploadgate table create`)"
                    .into(),
            );
        }
        let ok = (3..=255).contains(&t.len())
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if ok {
            Ok(TableName(t.to_owned()))
        } else {
            Err(format!(
                "`{t}` is not a DynamoDB table name (3-255 of a-z A-Z 0-9 _ . -)"
            ))
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A request header that carries the caller's identity. Never
/// `authorization`: CloudFront origin access control overwrites it.
pub fn identity_header(raw: &str) -> Result<HeaderName, String> {
    let h = raw.trim().to_ascii_lowercase();
    let name =
        HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("`{h}` is not a header name"))?;
    if name == http::header::AUTHORIZATION {
        return Err(
            "must not be `authorization`: CloudFront origin access control overwrites it".into(),
        );
    }
    Ok(name)
}

/// A directory path; not empty.
pub fn data_dir(raw: &str) -> Result<std::path::PathBuf, String> {
    if raw.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(raw.into())
}

/// An `http` or `https` URL (an issuer, a JWKS location).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(pub String);

impl FromStr for HttpUrl {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let ok = raw
            .parse::<http::Uri>()
            .is_ok_and(|u| matches!(u.scheme_str(), Some("https" | "http")) && u.host().is_some());
        if ok {
            Ok(HttpUrl(raw.to_owned()))
        } else {
            Err(format!("`{raw}` is not an https:// (or http://) URL"))
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Comma-separated names (audiences): at least one, none empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names(pub Vec<String>);

impl FromStr for Names {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let names: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            return Err("give at least one, comma-separated".into());
        }
        Ok(Names(names))
    }
}

impl fmt::Display for Names {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// A JWT claim name (`sub`, `custom:plan`, `cognito:groups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimName(pub String);

impl FromStr for ClaimName {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let c = raw.trim();
        if c.is_empty() || c.len() > 128 || c.chars().any(char::is_whitespace) {
            return Err(format!(
                "`{c}` is not a claim name (1-128 characters, no spaces)"
            ));
        }
        Ok(ClaimName(c.to_owned()))
    }
}

impl fmt::Display for ClaimName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A PEM public key file, read and parsed when the setting is.
#[derive(Debug, Clone)]
pub struct PublicKeyFile {
    /// The file.
    pub path: std::path::PathBuf,
    /// Its key.
    pub key: uploadgate_http::token::PublicKey,
}

impl FromStr for PublicKeyFile {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let path = std::path::PathBuf::from(raw.trim());
        let pem =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let key = uploadgate_http::token::PublicKey::from_pem(&pem)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(PublicKeyFile { path, key })
    }
}

/// A request header that carries the token (`authorization` by default;
/// another one behind CloudFront origin access control, which overwrites
/// `authorization`).
pub fn token_header(raw: &str) -> Result<HeaderName, String> {
    let h = raw.trim().to_ascii_lowercase();
    HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("`{h}` is not a header name"))
}

/// The clock skew allowed on a token's `exp` and `nbf`: 0 s to 60 s.
pub fn jwt_leeway(raw: &str) -> Result<Duration, String> {
    duration_between(raw, Duration::ZERO, Duration::from_secs(60))
}

/// Named policies, `name=<limits>|name=<limits>`, each in the
/// `UPLOADGATE_LIMITS` grammar. Errors quote the input escaped, on one line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tiers(pub Vec<(String, Policy)>);

impl FromStr for Tiers {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let mut tiers: Vec<(String, Policy)> = Vec::new();
        for part in raw.split('|').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, limits) = part.split_once('=').ok_or_else(|| {
                format!("`{}` is not of the form tier=<limits>", part.escape_debug())
            })?;
            let name = name.trim();
            let ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c));
            if !ok {
                return Err(format!(
                    "tier name `{}` must be 1-64 of a-z A-Z 0-9 _ - . :",
                    name.escape_debug()
                ));
            }
            if tiers.iter().any(|(n, _)| n == name) {
                return Err(format!("tier `{name}` is defined twice"));
            }
            let Limits(policy) = limits.parse().map_err(|e| format!("tier `{name}`: {e}"))?;
            tiers.push((name.to_owned(), policy));
        }
        Ok(Tiers(tiers))
    }
}

impl fmt::Display for Tiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, policy)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            write!(f, "{name}={policy}")?;
        }
        Ok(())
    }
}

/// The header timeout of `serve`: 1 s to 5 min.
pub fn header_timeout(raw: &str) -> Result<Duration, String> {
    duration_between(raw, Duration::from_secs(1), Duration::from_secs(300))
}

/// The body timeout of `serve`: 1 s to 10 min.
pub fn body_timeout(raw: &str) -> Result<Duration, String> {
    duration_between(raw, Duration::from_secs(1), Duration::from_secs(600))
}

/// The idle keep-alive timeout of `serve`: 1 s to 1 h.
pub fn idle_timeout(raw: &str) -> Result<Duration, String> {
    duration_between(raw, Duration::from_secs(1), Duration::from_secs(3600))
}

/// The connection cap of `serve`: 1 to 1,000,000.
pub fn max_connections(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{}` must be a whole number from 1 to 1000000",
            raw.trim()
        )),
    }
}

/// A `tracing` `EnvFilter` directive, checked by parsing it.
pub fn log_filter(raw: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(raw.trim())
        .map(|_| raw.trim().to_owned())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_plain_bytes_or_units_within_one_put() {
        assert_eq!("52428800".parse(), Ok(ObjectBytes(50 << 20)));
        assert_eq!("50MiB".parse(), Ok(ObjectBytes(50 << 20)));
        assert_eq!("10MB".parse(), Ok(ObjectBytes(10_000_000)));
        assert!("0".parse::<ObjectBytes>().is_err());
        assert!("6GiB".parse::<ObjectBytes>().is_err());
        assert!("lots".parse::<ObjectBytes>().is_err());
        assert!("5".parse::<ObjectBytes>().is_ok());
    }

    #[test]
    fn durations_are_humantime_within_their_range() {
        assert_eq!(url_ttl("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(url_ttl("12h"), Ok(Duration::from_secs(43_200)));
        assert!(url_ttl("8d").is_err());
        assert!(url_ttl("0s").is_err());
        assert!(url_ttl("soon").is_err());
        assert_eq!(denial_ttl("0s"), Ok(Duration::ZERO));
        assert_eq!(denial_ttl("0"), Ok(Duration::ZERO));
        assert!(denial_ttl("10m").is_err());
        assert!(denial_ttl("-1s").is_err());
    }

    #[test]
    fn names_and_prefixes() {
        assert!("uploads".parse::<BucketName>().is_ok());
        assert!("My_Bucket".parse::<BucketName>().is_err());
        assert!("uploads/".parse::<KeyPrefix>().is_ok());
        assert!("".parse::<KeyPrefix>().is_ok());
        assert!("../up/".parse::<KeyPrefix>().is_err());
        assert!("uploads".parse::<KeyPrefix>().is_err());
        assert!("t_1.x-y".parse::<TableName>().is_ok());
        assert!("no spaces allowed".parse::<TableName>().is_err());
        assert!(identity_header("X-User-Id").is_ok());
        assert!(identity_header("Authorization").is_err());
        assert!("pdf".parse::<ContentTypes>().is_err());
        assert!(
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc"
                .parse::<HttpUrl>()
                .is_ok()
        );
        assert!("cognito-idp.example.com".parse::<HttpUrl>().is_err());
        assert!("ftp://x.example.com".parse::<HttpUrl>().is_err());
        assert!(" , ".parse::<Names>().is_err());
        assert_eq!("a, b".parse(), Ok(Names(vec!["a".into(), "b".into()])));
        assert!("custom:plan".parse::<ClaimName>().is_ok());
        assert!("a b".parse::<ClaimName>().is_err());
        assert!(jwt_leeway("61s").is_err());
        assert_eq!(
            max_connections("0"),
            Err("`0` must be a whole number from 1 to 1000000".into())
        );
        assert_eq!(max_connections("512"), Ok(512));
        assert_eq!(jwt_leeway("60s"), Ok(Duration::from_secs(60)));
    }

    #[test]
    fn tiers_are_named_policies() {
        let t: Tiers =
            "pro=uploads=user:100/3h;volume=user:5GiB/30d:gcra|team=uploads=user:1000/1d:fixed"
                .parse()
                .unwrap();
        assert_eq!(t.0.len(), 2);
        assert_eq!(t.0[0].0, "pro");
        assert_eq!(t.0[0].1.limits().len(), 2);
        assert_eq!(t.0[1].0, "team");
        assert_eq!(t.to_string().parse::<Tiers>(), Ok(t));
        assert_eq!("".parse(), Ok(Tiers::default()));
        for bad in [
            "pro",
            "pro=x",
            "a b=uploads=user:1/1h",
            "p=uploads=user:1/1h|p=uploads=user:2/1h",
        ] {
            assert!(bad.parse::<Tiers>().is_err(), "{bad}");
        }
        // Each tier's state must fit one item, like UPLOADGATE_LIMITS.
        assert!("big=uploads=user:5000/30d".parse::<Tiers>().is_err());
    }

    /// Found by the `limits` fuzz target: control characters in a message.
    #[test]
    fn tier_errors_are_one_line() {
        for (raw, want) in [
            ("p\nro", "`p\\nro` is not of the form"),
            (
                "p\x1bro=uploads=user:1/1h",
                "tier name `p\\u{1b}ro` must be",
            ),
            (
                "pro=uploads=us\ner:1/1h",
                "tier `pro`: unknown subject `us\\ner`",
            ),
        ] {
            let shown = raw.parse::<Tiers>().unwrap_err();
            assert!(shown.starts_with(want), "{shown}");
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
        }
    }
}
