//! Exact amounts of money.
//!
//! Amounts are integer cents everywhere: in the database (`BIGINT`), in memory
//! and in events. JSON shows them as decimal numbers with at most two places
//! (`29.99`), the shape the public API documents; parsing goes through the
//! number's shortest decimal text, so no binary rounding ever reaches a total.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative amount of money in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

/// Why an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not a decimal number.
    #[error("must be a decimal number")]
    NotANumber,
    /// Below zero.
    #[error("must not be negative")]
    Negative,
    /// More than two decimal places.
    #[error("must have at most 2 decimal places")]
    TooPrecise,
    /// Too large to represent.
    #[error("is too large")]
    TooLarge,
}

impl Money {
    /// Zero.
    pub const ZERO: Self = Self(0);

    /// An amount from a count of cents.
    pub fn from_cents(cents: i64) -> Result<Self, MoneyError> {
        if cents < 0 { Err(MoneyError::Negative) } else { Ok(Self(cents)) }
    }

    /// The amount in cents.
    pub fn cents(self) -> i64 {
        self.0
    }

    /// Parses a decimal text such as `"29.99"`, `"5"` or `"0.5"`.
    pub fn parse_decimal(text: &str) -> Result<Self, MoneyError> {
        let text = text.trim();
        if text.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || (text.contains('.') && fraction.is_empty()) {
            return Err(MoneyError::NotANumber);
        }
        if fraction.len() > 2 {
            return Err(MoneyError::TooPrecise);
        }
        let whole: i64 = whole.parse().map_err(|_| MoneyError::TooLarge)?;
        let fraction: i64 = format!("{fraction:0<2}").parse().map_err(|_| MoneyError::NotANumber)?;
        whole.checked_mul(100).and_then(|c| c.checked_add(fraction)).map(Self).ok_or(MoneyError::TooLarge)
    }

    /// `self × factor`, or `None` on overflow.
    pub fn checked_mul(self, factor: i64) -> Option<Self> {
        self.0.checked_mul(factor).filter(|c| *c >= 0).map(Self)
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Cents below 2^53 are exact as f64, and the shortest round-trip text of
        // cents / 100 is the two-decimal text, so JSON shows `59.98`, not `59.980000001`.
        #[allow(clippy::cast_precision_loss)]
        serializer.serialize_f64(self.0 as f64 / 100.0)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(serde_json::Number),
            Text(String),
        }
        let text = match Raw::deserialize(deserializer)? {
            // `Number`'s Display is the shortest text that reads back as the same
            // value, i.e. what the client wrote for any sane amount.
            Raw::Number(n) => n.to_string(),
            Raw::Text(s) => s,
        };
        Money::parse_decimal(&text).map_err(serde::de::Error::custom)
    }
}

/// Money's JSON Schema, written by hand because its serde form is hand-written too: a
/// JSON number, never negative, with at most two decimal places. Kept beside the
/// `Serialize` impl so a change to one is seen next to the other; the AsyncAPI test
/// validates serialised amounts against it.
impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .description(Some("An exact amount of money: a decimal number with at most two decimal places."))
            .minimum(Some(0))
            .multiple_of(Some(0.01))
            .examples([serde_json::json!(29.99)])
            .into()
    }
}

impl utoipa::ToSchema for Money {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Money")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_text_exactly() {
        assert_eq!(Money::parse_decimal("29.99").unwrap().cents(), 2999);
        assert_eq!(Money::parse_decimal("0.5").unwrap().cents(), 50);
        assert_eq!(Money::parse_decimal("7").unwrap().cents(), 700);
        assert_eq!(Money::parse_decimal("999999.99").unwrap().cents(), 99_999_999);
    }

    #[test]
    fn refuses_what_is_not_money() {
        assert_eq!(Money::parse_decimal("1.234"), Err(MoneyError::TooPrecise));
        assert_eq!(Money::parse_decimal("-1"), Err(MoneyError::Negative));
        assert_eq!(Money::parse_decimal("1e3"), Err(MoneyError::NotANumber));
        assert_eq!(Money::parse_decimal("1."), Err(MoneyError::NotANumber));
        assert_eq!(Money::parse_decimal(""), Err(MoneyError::NotANumber));
        assert_eq!(Money::parse_decimal("99999999999999999999"), Err(MoneyError::TooLarge));
    }

    #[test]
    fn json_round_trip_keeps_every_cent() {
        for cents in [0, 1, 10, 99, 2999, 5998, 99_999_999] {
            let money = Money::from_cents(cents).unwrap();
            let json = serde_json::to_string(&money).unwrap();
            assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), money, "{json}");
        }
        assert_eq!(serde_json::to_string(&Money::from_cents(5998).unwrap()).unwrap(), "59.98");
    }

    #[test]
    fn a_sum_of_float_unfriendly_prices_is_exact() {
        let price: Money = serde_json::from_str("0.1").unwrap();
        let total = price.checked_mul(3).unwrap();
        assert_eq!(total.to_string(), "0.30");
    }
}
