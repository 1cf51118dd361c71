//! Accounts: sign-up, sign-in, the token answer, and the admin's user management.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Role;

/// Sign-up: a new account always has role `user`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"email": "jane@example.com", "password": "SecurePass123!", "name": "Jane Doe"}))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// A valid address, at most 255 characters.
    #[schema(format = "email", max_length = 255)]
    pub email: String,
    /// The password (never stored or shown as sent).
    #[schema(schema_with = super::password)]
    pub password: String,
    /// Display name.
    #[schema(schema_with = super::name)]
    pub name: String,
}

/// Sign-in (and user-service's credential check behind it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"email": "jane@example.com", "password": "your-password"}))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// E-mail address.
    #[schema(format = "email")]
    pub email: String,
    /// The password (never stored or shown as sent).
    #[schema(format = "password")]
    pub password: String,
}

/// A bearer token and the account it is for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT to send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the token expires.
    #[schema(example = 3600)]
    pub expires_in: i64,
    /// The signed-in account.
    pub user: User,
}

/// An account, as every answer shows it (credentials never leave user-service).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// E-mail address.
    #[schema(format = "email")]
    pub email: String,
    /// Display name.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A user created by an admin.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"email": "john.doe@example.com", "name": "John Doe", "password": "SecurePass123!", "role": "user"}))]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// E-mail address.
    #[schema(format = "email", max_length = 255)]
    pub email: String,
    /// Display name.
    #[schema(schema_with = super::name)]
    pub name: String,
    /// The password (never stored or shown as sent).
    #[schema(schema_with = super::password)]
    pub password: String,
    /// `user` when absent.
    #[serde(default)]
    pub role: Option<Role>,
}

/// The fields to change; only an admin changes a role.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Jane Smith"}))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateUserRequest {
    /// E-mail address.
    #[schema(format = "email", max_length = 255)]
    pub email: Option<String>,
    /// Display name.
    #[schema(schema_with = super::optional_name)]
    pub name: Option<String>,
    /// The password (never stored or shown as sent).
    #[schema(schema_with = super::optional_password)]
    pub password: Option<String>,
    /// What the user may do.
    pub role: Option<Role>,
    /// The current password: required when users change their own password or e-mail
    /// address (403 when wrong); an admin changing someone else's needs none.
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<String>,
}

/// The query of `GET /api/users`, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Page size (50 when absent).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Users to skip.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}
