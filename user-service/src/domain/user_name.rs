//! A person's display name: 2 to 100 letters of any script, spaces, hyphens, apostrophes.

/// A valid display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    /// Parses a name, as sent: nothing is trimmed, so the rule reads exactly like the
    /// OpenAPI document's `minLength`, `maxLength` and `pattern`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw;
        let length = trimmed.chars().count();
        if !(2..=100).contains(&length) {
            return Err("must be 2 to 100 characters".to_owned());
        }
        if !trimmed.chars().any(char::is_alphabetic) {
            return Err("must contain letters".to_owned());
        }
        if !trimmed.chars().all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '\'' | '’')) {
            return Err("may only contain letters, spaces, hyphens and apostrophes".to_owned());
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_in_any_script() {
        for ok in ["John Doe", "Zoë O'Brien", "Jean-Luc", "李小龍", "Ελένη"] {
            assert!(UserName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_digits_symbols_and_bad_lengths() {
        for bad in ["J", "R2D2", "<script>", "--", &"a".repeat(101)] {
            assert!(UserName::parse(bad).is_err(), "{bad}");
        }
    }
}
