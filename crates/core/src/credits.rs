//! Credits: integer micro-credits with exact decimal parsing and printing.
//!
//! No float ever holds a balance (SPEC §3). Amounts travel over HTTP as decimal
//! numbers of credits with at most six decimals; they are parsed from their text so
//! that `0.1` is exactly 100,000 µcr.

use std::fmt;
use std::str::FromStr;

/// Micro-credits in one credit.
pub const MICROS_PER_CREDIT: i64 = 1_000_000;

/// An amount of credits, held as integer micro-credits (µcr).
///
/// May be negative: system accounts (`mint`) carry negative balances. Amounts that a
/// caller offers (bids, transfers) are parsed with [`Credits::parse_positive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Credits(i64);

/// Why a text or number is not a valid amount of credits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditsError {
    #[error("amount is empty")]
    Empty,
    #[error("amount {0:?} is not a decimal number")]
    Malformed(String),
    #[error("amount {0:?} has more than 6 decimals")]
    TooPrecise(String),
    #[error("amount {0:?} is negative")]
    Negative(String),
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("amount {0:?} is too large")]
    Overflow(String),
    #[error("amount is not a finite number")]
    NotFinite,
}

impl Credits {
    pub const ZERO: Credits = Credits(0);

    /// An amount from micro-credits.
    pub const fn from_micros(micros: i64) -> Self {
        Credits(micros)
    }

    /// An amount from whole credits; `None` on overflow.
    pub const fn from_credits(credits: i64) -> Option<Self> {
        match credits.checked_mul(MICROS_PER_CREDIT) {
            Some(m) => Some(Credits(m)),
            None => None,
        }
    }

    /// The amount in micro-credits.
    pub const fn micros(self) -> i64 {
        self.0
    }

    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn checked_add(self, other: Credits) -> Option<Credits> {
        self.0.checked_add(other.0).map(Credits)
    }

    pub fn checked_sub(self, other: Credits) -> Option<Credits> {
        self.0.checked_sub(other.0).map(Credits)
    }

    pub fn checked_neg(self) -> Option<Credits> {
        self.0.checked_neg().map(Credits)
    }

    /// Parses a non-negative decimal amount of credits (`"12"`, `"0.5"`, `"1e3"` is
    /// refused: amounts are plain decimals with at most six decimals).
    pub fn parse(text: &str) -> Result<Credits, CreditsError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(CreditsError::Empty);
        }
        let lower = t.to_ascii_lowercase();
        if matches!(
            lower.trim_start_matches(['+', '-']),
            "nan" | "inf" | "infinity"
        ) {
            return Err(CreditsError::NotFinite);
        }
        let (negative, digits) = match t.as_bytes()[0] {
            b'-' => (true, &t[1..]),
            b'+' => (false, &t[1..]),
            _ => (false, t),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => (i, f),
            None => (digits, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int_part.is_empty() && frac_part.is_empty())
            || !all_digits(int_part)
            || !all_digits(frac_part)
            || (digits.contains('.') && frac_part.is_empty() && int_part.is_empty())
        {
            return Err(CreditsError::Malformed(t.to_string()));
        }
        let frac_trimmed = frac_part.trim_end_matches('0');
        if frac_trimmed.len() > 6 {
            return Err(CreditsError::TooPrecise(t.to_string()));
        }
        let int_trimmed = int_part.trim_start_matches('0');
        let overflow = || CreditsError::Overflow(t.to_string());
        // i64::MAX µcr is about 9.2e12 credits: 13 integer digits at most.
        if int_trimmed.len() > 13 {
            return Err(overflow());
        }
        let whole: i64 = if int_trimmed.is_empty() {
            0
        } else {
            int_trimmed.parse().map_err(|_| overflow())?
        };
        let mut frac: i64 = 0;
        for (i, b) in frac_trimmed.bytes().enumerate() {
            frac += i64::from(b - b'0') * 10_i64.pow(5 - i as u32);
        }
        let micros = whole
            .checked_mul(MICROS_PER_CREDIT)
            .and_then(|w| w.checked_add(frac))
            .ok_or_else(overflow)?;
        if negative && micros != 0 {
            return Err(CreditsError::Negative(t.to_string()));
        }
        Ok(Credits(micros))
    }

    /// Parses an amount that must be strictly greater than zero.
    pub fn parse_positive(text: &str) -> Result<Credits, CreditsError> {
        let c = Credits::parse(text)?;
        if c.0 == 0 {
            return Err(CreditsError::NotPositive);
        }
        Ok(c)
    }

    /// Converts a float the way a lenient client means it, refusing what cannot be
    /// exact: non-finite, negative, too large, or more than six decimals.
    pub fn from_f64(value: f64) -> Result<Credits, CreditsError> {
        if !value.is_finite() {
            return Err(CreditsError::NotFinite);
        }
        // The shortest representation that round-trips is what the sender wrote,
        // as long as they wrote at most 15 significant digits: beyond that a float
        // may already hold a neighbouring number, and money must not be guessed.
        let text = format!("{value}");
        let significant = text.trim_start_matches('-').replace('.', "");
        if significant
            .trim_start_matches('0')
            .trim_end_matches('0')
            .len()
            > 15
        {
            return Err(CreditsError::TooPrecise(text));
        }
        Credits::parse(&text)
    }
}

impl fmt::Display for Credits {
    /// Prints the shortest exact decimal: `12`, `0.5`, `-3.000001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / MICROS_PER_CREDIT as u64;
        let frac = abs % MICROS_PER_CREDIT as u64;
        if frac == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let frac = format!("{frac:06}");
            write!(f, "{sign}{whole}.{}", frac.trim_end_matches('0'))
        }
    }
}

impl FromStr for Credits {
    type Err = CreditsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Credits::parse(s)
    }
}

impl serde::Serialize for Credits {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Credits {
    /// Accepts a decimal string or a number; both are checked exactly.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Credits;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-negative decimal amount of credits")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Credits, E> {
                Credits::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Credits, E> {
                Credits::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Credits, E> {
                Credits::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Credits, E> {
                Credits::from_f64(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(Credits::parse("0.1").unwrap().micros(), 100_000);
        assert_eq!(Credits::parse("12").unwrap().micros(), 12_000_000);
        assert_eq!(Credits::parse("1.000001").unwrap().micros(), 1_000_001);
        assert_eq!(Credits::parse(".5").unwrap().micros(), 500_000);
        assert_eq!(Credits::parse("7.").unwrap().micros(), 7_000_000);
        assert_eq!(Credits::parse("0.1000000").unwrap().micros(), 100_000);
        assert_eq!(Credits::parse("-0").unwrap(), Credits::ZERO);
    }

    #[test]
    fn refuses_bad_amounts_with_typed_errors() {
        assert_eq!(Credits::parse(""), Err(CreditsError::Empty));
        assert!(matches!(
            Credits::parse("-1"),
            Err(CreditsError::Negative(_))
        ));
        assert!(matches!(
            Credits::parse("0.0000001"),
            Err(CreditsError::TooPrecise(_))
        ));
        assert!(matches!(
            Credits::parse("1e3"),
            Err(CreditsError::Malformed(_))
        ));
        assert!(matches!(
            Credits::parse("."),
            Err(CreditsError::Malformed(_))
        ));
        assert!(matches!(
            Credits::parse("1.2.3"),
            Err(CreditsError::Malformed(_))
        ));
        assert!(matches!(
            Credits::parse("abc"),
            Err(CreditsError::Malformed(_))
        ));
        assert_eq!(Credits::parse("NaN"), Err(CreditsError::NotFinite));
        assert_eq!(Credits::parse("-inf"), Err(CreditsError::NotFinite));
        assert!(matches!(
            Credits::parse("99999999999999"),
            Err(CreditsError::Overflow(_))
        ));
        assert!(matches!(
            Credits::parse("9300000000000"),
            Err(CreditsError::Overflow(_))
        ));
        assert_eq!(Credits::parse_positive("0"), Err(CreditsError::NotPositive));
        assert_eq!(Credits::from_f64(f64::NAN), Err(CreditsError::NotFinite));
        assert_eq!(
            Credits::from_f64(f64::INFINITY),
            Err(CreditsError::NotFinite)
        );
        assert_eq!(Credits::from_f64(0.25).unwrap().micros(), 250_000);
        assert_eq!(
            Credits::from_f64(123456789.123456).unwrap().micros(),
            123_456_789_123_456
        );
        // 17 significant digits cannot be trusted through a float: send a string.
        assert!(matches!(
            Credits::from_f64(12345678901.123456),
            Err(CreditsError::TooPrecise(_))
        ));
    }

    #[test]
    fn prints_shortest_exact_decimal() {
        assert_eq!(Credits::from_micros(12_000_000).to_string(), "12");
        assert_eq!(Credits::from_micros(500_000).to_string(), "0.5");
        assert_eq!(Credits::from_micros(-3_000_001).to_string(), "-3.000001");
        assert_eq!(
            Credits::from_micros(i64::MIN).to_string(),
            "-9223372036854.775808"
        );
    }

    proptest::proptest! {
        #[test]
        fn display_then_parse_round_trips(m in 0i64..=i64::MAX) {
            let c = Credits::from_micros(m);
            proptest::prop_assert_eq!(Credits::parse(&c.to_string()).unwrap(), c);
        }
    }
}
