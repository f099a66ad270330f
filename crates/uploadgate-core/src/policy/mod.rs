//! The policy: the limits every upload is checked against, parsed once
//! from `name=subject:amount/window[:algorithm];...` into types that cannot
//! hold an invalid limit, and printed back in the same grammar.
//!
//! The algorithm and its window are one value ([`Algorithm`]), because not
//! every pairing makes sense: a sliding window or GCRA needs a fixed length
//! ([`Span`]), while the fixed algorithm also counts calendar months
//! ([`Window`]). Parsing refuses the rest with a message naming the limit.

use std::fmt;
use std::str::FromStr;

use crate::domain::Subject;

mod amount;
mod window;

pub use amount::{Amount, Unit};
pub use window::{Span, Window};

/// Why a policy string was refused. Each message names the offending part,
/// escaped (`\n`, `\u{1b}`), so it stays on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy had no limits.
    #[error("no limits given; expected e.g. `uploads=user:5/3h`")]
    Empty,
    /// A limit did not have the `name=subject:amount/window[:algorithm]` shape.
    #[error("`{}` is not of the form name=subject:amount/window[:algorithm]", .0.escape_debug())]
    Shape(String),
    /// A limit name was invalid.
    #[error("limit name `{}` must be 1-32 characters of a-z, A-Z, 0-9, _ or -", .0.escape_debug())]
    Name(String),
    /// Two limits had the same name.
    #[error("limit name `{0}` is used twice")]
    DuplicateName(String),
    /// Unknown subject.
    #[error("unknown subject `{}` (expected `user` or `ip`)", .0.escape_debug())]
    Subject(String),
    /// Bad amount.
    #[error(
        "amount `{}` must be a positive whole count, or bytes such as 50MiB, 10MB, 1GiB",
        .0.escape_debug()
    )]
    Amount(String),
    /// Bad window.
    #[error(
        "window `{}` must be a positive length such as 90s, 15m, 3h, 24h, 30d, 1w or 1mo",
        .0.escape_debug()
    )]
    Window(String),
    /// Window out of range.
    #[error("window `{}` must be between 1s and 400d", .0.escape_debug())]
    WindowRange(String),
    /// Unknown algorithm.
    #[error("unknown algorithm `{}` (expected sliding, gcra or fixed)", .0.escape_debug())]
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

/// How a limit counts, with the window it counts over. Each algorithm takes
/// the window kind it needs, so a sliding or GCRA limit over a calendar
/// month cannot be built:
///
/// ```compile_fail,E0308
/// use uploadgate_core::{Algorithm, Window};
/// let _ = Algorithm::Sliding(Window::CalendarMonth);
/// ```
///
/// ```
/// use uploadgate_core::{Algorithm, Span, Window};
/// let hour = Span::from_millis(3_600_000).ok_or("zero")?;
/// assert_eq!(Algorithm::Gcra(hour).window(), Window::Span(hour));
/// assert_eq!(Algorithm::Fixed(Window::CalendarMonth).as_str(), "fixed");
/// # Ok::<(), &str>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Exact rolling window: at most N in any span of length W. State is
    /// the admitted requests still inside the window, O(N).
    Sliding(Span),
    /// Generic cell rate algorithm: a smooth rate of N per W with a burst of
    /// N. O(1) state (one timestamp), so it suits large N.
    Gcra(Span),
    /// Calendar-aligned UTC windows (days start at midnight UTC, weeks on
    /// Monday, `1mo` on the first of the month): billing-style quotas.
    Fixed(Window),
}

impl Algorithm {
    /// The algorithm's name in configuration: `sliding`, `gcra` or `fixed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sliding(_) => "sliding",
            Algorithm::Gcra(_) => "gcra",
            Algorithm::Fixed(_) => "fixed",
        }
    }

    /// The window the algorithm counts over.
    pub fn window(self) -> Window {
        match self {
            Algorithm::Sliding(span) | Algorithm::Gcra(span) => Window::Span(span),
            Algorithm::Fixed(window) => window,
        }
    }

    /// The constructor an algorithm name stands for in the grammar; it
    /// refuses (`None`) a window the algorithm cannot count over.
    fn named(raw: &str) -> Result<fn(Window) -> Option<Algorithm>, PolicyError> {
        match raw {
            "sliding" => Ok(|w| w.span().map(Algorithm::Sliding)),
            "gcra" => Ok(|w| w.span().map(Algorithm::Gcra)),
            "fixed" => Ok(|w| Some(Algorithm::Fixed(w))),
            _ => Err(PolicyError::Algorithm(raw.to_owned())),
        }
    }
}

/// One named limit: `name=subject:amount/window[:algorithm]`.
///
/// Every field is valid on its own and the algorithm carries its window, so
/// any `Limit` that can be built is one the limiter can run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Its name.
    pub name: LimitName,
    /// Whose quota it counts.
    pub subject: Subject,
    /// How much per window.
    pub amount: Amount,
    /// The counting algorithm and its window.
    pub algorithm: Algorithm,
}

impl Limit {
    /// The window the limit counts over, for display; its
    /// [`nominal_ms`](Window::nominal_ms) is the length reported to clients.
    pub fn window(&self) -> Window {
        self.algorithm.window()
    }
}

impl FromStr for Limit {
    type Err = PolicyError;
    fn from_str(raw: &str) -> Result<Self, PolicyError> {
        let shape = || PolicyError::Shape(raw.to_owned());
        let (name, rest) = raw.split_once('=').ok_or_else(shape)?;
        let (subject, rest) = rest.split_once(':').ok_or_else(shape)?;
        let (amount, rest) = rest.split_once('/').ok_or_else(shape)?;
        let (window, algorithm) = match rest.split_once(':') {
            Some((w, a)) => (w, Algorithm::named(a.trim())?),
            None => (rest, Algorithm::named("sliding")?),
        };
        let name = LimitName::parse(name.trim())?;
        let subject = match subject.trim() {
            "user" => Subject::User,
            "ip" => Subject::Ip,
            other => return Err(PolicyError::Subject(other.to_owned())),
        };
        let window: Window = window.trim().parse()?;
        let Some(algorithm) = algorithm(window) else {
            return Err(PolicyError::MonthNeedsFixed(name.0));
        };
        Ok(Limit {
            name,
            subject,
            amount: amount.trim().parse()?,
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
            self.window(),
            self.algorithm.as_str()
        )
    }
}

/// The list of limits every upload is checked against. A request is allowed
/// only if every limit allows it, and then it consumes from all of them.
///
/// ```
/// use uploadgate_core::{Algorithm, Policy, Subject, Unit, Window};
///
/// let policy: Policy = "uploads=user:5/3h;volume=user:50MiB/1d;month=ip:10GiB/1mo:fixed"
///     .parse()?;
/// let [uploads, volume, month] = policy.limits() else {
///     panic!("three limits");
/// };
/// assert_eq!(uploads.name.as_str(), "uploads");
/// assert_eq!((uploads.subject, uploads.amount.unit), (Subject::User, Unit::Uploads));
/// assert_eq!(uploads.amount.value.get(), 5);
/// assert_eq!(uploads.algorithm.as_str(), "sliding");
/// assert_eq!(uploads.window().nominal_ms(), 3 * 3_600_000);
/// assert_eq!(volume.amount.value.get(), 50 << 20);
/// assert!(matches!(month.algorithm, Algorithm::Fixed(Window::CalendarMonth)));
/// assert_eq!(month.window().to_string(), "1mo");
/// assert_eq!(policy.subjects(), [Subject::User, Subject::Ip]);
/// // Printed back in the same grammar, with every algorithm spelled out.
/// assert_eq!(
///     policy.to_string(),
///     "uploads=user:5/3h:sliding;volume=user:50MiB/1d:sliding;month=ip:10GiB/1mo:fixed"
/// );
/// // A sliding window needs a fixed length.
/// let err = "burst=ip:30/1mo:sliding".parse::<Policy>().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "limit `burst`: calendar months (`mo`) only work with the fixed algorithm"
/// );
/// # Ok::<(), uploadgate_core::PolicyError>(())
/// ```
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
    use std::num::NonZeroU64;

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
        let three_hours = Span::from_millis(3 * 3_600_000).unwrap();
        assert_eq!(l[0].window(), Window::Span(three_hours));
        assert_eq!(l[0].algorithm, Algorithm::Sliding(three_hours));
        assert_eq!(l[1].amount.unit, Unit::Bytes);
        assert_eq!(l[1].amount.value.get(), 50 << 20);
        assert_eq!(l[2].subject, Subject::Ip);
        assert_eq!(
            l[2].algorithm,
            Algorithm::Gcra(Span::from_millis(60_000).unwrap())
        );
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

    /// Found by the `limits` fuzz target: a message quoted control
    /// characters as they were, a line break among them.
    #[test]
    fn messages_are_one_line() {
        let cases = [
            ("a\nb", "`a\\nb` is not of the form"),
            ("u\tp=user:5/3h", "limit name `u\\tp` must be"),
            ("a=us\ner:5/3h", "unknown subject `us\\ner`"),
            ("a=user:5\rx/3h", "amount `5\\rx` must be"),
            ("a=user:5/3\u{1b}h", "window `3\\u{1b}h` must be"),
            (
                "a=user:5/3h:gc\u{2028}ra",
                "unknown algorithm `gc\\u{2028}ra`",
            ),
        ];
        for (raw, want) in cases {
            let shown = raw.parse::<Policy>().unwrap_err().to_string();
            assert!(shown.starts_with(want), "{shown}");
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
        }
    }
}
