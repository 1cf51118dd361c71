//! Passwords: checked for strength, hashed with argon2id, never logged.

use argon2::password_hash::SaltString;
use argon2::password_hash::rand_core::OsRng;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use secrecy::{ExposeSecret, SecretString};

/// A password that meets the strength rules. Its `Debug` output is redacted.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    /// Checks 8 to 128 characters with an upper-case letter, a lower-case letter, a digit
    /// and a character that is none of those.
    pub fn parse(raw: String) -> Result<Self, String> {
        let length = raw.chars().count();
        if !(8..=128).contains(&length) {
            return Err("must be 8 to 128 characters".to_owned());
        }
        let has = |test: fn(&char) -> bool| raw.chars().any(|c| test(&c));
        if !(has(|c| c.is_uppercase())
            && has(|c| c.is_lowercase())
            && has(char::is_ascii_digit)
            && has(|c| !c.is_alphanumeric()))
        {
            return Err(
                "must contain an upper-case letter, a lower-case letter, a digit and a special character".to_owned()
            );
        }
        Ok(Self(SecretString::from(raw)))
    }

    /// The password itself, for a verification; never log it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Hashes with argon2id and a random salt. CPU-heavy: call it off the async runtime.
    pub fn hash(&self) -> anyhow::Result<PasswordHash> {
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(self.0.expose_secret().as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
        Ok(PasswordHash(hash.to_string()))
    }
}

/// Checks `candidate` against a stored PHC hash. With no stored hash (unknown e-mail) it
/// still runs a verification against a dummy hash, so timing does not tell which e-mail
/// addresses exist. CPU-heavy: call it off the async runtime.
pub fn verify(candidate: &str, stored: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        Password::parse("Dummy-Passw0rd!".to_owned()).ok().and_then(|p| p.hash().ok()).map(|h| h.0).unwrap_or_default()
    });
    let found = stored.is_some();
    let hash = stored.unwrap_or(dummy);
    let Ok(parsed) = argon2::password_hash::PasswordHash::new(hash) else { return false };
    let matches = Argon2::default().verify_password(candidate.as_bytes(), &parsed).is_ok();
    found && matches
}

/// A PHC-format argon2id hash.
#[derive(Clone)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// The PHC string, for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_rules() {
        assert!(Password::parse("SecurePass123!".into()).is_ok());
        for weak in ["Short1!", "alllowercase1!", "ALLUPPERCASE1!", "NoDigitsHere!", "NoSpecial123"] {
            assert!(Password::parse(weak.into()).is_err(), "{weak}");
        }
    }

    #[test]
    fn hashes_are_argon2id_salted_and_never_debug_printed() {
        let password = Password::parse("SecurePass123!".into()).unwrap();
        let (a, b) = (password.hash().unwrap(), password.hash().unwrap());
        assert!(a.as_str().starts_with("$argon2id$"));
        assert_ne!(a.as_str(), b.as_str());
        assert!(!format!("{password:?}{a:?}").contains("SecurePass"));
    }

    #[test]
    fn verification_accepts_only_the_password() {
        let hash = Password::parse("SecurePass123!".into()).unwrap().hash().unwrap();
        assert!(verify("SecurePass123!", Some(hash.as_str())));
        assert!(!verify("SecurePass123?", Some(hash.as_str())));
        assert!(!verify("SecurePass123!", None));
    }
}
