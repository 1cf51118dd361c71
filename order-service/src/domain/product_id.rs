//! Product identifiers: `product-` followed by letters, digits and hyphens, at most 100 characters.

/// A valid product id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductId(String);

impl ProductId {
    /// Parses `product-[A-Za-z0-9-]+`, at most 100 characters.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = raw.len() <= 100
            && raw
                .strip_prefix("product-")
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must match ^product-[A-Za-z0-9-]+$ and be at most 100 characters".to_owned())
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_documented_examples() {
        for ok in ["product-123", "product-abc-def", "product-A1"] {
            assert!(ProductId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        let long = format!("product-{}", "x".repeat(93));
        for bad in ["product-", "product_1", "item-1", "product-é", "PRODUCT-1", " product-1", long.as_str()] {
            assert!(ProductId::parse(bad).is_err(), "{bad}");
        }
    }
}
