//! HS256 JSON Web Tokens: issued on sign-in, checked on every API call.
//!
//! Only HS256 is accepted, so `alg: none` and algorithm-confusion tokens fail;
//! issuer, audience, expiry, not-before and issued-at are required and checked with
//! no leeway; a token issued in the future, or living longer than this gateway issues
//! tokens for, is refused too. A token that passed is remembered until it expires
//! ([`super::verified`]), so a client's later calls skip the work.

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use platform::auth::{Principal, Role};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::verified::VerifiedTokens;
use crate::configuration::JwtSettings;

/// What a token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The user's role when the token was issued.
    pub role: Role,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not valid before (Unix seconds).
    pub nbf: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// The account's credentials version when the token was issued: a token from before a
    /// password or e-mail change is refused (see `crate::auth::accounts`).
    #[serde(default)]
    pub ver: u32,
}

/// What a valid token says: who, and under which credentials version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The principal.
    pub principal: Principal,
    /// The account's credentials version at issue.
    pub credentials_version: u32,
}

/// Why a token was refused; every variant is a 401 to the client.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Malformed, badly signed, expired, not yet valid, or for another issuer or audience.
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// Issued in the future, or for longer than tokens are issued here.
    #[error("invalid token: implausible issue time")]
    IssuedAt,
}

/// Issues and checks tokens.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    lifetime_seconds: i64,
    verified: VerifiedTokens,
}

impl Tokens {
    /// Keys and rules from settings.
    pub fn new(settings: &JwtSettings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(settings.key()),
            decoding: DecodingKey::from_secret(settings.key()),
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            lifetime_seconds: i64::try_from(settings.expiration.as_secs()).unwrap_or(i64::MAX),
            verified: VerifiedTokens::new(),
        }
    }

    /// Seconds a new token lives.
    pub fn lifetime_seconds(&self) -> i64 {
        self.lifetime_seconds
    }

    /// A signed token for `principal` under the account's `credentials_version`.
    pub fn issue(&self, principal: Principal, credentials_version: u32) -> Result<String, TokenError> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: principal.id,
            role: principal.role,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(self.lifetime_seconds),
            ver: credentials_version,
        };
        Ok(encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    /// What a valid token says.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        self.verify_at(token, Utc::now().timestamp())
    }

    /// [`Self::verify`] at `now` (Unix seconds): a token that passed before is taken as
    /// remembered until its `exp`; any other gets every check.
    fn verify_at(&self, token: &str, now: i64) -> Result<Verified, TokenError> {
        let digest = VerifiedTokens::digest(token);
        if let Some(verified) = self.verified.get(&digest, now) {
            return Ok(verified);
        }
        let claims = decode::<Claims>(token, &self.decoding, &self.validation)?.claims;
        if claims.iat > now || claims.exp.saturating_sub(claims.iat) > self.lifetime_seconds {
            return Err(TokenError::IssuedAt);
        }
        // `decode` checked expiry on the system clock; this holds it to `now` as well.
        if claims.exp < now {
            return Err(TokenError::Invalid(jsonwebtoken::errors::ErrorKind::ExpiredSignature.into()));
        }
        let verified =
            Verified { principal: Principal { id: claims.sub, role: claims.role }, credentials_version: claims.ver };
        self.verified.remember(digest, verified, claims.exp);
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;

    use super::*;

    fn settings(secret: &str) -> JwtSettings {
        JwtSettings {
            secret: SecretString::from(secret.to_owned()),
            issuer: "iss".into(),
            audience: "aud".into(),
            expiration: Duration::from_secs(60),
            status_ttl: Duration::from_secs(2),
        }
    }

    fn forge(claims: &serde_json::Value, secret: &str) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    #[test]
    fn a_token_round_trips() {
        let tokens = Tokens::new(&settings("secret"));
        let principal = Principal { id: Uuid::new_v4(), role: Role::Admin };
        let verified = tokens.verify(&tokens.issue(principal, 3).unwrap()).unwrap();
        assert_eq!(verified, Verified { principal, credentials_version: 3 });
    }

    #[test]
    fn forged_expired_and_foreign_tokens_are_refused() {
        let tokens = Tokens::new(&settings("secret"));
        let now = Utc::now().timestamp();
        let good = serde_json::json!({"sub": Uuid::new_v4(), "role": "admin", "iss": "iss", "aud": "aud", "iat": now, "nbf": now, "exp": now + 60});
        assert!(tokens.verify(&forge(&good, "secret")).is_ok());
        assert!(tokens.verify(&forge(&good, "other-secret")).is_err(), "wrong signature");
        let mut expired = good.clone();
        expired["exp"] = (now - 1).into();
        assert!(tokens.verify(&forge(&expired, "secret")).is_err(), "expired");
        let mut issuer = good.clone();
        issuer["iss"] = "someone-else".into();
        assert!(tokens.verify(&forge(&issuer, "secret")).is_err(), "wrong issuer");
        let mut audience = good.clone();
        audience["aud"] = "another-api".into();
        assert!(tokens.verify(&forge(&audience, "secret")).is_err(), "wrong audience");
        let mut early = good.clone();
        early["nbf"] = (now + 30).into();
        assert!(tokens.verify(&forge(&early, "secret")).is_err(), "not yet valid");
        let mut no_nbf = good.clone();
        no_nbf.as_object_mut().unwrap().remove("nbf");
        assert!(tokens.verify(&forge(&no_nbf, "secret")).is_err(), "nbf missing");
        let mut future = good.clone();
        future["iat"] = (now + 30).into();
        assert!(tokens.verify(&forge(&future, "secret")).is_err(), "issued in the future");
        let mut long_lived = good.clone();
        long_lived["exp"] = (now + 3600 * 24 * 365).into();
        assert!(tokens.verify(&forge(&long_lived, "secret")).is_err(), "outlives what is issued here");
        // alg: none, with the payload of a valid token.
        let payload = forge(&good, "secret").split('.').nth(1).unwrap().to_owned();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(tokens.verify(&none).is_err(), "alg none");
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let tokens = Tokens::new(&settings("secret"));
        let principal = Principal { id: Uuid::new_v4(), role: Role::User };
        let token = tokens.issue(principal, 0).unwrap();
        let now = Utc::now().timestamp();
        assert!(tokens.verify_at(&token, now).is_ok());
        assert!(tokens.verify_at(&token, now + 60).is_ok(), "valid through its exp second");
        assert!(tokens.verify_at(&token, now + 61).is_err(), "remembered, yet expired");
        assert!(tokens.verify_at(&token, now + 3600).is_err(), "remembered, yet expired");
    }

    #[test]
    fn only_the_remembered_token_itself_skips_the_checks() {
        let tokens = Tokens::new(&settings("secret"));
        let now = Utc::now().timestamp();
        let claims = serde_json::json!({"sub": Uuid::new_v4(), "role": "user", "iss": "iss", "aud": "aud", "iat": now, "nbf": now, "exp": now + 60});
        let good = forge(&claims, "secret");
        assert!(tokens.verify(&good).is_ok());
        // The same claims under another key, the signature altered, or the role raised in
        // the payload: each is a token of its own and fails the full check.
        let mut admin = claims.clone();
        admin["role"] = "admin".into();
        let (header, rest) = good.split_once('.').unwrap();
        let signature = rest.rsplit_once('.').unwrap().1;
        let raised = forge(&admin, "other");
        let raised_payload = raised.split('.').nth(1).unwrap();
        let mut altered = good.clone().into_bytes();
        let inside = altered.len() - 5;
        altered[inside] = if altered[inside] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        for forged in [forge(&claims, "other-secret"), altered, format!("{header}.{raised_payload}.{signature}")] {
            assert!(tokens.verify(&forged).is_err(), "{forged} passed");
            assert!(tokens.verify(&forged).is_err(), "{forged} passed the second time");
        }
        assert!(tokens.verify(&good).is_ok());
    }
}
