//! What a limit counts, and how much of it: a count of uploads or a number
//! of bytes, parsed from `5`, `50MiB`, `10MB` and printed back in the
//! largest binary unit that divides it, so a policy round-trips.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

use super::PolicyError;

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
