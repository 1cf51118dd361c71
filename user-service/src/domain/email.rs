//! A syntactically valid e-mail address of at most 255 characters.

use std::str::FromStr;

/// A valid e-mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Maximum length in characters.
    pub const MAX_LEN: usize = 255;

    /// Parses an address; surrounding whitespace is ignored.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters", Self::MAX_LEN));
        }
        // Requires a dot in the domain: `user@localhost` is valid RFC 5322 but never a customer.
        let valid = email_address::EmailAddress::from_str(trimmed)
            .is_ok_and(|address| address.domain().contains('.') && !address.domain().starts_with('['));
        if valid { Ok(Self(trimmed.to_owned())) } else { Err("must be a valid e-mail address".to_owned()) }
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in ["john.doe@example.com", "a+tag@sub.example.co.uk", "  demo@example.com "] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in ["", "plain", "@example.com", "john@", "john@localhost", "a b@example.com", long.as_str()] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
