//! Passwords: checked for strength, hashed with argon2id, never logged.
//!
//! argon2id needs 19 MiB of working memory per hash. It is allocated per hash and freed
//! after it; the service's allocator (jemalloc, see `main.rs`) keeps it for the next hash
//! during a burst and returns it to the system once sign-ups stop. Bursts stay bounded
//! because hashing runs on a fixed pool of threads (`crate::hashing`).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, Salt, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

/// The hash of `password` with `salt` under `argon`.
fn compute(argon: &Argon2<'_>, params: &Params, password: &[u8], salt: Salt<'_>) -> anyhow::Result<Output> {
    let mut salt_buffer = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buffer).map_err(|e| anyhow::anyhow!("invalid salt: {e}"))?;
    let length = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    Output::init_with(length, |out| {
        argon.hash_password_into(password, salt, out).map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
}

/// A password that meets the strength rules. Its `Debug` output is redacted.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    /// Checks 8 to 128 characters with an upper-case letter `A-Z`, a lower-case letter
    /// `a-z`, a digit `0-9` and a character that is none of those. ASCII classes, so the
    /// rule reads the same as the OpenAPI document's `pattern` in every regex engine.
    pub fn parse(raw: String) -> Result<Self, String> {
        let length = raw.chars().count();
        if !(8..=128).contains(&length) {
            return Err("must be 8 to 128 characters".to_owned());
        }
        let has = |test: fn(&char) -> bool| raw.chars().any(|c| test(&c));
        if !(has(char::is_ascii_uppercase)
            && has(char::is_ascii_lowercase)
            && has(char::is_ascii_digit)
            && has(|c| !c.is_ascii_alphanumeric()))
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

    /// Hashes with argon2id (default parameters) and a random salt, as a PHC string.
    /// CPU-heavy: call it off the async runtime.
    pub fn hash(&self) -> anyhow::Result<PasswordHash> {
        let salt = SaltString::generate(&mut OsRng);
        let params = Params::default();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let output = compute(&argon, &params, self.0.expose_secret().as_bytes(), salt.as_salt())?;
        let phc = argon2::PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(PasswordHash(phc.to_string()))
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
    let matches = matches_phc(candidate, stored.unwrap_or(dummy)).unwrap_or(false);
    found && matches
}

/// Whether `candidate` hashes to the stored PHC string, under the parameters it names.
fn matches_phc(candidate: &str, phc: &str) -> anyhow::Result<bool> {
    let parsed = argon2::PasswordHash::new(phc).map_err(|e| anyhow::anyhow!("not a PHC string: {e}"))?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| anyhow::anyhow!("{e}"))?;
    let version = parsed.version.map_or(Ok(Version::V0x13), Version::try_from).map_err(|e| anyhow::anyhow!("{e}"))?;
    let params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return Ok(false) };
    let argon = Argon2::new(algorithm, version, params.clone());
    // `Output`'s equality is constant-time.
    Ok(compute(&argon, &params, candidate.as_bytes(), salt)? == expected)
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
    fn hashes_made_by_the_argon2_crate_itself_still_verify() {
        use argon2::PasswordHasher;
        let salt = SaltString::generate(&mut OsRng);
        let stored = Argon2::default().hash_password(b"SecurePass123!", &salt).unwrap().to_string();
        assert!(verify("SecurePass123!", Some(&stored)));
        assert!(!verify("SecurePass123?", Some(&stored)));
        let ours = Password::parse("SecurePass123!".into()).unwrap().hash().unwrap();
        let parsed = argon2::PasswordHash::new(ours.as_str()).unwrap();
        use argon2::PasswordVerifier;
        assert!(Argon2::default().verify_password(b"SecurePass123!", &parsed).is_ok(), "the crate verifies ours");
    }

    #[test]
    fn verification_accepts_only_the_password() {
        let hash = Password::parse("SecurePass123!".into()).unwrap().hash().unwrap();
        assert!(verify("SecurePass123!", Some(hash.as_str())));
        assert!(!verify("SecurePass123?", Some(hash.as_str())));
        assert!(!verify("SecurePass123!", None));
    }
}
