//! Events user-service publishes.

use contracts::events::UserCreated;

use crate::domain::User;

/// The `user.created` event for a stored user.
pub fn user_created(user: &User) -> UserCreated {
    UserCreated { user_id: user.id, email: user.email.clone(), name: user.name.clone(), created_at: user.created_at }
}
