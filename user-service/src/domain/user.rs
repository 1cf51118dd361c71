//! The user aggregate as stored and as shown.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use contracts::api::users::User;
pub use platform::auth::Role;

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
