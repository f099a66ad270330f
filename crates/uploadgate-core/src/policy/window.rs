//! The time a limit counts over.
//!
//! Two types, because the algorithms need two different things: a sliding
//! window and GCRA slide over a fixed length of time, a [`Span`]; the fixed
//! algorithm counts in calendar-aligned windows, a [`Window`], which is
//! either a span aligned to the epoch or a UTC calendar month, whose length
//! varies. The algorithm enum ([`Algorithm`](super::Algorithm)) takes the
//! one its algorithm needs, so a sliding limit over a calendar month cannot
//! be built. `Window` is also how every limit's window is shown.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;
use std::time::Duration;

use super::PolicyError;

const DAY_MS: u64 = 86_400_000;

/// A fixed length of time, at least one millisecond: the window of a
/// sliding or GCRA limit, or a fixed-length calendar window.
///
/// The policy grammar accepts 1 s to 400 d in whole units (`90s`, `15m`,
/// `3h`, `1d`, `1w`); the algorithms are exact for any non-zero length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(NonZeroU64);

impl Span {
    /// A span of `ms` milliseconds.
    pub const fn new(ms: NonZeroU64) -> Self {
        Span(ms)
    }

    /// A span of `ms` milliseconds, or `None` for zero.
    pub const fn from_millis(ms: u64) -> Option<Self> {
        match NonZeroU64::new(ms) {
            Some(ms) => Some(Span(ms)),
            None => None,
        }
    }

    /// The length in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0.get()
    }

    /// The length as a [`Duration`].
    pub const fn as_duration(self) -> Duration {
        Duration::from_millis(self.0.get())
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.as_millis();
        for (suffix, m) in [
            ("w", 7 * DAY_MS),
            ("d", DAY_MS),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms.is_multiple_of(m) {
                return write!(f, "{}{suffix}", ms / m);
            }
        }
        write!(f, "{ms}ms")
    }
}

/// A calendar window, as the fixed algorithm counts in (UTC): a span
/// aligned to the epoch (days start at midnight, multiples of a week on
/// Monday), or a calendar month. Also the display form of any limit's
/// window ([`Limit::window`](super::Limit::window)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// A fixed length.
    Span(Span),
    /// A UTC calendar month (`1mo`).
    CalendarMonth,
}

impl Window {
    const MAX_MS: u64 = 400 * DAY_MS;

    /// The nominal length in milliseconds (31 days for a calendar month, the
    /// longest it can be; used for header `w=` and TTL bounds).
    pub fn nominal_ms(self) -> u64 {
        match self {
            Window::Span(span) => span.as_millis(),
            Window::CalendarMonth => 31 * DAY_MS,
        }
    }

    /// The fixed length, unless this is a calendar month.
    pub fn span(self) -> Option<Span> {
        match self {
            Window::Span(span) => Some(span),
            Window::CalendarMonth => None,
        }
    }
}

impl From<Span> for Window {
    fn from(span: Span) -> Self {
        Window::Span(span)
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
            "d" => DAY_MS,
            "w" => 7 * DAY_MS,
            _ => return Err(err()),
        };
        let ms = n.checked_mul(mult).ok_or_else(err)?;
        if ms > Self::MAX_MS {
            return Err(PolicyError::WindowRange(raw.to_owned()));
        }
        Span::from_millis(ms)
            .map(Window::Span)
            .ok_or_else(|| PolicyError::WindowRange(raw.to_owned()))
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Span(span) => span.fmt(f),
            Window::CalendarMonth => f.write_str("1mo"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_print_in_their_largest_whole_unit() {
        let show = |ms| Span::from_millis(ms).map(|s| s.to_string());
        assert_eq!(show(0), None);
        assert_eq!(show(90_000).as_deref(), Some("90s"));
        assert_eq!(show(3 * 3_600_000).as_deref(), Some("3h"));
        assert_eq!(show(14 * DAY_MS).as_deref(), Some("2w"));
        assert_eq!(show(1_500).as_deref(), Some("1500ms"));
        assert_eq!(Window::CalendarMonth.to_string(), "1mo");
    }

    #[test]
    fn windows_know_their_nominal_length() {
        let w: Window = "3h".parse().unwrap();
        assert_eq!(w.nominal_ms(), 10_800_000);
        assert_eq!(
            w.span().map(Span::as_duration),
            Some(Duration::from_secs(10_800))
        );
        assert_eq!(Window::CalendarMonth.nominal_ms(), 31 * DAY_MS);
        assert_eq!(Window::CalendarMonth.span(), None);
    }
}
