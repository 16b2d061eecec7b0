//! [`Money`]: exact amounts of USD, and [`cost`].
//!
//! [`Money`] is a `u64` of nano-USD (10⁻⁹ USD): exact, and up to about 18.4 billion
//! USD. In human-readable formats (JSON, YAML) it is a decimal string such as
//! `"0.15"` — a string because JSON numbers are floats to most clients — and in
//! postcard it is the plain integer. [`cost`] rounds once, half-up, to the nano.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string that is not an exact, non-negative decimal amount of USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("empty amount")]
    Empty,
    #[error("amounts cannot be negative")]
    Negative,
    #[error("expected a plain decimal such as \"0.15\" (digits, an optional '.' and up to 9 decimals; no sign, exponent, spaces or separators)")]
    Malformed,
    #[error("more than 9 decimals (finer than one nano-USD)")]
    TooPrecise,
    #[error("amount above 18446744073.709551615 USD")]
    Overflow,
}

/// An amount of US dollars in nano-USD (10⁻⁹ USD), exact and never negative.
///
/// A nano is fine enough that every published price is exact and so is the cost of
/// any number of tokens at a price with at most 3 decimals per million tokens (0.15
/// USD per million is 150 nano-USD per token); finer prices are rounded once per
/// request, to the nano (see [`cost`]). A `u64` still holds 18.4 billion USD.
/// Serialised as a decimal string in human-readable formats and as the integer
/// count of nanos in binary ones (see the module docs).
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(u64);

/// A price per million tokens, the unit every provider publishes.
pub type Price = Money;

impl Money {
    pub const NANOS_PER_USD: u64 = 1_000_000_000;
    pub const ZERO: Money = Money(0);
    pub const MAX: Money = Money(u64::MAX);

    pub const fn from_nanos(nanos: u64) -> Money {
        Money(nanos)
    }

    /// Whole dollars, or `None` above [`Money::MAX`].
    pub const fn from_usd(usd: u64) -> Option<Money> {
        match usd.checked_mul(Self::NANOS_PER_USD) {
            Some(n) => Some(Money(n)),
            None => None,
        }
    }

    pub const fn nanos(self) -> u64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The sum, or `None` on overflow (callers decide whether that is an error).
    pub const fn checked_add(self, other: Money) -> Option<Money> {
        match self.0.checked_add(other.0) {
            Some(n) => Some(Money(n)),
            None => None,
        }
    }

    /// The sum, capped at [`Money::MAX`]; right for spend totals, where a cap errs
    /// towards refusing requests rather than wrapping to zero.
    pub const fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// The difference, or `None` if `other` is larger.
    pub const fn checked_sub(self, other: Money) -> Option<Money> {
        match self.0.checked_sub(other.0) {
            Some(n) => Some(Money(n)),
            None => None,
        }
    }

    /// Parses an exact decimal amount of USD: ASCII digits, optionally a `.` and 1 to 9
    /// more digits (`"0.15"`, `"3"`, `"0.000000001"`). Signs, exponents, spaces,
    /// separators, a bare `.5` or `5.`, more than 9 decimals (even trailing zeros)
    /// and amounts above [`Money::MAX`] are refused, so what is stored is exactly
    /// what the operator wrote.
    pub fn from_decimal_str(s: &str) -> Result<Money, MoneyError> {
        if s.is_empty() {
            return Err(MoneyError::Empty);
        }
        if s.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        let (int, frac) = match s.split_once('.') {
            Some((int, frac)) => (int, Some(frac)),
            None => (s, None),
        };
        let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
            return Err(MoneyError::Malformed);
        }
        let frac = frac.unwrap_or("");
        if frac.len() > 9 {
            return Err(MoneyError::TooPrecise);
        }
        let mut whole: u64 = 0;
        for b in int.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u64::from(b - b'0')))
                .ok_or(MoneyError::Overflow)?;
        }
        let mut nanos: u64 = 0;
        for i in 0..9 {
            let digit = frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
            nanos = nanos * 10 + digit;
        }
        whole
            .checked_mul(Self::NANOS_PER_USD)
            .and_then(|w| w.checked_add(nanos))
            .map(Money)
            .ok_or(MoneyError::Overflow)
    }
}

/// The shortest exact decimal: `0`, `3`, `0.15`, `0.000000001`. It parses back with
/// [`Money::from_decimal_str`] to the same value.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / Self::NANOS_PER_USD;
        let mut frac = self.0 % Self::NANOS_PER_USD;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        // Nine digits, then drop the trailing zeros (frac > 0, so one digit stays).
        let mut digits = [b'0'; 9];
        for d in digits.iter_mut().rev() {
            *d = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        let len = 9 - digits.iter().rev().take_while(|&&d| d == b'0').count();
        let digits = core::str::from_utf8(&digits[..len]).map_err(|_| fmt::Error)?;
        write!(f, "{whole}.{digits}")
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${self}")
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::from_decimal_str(s)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Money {
    /// Human-readable formats accept only the decimal string: a JSON or YAML number
    /// would arrive as a float (inexact) or as an integer of unclear unit.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DecimalVisitor;

        impl serde::de::Visitor<'_> for DecimalVisitor {
            type Value = Money;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount of USD as a decimal string, such as \"0.15\"")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Money, E> {
                Money::from_decimal_str(v).map_err(E::custom)
            }
        }

        if deserializer.is_human_readable() {
            deserializer.deserialize_str(DecimalVisitor)
        } else {
            u64::deserialize(deserializer).map(Money)
        }
    }
}

/// Rounds an exact amount in units of 10⁻⁶ nano-USD to the nano, half-up, capped at
/// [`Money::MAX`].
pub(crate) fn round_micro_nanos(exact: u128) -> Money {
    let q = exact / 1_000_000;
    let r = exact % 1_000_000;
    let q = if r >= 500_000 { q + 1 } else { q };
    Money(u64::try_from(q).unwrap_or(u64::MAX))
}

/// The cost of `tokens` at a price of `per_million` per million tokens.
///
/// Computed exactly as `tokens × per_million / 10⁶` in `u128` (no intermediate
/// rounding, no overflow), then rounded once to the nano-USD, half-up: a remainder
/// of exactly half a nano rounds up. The rounding error is therefore at most half a
/// nano per call. A result above [`Money::MAX`] (about 18.4 billion USD, only
/// reachable with absurd inputs) is capped at `Money::MAX`, which refuses the
/// request under any budget instead of wrapping to a small amount.
pub fn cost(tokens: u64, per_million: Money) -> Money {
    round_micro_nanos(u128::from(tokens) * u128::from(per_million.0))
}
