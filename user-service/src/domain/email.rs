//! An e-mail address, in the one form two spellings of the same mailbox share.
//!
//! Look-alike spellings must not become separate accounts, so an address is normalised
//! before it is checked or compared:
//! - Unicode NFKC, so fullwidth and other compatibility forms become their plain letters
//!   (`ａdmin@ｅxample.com` is `admin@example.com`);
//! - the domain in lower case (domains are case-insensitive);
//! - a quoted local part reduced to its plain form where RFC 5321 makes them equal
//!   (`"admin"@example.com` is `admin@example.com`).
//!
//! A local part that is not ASCII after NFKC is refused: mailbox names beyond ASCII
//! (RFC 6531) are rare, and their look-alikes have no normal form to compare. Local parts
//! differing in letter case are one account too: the store's unique index is on
//! `lower(email)`.

use std::str::FromStr;

use unicode_normalization::UnicodeNormalization;

/// A valid e-mail address, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Maximum length in characters.
    pub const MAX_LEN: usize = 255;

    /// Parses and normalises an address; surrounding whitespace is ignored.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let normalised: String = raw.trim().nfkc().collect();
        if normalised.chars().count() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters", Self::MAX_LEN));
        }
        let invalid = || "must be a valid e-mail address".to_owned();
        let (local, domain) = normalised.rsplit_once('@').ok_or_else(invalid)?;
        let local = unquoted(local).unwrap_or(local);
        if !local.is_ascii() {
            return Err("the part before @ must be ASCII letters, digits or symbols".to_owned());
        }
        let address = format!("{local}@{}", domain.to_lowercase());
        // Requires a dot in the domain: `user@localhost` is valid RFC 5322 but never a customer.
        let valid = email_address::EmailAddress::from_str(&address)
            .is_ok_and(|parsed| parsed.domain().contains('.') && !parsed.domain().starts_with('['));
        if valid { Ok(Self(address)) } else { Err(invalid()) }
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The plain form of a quoted local part, when it has one: `"john.doe"` is `john.doe`,
/// while `"john doe"` needs its quotes and stays as it is.
fn unquoted(local: &str) -> Option<&str> {
    let inner = local.strip_prefix('"')?.strip_suffix('"')?;
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let dot_atom = !inner.is_empty() && inner.split('.').all(|atom| !atom.is_empty() && atom.chars().all(atext));
    dot_atom.then_some(inner)
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
    fn look_alike_spellings_have_one_normal_form() {
        for spelling in [
            "admin@example.com",
            "ａdmin@example.com",
            "admin@ｅxample.com",
            "\"admin\"@example.com",
            "admin@EXAMPLE.com",
            "ａｄｍｉｎ@ＥＸＡＭＰＬＥ.ＣＯＭ",
        ] {
            assert_eq!(Email::parse(spelling).unwrap().as_str(), "admin@example.com", "{spelling}");
        }
    }

    #[test]
    fn a_quoted_local_part_that_needs_its_quotes_keeps_them() {
        assert_eq!(Email::parse("\"john doe\"@example.com").unwrap().as_str(), "\"john doe\"@example.com");
    }

    #[test]
    fn a_local_part_beyond_ascii_is_refused() {
        for refused in ["аdmin@example.com", "jürgen@example.com"] {
            assert!(Email::parse(refused).is_err(), "{refused}");
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
