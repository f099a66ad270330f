use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

use crate::domain::Subject;

/// Why a policy string was refused. Each message names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy had no limits.
    #[error("no limits given; expected e.g. `uploads=user:5/3h`")]
    Empty,
    /// A limit did not have the `name=subject:amount/window[:algorithm]` shape.
    #[error("`{0}` is not of the form name=subject:amount/window[:algorithm]")]
    Shape(String),
    /// A limit name was invalid.
    #[error("limit name `{0}` must be 1-32 characters of a-z, A-Z, 0-9, _ or -")]
    Name(String),
    /// Two limits had the same name.
    #[error("limit name `{0}` is used twice")]
    DuplicateName(String),
    /// Unknown subject.
    #[error("unknown subject `{0}` (expected `user` or `ip`)")]
    Subject(String),
    /// Bad amount.
    #[error("amount `{0}` must be a positive whole count, or bytes such as 50MiB, 10MB, 1GiB")]
    Amount(String),
    /// Bad window.
    #[error("window `{0}` must be a positive length such as 90s, 15m, 3h, 24h, 30d, 1w or 1mo")]
    Window(String),
    /// Window out of range.
    #[error("window `{0}` must be between 1s and 400d")]
    WindowRange(String),
    /// Unknown algorithm.
    #[error("unknown algorithm `{0}` (expected sliding, gcra or fixed)")]
    Algorithm(String),
    /// A calendar window with an algorithm that needs a fixed length.
    #[error("limit `{0}`: calendar months (`mo`) only work with the fixed algorithm")]
    MonthNeedsFixed(String),
}

/// A limit's name, used in headers, responses and state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LimitName(String);

impl LimitName {
    /// Parses a limit name.
    pub fn parse(raw: &str) -> Result<Self, PolicyError> {
        let ok = !raw.is_empty()
            && raw.len() <= 32
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if ok {
            Ok(LimitName(raw.to_owned()))
        } else {
            Err(PolicyError::Name(raw.to_owned()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LimitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Each upload costs 1.
    Uploads,
    /// Each upload costs its declared size in bytes.
    Bytes,
}

impl Unit {
    /// The unit's name in responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Uploads => "uploads",
            Unit::Bytes => "bytes",
        }
    }
}

/// How much a limit allows per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amount {
    /// The unit counted.
    pub unit: Unit,
    /// The quota per window.
    pub value: NonZeroU64,
}

impl Amount {
    /// What one upload of `size` bytes costs against this amount.
    pub fn cost_of(&self, size: u64) -> u64 {
        match self.unit {
            Unit::Uploads => 1,
            Unit::Bytes => size,
        }
    }
}

impl FromStr for Amount {
    type Err = PolicyError;
    fn from_str(raw: &str) -> Result<Self, PolicyError> {
        let err = || PolicyError::Amount(raw.to_owned());
        let digits = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
        let (num, unit) = raw.split_at(digits);
        let n: u64 = num.parse().map_err(|_| err())?;
        let (unit, mult) = match unit.trim() {
            "" => (Unit::Uploads, 1),
            "B" => (Unit::Bytes, 1),
            "KB" => (Unit::Bytes, 1_000),
            "MB" => (Unit::Bytes, 1_000_000),
            "GB" => (Unit::Bytes, 1_000_000_000),
            "TB" => (Unit::Bytes, 1_000_000_000_000),
            "KiB" => (Unit::Bytes, 1 << 10),
            "MiB" => (Unit::Bytes, 1 << 20),
            "GiB" => (Unit::Bytes, 1 << 30),
            "TiB" => (Unit::Bytes, 1 << 40),
            _ => return Err(err()),
        };
        let value = n
            .checked_mul(mult)
            .and_then(NonZeroU64::new)
            .ok_or_else(err)?;
        Ok(Amount { unit, value })
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.value.get();
        match self.unit {
            Unit::Uploads => write!(f, "{v}"),
            Unit::Bytes => {
                for (suffix, m) in [
                    ("TiB", 1u64 << 40),
                    ("GiB", 1 << 30),
                    ("MiB", 1 << 20),
                    ("KiB", 1 << 10),
                ] {
                    if v.is_multiple_of(m) {
                        return write!(f, "{}{suffix}", v / m);
                    }
                }
                write!(f, "{v}B")
            }
        }
    }
}

/// A window length: a fixed duration, or a calendar month (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// A fixed length in milliseconds.
    Fixed(NonZeroU64),
    /// A UTC calendar month (fixed algorithm only).
    CalendarMonth,
}

impl Window {
    const MAX_MS: u64 = 400 * 86_400_000;

    /// The nominal length in milliseconds (31 days for a calendar month, the
    /// longest it can be; used for header `w=` and TTL bounds).
    pub fn nominal_ms(self) -> u64 {
        match self {
            Window::Fixed(ms) => ms.get(),
            Window::CalendarMonth => 31 * 86_400_000,
        }
    }
}

impl FromStr for Window {
    type Err = PolicyError;
    fn from_str(raw: &str) -> Result<Self, PolicyError> {
        let err = || PolicyError::Window(raw.to_owned());
        let digits = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
        let (num, unit) = raw.split_at(digits);
        let n: u64 = num.parse().map_err(|_| err())?;
        if unit == "mo" {
            return if n == 1 {
                Ok(Window::CalendarMonth)
            } else {
                Err(err())
            };
        }
        let mult = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return Err(err()),
        };
        let ms = n.checked_mul(mult).ok_or_else(err)?;
        if ms == 0 || ms > Self::MAX_MS {
            return Err(PolicyError::WindowRange(raw.to_owned()));
        }
        NonZeroU64::new(ms).map(Window::Fixed).ok_or_else(err)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = match self {
            Window::CalendarMonth => return f.write_str("1mo"),
            Window::Fixed(ms) => ms.get(),
        };
        for (suffix, m) in [
            ("w", 7 * 86_400_000u64),
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms % m == 0 {
                return write!(f, "{}{suffix}", ms / m);
            }
        }
        write!(f, "{ms}ms")
    }
}

/// The counting algorithm of a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// Exact rolling window: at most N in any window of length W. State is
    /// the admitted requests still inside the window, O(N).
    #[default]
    Sliding,
    /// Generic cell rate algorithm: a smooth rate of N per W with a burst of
    /// N. O(1) state (one timestamp), so it suits large N.
    Gcra,
    /// Calendar-aligned UTC windows (days start at midnight UTC, weeks on
    /// Monday, `1mo` on the first of the month): billing-style quotas.
    Fixed,
}

impl Algorithm {
    /// The algorithm's name in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sliding => "sliding",
            Algorithm::Gcra => "gcra",
            Algorithm::Fixed => "fixed",
        }
    }
}

impl FromStr for Algorithm {
    type Err = PolicyError;
    fn from_str(raw: &str) -> Result<Self, PolicyError> {
        match raw {
            "sliding" => Ok(Algorithm::Sliding),
            "gcra" => Ok(Algorithm::Gcra),
            "fixed" => Ok(Algorithm::Fixed),
            _ => Err(PolicyError::Algorithm(raw.to_owned())),
        }
    }
}

/// One named limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Its name.
    pub name: LimitName,
    /// Whose quota it counts.
    pub subject: Subject,
    /// How much per window.
    pub amount: Amount,
    /// The window.
    pub window: Window,
    /// The counting algorithm.
    pub algorithm: Algorithm,
}

impl FromStr for Limit {
    type Err = PolicyError;
    fn from_str(raw: &str) -> Result<Self, PolicyError> {
        let shape = || PolicyError::Shape(raw.to_owned());
        let (name, rest) = raw.split_once('=').ok_or_else(shape)?;
        let (subject, rest) = rest.split_once(':').ok_or_else(shape)?;
        let (amount, rest) = rest.split_once('/').ok_or_else(shape)?;
        let (window, algorithm) = match rest.split_once(':') {
            Some((w, a)) => (w, a.trim().parse()?),
            None => (rest, Algorithm::default()),
        };
        let name = LimitName::parse(name.trim())?;
        let subject = match subject.trim() {
            "user" => Subject::User,
            "ip" => Subject::Ip,
            other => return Err(PolicyError::Subject(other.to_owned())),
        };
        let window: Window = window.trim().parse()?;
        if window == Window::CalendarMonth && algorithm != Algorithm::Fixed {
            return Err(PolicyError::MonthNeedsFixed(name.0));
        }
        Ok(Limit {
            name,
            subject,
            amount: amount.trim().parse()?,
            window,
            algorithm,
        })
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={}:{}/{}:{}",
            self.name,
            self.subject,
            self.amount,
            self.window,
            self.algorithm.as_str()
        )
    }
}

/// The list of limits every upload is checked against. A request is allowed
/// only if every limit allows it, and then it consumes from all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    limits: Vec<Limit>,
}

impl Policy {
    /// Builds a policy from limits, refusing an empty list or duplicate names.
    pub fn new(limits: Vec<Limit>) -> Result<Self, PolicyError> {
        if limits.is_empty() {
            return Err(PolicyError::Empty);
        }
        for (i, l) in limits.iter().enumerate() {
            if limits[..i].iter().any(|o| o.name == l.name) {
                return Err(PolicyError::DuplicateName(l.name.0.clone()));
            }
        }
        Ok(Policy { limits })
    }

    /// The limits, in configuration order.
    pub fn limits(&self) -> &[Limit] {
        &self.limits
    }

    /// The subjects the policy counts, without repeats, users first.
    pub fn subjects(&self) -> Vec<Subject> {
        let mut s: Vec<Subject> = self.limits.iter().map(|l| l.subject).collect();
        s.sort();
        s.dedup();
        s
    }
}

impl FromStr for Policy {
    type Err = PolicyError;
    fn from_str(raw: &str) -> Result<Self, PolicyError> {
        let limits = raw
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Limit>, _>>()?;
        Policy::new(limits)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.limits.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{l}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let p: Policy = "uploads=user:5/3h;volume=user:50MiB/24h;burst=ip:30/1m:gcra"
            .parse()
            .unwrap();
        let l = p.limits();
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].name.as_str(), "uploads");
        assert_eq!(l[0].subject, Subject::User);
        assert_eq!(
            l[0].amount,
            Amount {
                unit: Unit::Uploads,
                value: NonZeroU64::new(5).unwrap()
            }
        );
        assert_eq!(
            l[0].window,
            Window::Fixed(NonZeroU64::new(3 * 3_600_000).unwrap())
        );
        assert_eq!(l[0].algorithm, Algorithm::Sliding);
        assert_eq!(l[1].amount.unit, Unit::Bytes);
        assert_eq!(l[1].amount.value.get(), 50 << 20);
        assert_eq!(l[2].subject, Subject::Ip);
        assert_eq!(l[2].algorithm, Algorithm::Gcra);
        assert_eq!(p.subjects(), vec![Subject::User, Subject::Ip]);
        assert_eq!(
            p.to_string(),
            "uploads=user:5/3h:sliding;volume=user:50MiB/1d:sliding;burst=ip:30/1m:gcra"
        );
    }

    #[test]
    fn round_trips_display() {
        let p: Policy = "a=user:5/90s;b=ip:1000/30d:fixed;c=user:1GiB/1mo:fixed;d=user:7B/1w"
            .parse()
            .unwrap();
        let again: Policy = p.to_string().parse().unwrap();
        assert_eq!(p, again);
    }

    #[test]
    fn refuses_bad_policies_with_a_reason() {
        let cases = [
            ("", PolicyError::Empty),
            ("uploads", PolicyError::Shape("uploads".into())),
            ("up loads=user:5/3h", PolicyError::Name("up loads".into())),
            (
                "a=user:5/3h;a=ip:5/3h",
                PolicyError::DuplicateName("a".into()),
            ),
            ("a=team:5/3h", PolicyError::Subject("team".into())),
            ("a=user:0/3h", PolicyError::Amount("0".into())),
            ("a=user:-1/3h", PolicyError::Amount("-1".into())),
            ("a=user:5XB/3h", PolicyError::Amount("5XB".into())),
            ("a=user:5/3y", PolicyError::Window("3y".into())),
            ("a=user:5/0s", PolicyError::WindowRange("0s".into())),
            ("a=user:5/500d", PolicyError::WindowRange("500d".into())),
            ("a=user:5/3h:leaky", PolicyError::Algorithm("leaky".into())),
            ("a=user:5/1mo", PolicyError::MonthNeedsFixed("a".into())),
        ];
        for (raw, want) in cases {
            assert_eq!(raw.parse::<Policy>(), Err(want), "{raw}");
        }
    }
}
