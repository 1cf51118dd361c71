//! User domain types: parsed once at the edge, trusted everywhere after.

mod email;
mod password;
mod user;
mod user_name;

pub use email::Email;
pub use password::{Password, PasswordHash, verify as verify_password};
pub use user::{NewUser, Role, User, UserId};
pub use user_name::UserName;
