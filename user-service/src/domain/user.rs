//! The user aggregate as stored and as shown.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Email, Password, UserName};

/// A user's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct UserId(Uuid);

impl UserId {
    /// A fresh id.
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id as a UUID.
    pub fn as_uuid(self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for UserId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An ordinary customer.
    #[default]
    User,
    /// Manages users and orders.
    Admin,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    /// Reads a stored name.
    pub fn from_db(name: &str) -> anyhow::Result<Self> {
        match name {
            "user" => Ok(Self::User),
            "admin" => Ok(Self::Admin),
            other => anyhow::bail!("unknown role {other:?} in database"),
        }
    }
}

/// A validated request to create a user.
#[derive(Debug)]
pub struct NewUser {
    /// E-mail address.
    pub email: Email,
    /// Display name.
    pub name: UserName,
    /// Initial password.
    pub password: Password,
    /// Role.
    pub role: Role,
}

/// A stored user, as the API shows it (no credentials).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Id.
    pub id: UserId,
    /// E-mail address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
}
