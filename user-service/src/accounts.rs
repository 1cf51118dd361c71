//! Use cases on accounts that several routes share: creating a user (with its
//! `user.created` event in the same transaction) and checking credentials.

use anyhow::Context;
use shared::http::{FieldError, Problem, RequestId};
use shared::outbox;
use sqlx::PgPool;

use crate::domain::{Email, NewUser, Password, Role, User, UserName, verify_password};
use crate::events::user_created;
use crate::repository::users::{self, InsertUserError};

type HashingJob = Box<dyn FnOnce() + Send>;

/// A fixed pool of threads, one per core, for argon2 work. Each hash takes 19 MiB and a
/// core for tens of milliseconds. On tokio's blocking pool a burst of sign-ups makes
/// hundreds of short-lived threads, each leaving its own allocator arena holding those
/// 19 MiB (the bench saw gigabytes); a few long-lived threads reuse theirs.
fn hashing_pool() -> &'static std::sync::mpsc::Sender<HashingJob> {
    static POOL: std::sync::OnceLock<std::sync::mpsc::Sender<HashingJob>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        // Queued jobs are small (a closure and a password); the 19 MiB is taken only when a thread runs one.
        let (sender, receiver) = std::sync::mpsc::channel::<HashingJob>();
        let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
        for i in 0..threads {
            let receiver = std::sync::Arc::clone(&receiver);
            let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                loop {
                    let job = match receiver.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a hashing thread");
            }
        }
        sender
    })
}

/// Runs CPU- and memory-heavy password work on the hashing pool and awaits its result.
pub async fn with_hashing_permit<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job: HashingJob = Box::new(move || {
        let _ = reply.send(work());
    });
    // A full queue (1024 waiting hashes) blocks this worker briefly rather than growing memory.
    tokio::task::block_in_place(|| hashing_pool().send(job))
        .map_err(|_| anyhow::anyhow!("the hashing pool stopped"))?;
    answer.await.context("a hashing thread dropped its job")
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// Input failed validation.
    #[error("invalid user")]
    Invalid(Vec<FieldError>),
    /// The e-mail address is taken.
    #[error("e-mail address already registered")]
    DuplicateEmail,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<CreateUserError> for Problem {
    fn from(error: CreateUserError) -> Self {
        match error {
            CreateUserError::Invalid(errors) => Problem::validation(errors),
            CreateUserError::DuplicateEmail => Problem::conflict("a user with this e-mail address already exists"),
            CreateUserError::Unexpected(error) => Problem::internal(&error),
        }
    }
}

/// Parses every field of a new user and reports every failure, not just the first.
pub fn parse_new_user(email: &str, name: &str, password: String, role: Role) -> Result<NewUser, CreateUserError> {
    let email = Email::parse(email).map_err(|e| FieldError::new("email", e));
    let name = UserName::parse(name).map_err(|e| FieldError::new("name", e));
    let password = Password::parse(password).map_err(|e| FieldError::new("password", e));
    match (email, name, password) {
        (Ok(email), Ok(name), Ok(password)) => Ok(NewUser { email, name, password, role }),
        (email, name, password) => {
            Err(CreateUserError::Invalid([email.err(), name.err(), password.err()].into_iter().flatten().collect()))
        }
    }
}

/// Stores the user and, in the same transaction, its `user.created` event (the outbox
/// relay publishes it), so a user never exists without its event.
pub async fn create_user(pool: &PgPool, request_id: &RequestId, new_user: &NewUser) -> Result<User, CreateUserError> {
    let password = new_user.password.clone();
    let hash = with_hashing_permit(move || password.hash()).await??;
    let mut transaction = pool.begin().await.context("cannot begin transaction")?;
    let user = users::insert(&mut transaction, new_user, &hash).await.map_err(|e| match e {
        InsertUserError::DuplicateEmail => CreateUserError::DuplicateEmail,
        InsertUserError::Other(e) => CreateUserError::Unexpected(e),
    })?;
    outbox::enqueue(&mut transaction, &user_created(&user), request_id).await?;
    transaction.commit().await.context("cannot commit new user")?;
    metrics::counter!("users_registered_total").increment(1);
    tracing::info!(user_id = %user.id.as_uuid(), role = user.role.as_str(), "user created");
    Ok(user)
}

/// The user whose credentials these are, if they are right.
pub async fn check_credentials(pool: &PgPool, email: &str, password: String) -> anyhow::Result<Option<User>> {
    let found = users::find_credentials(pool, email).await?;
    let stored = found.as_ref().map(|(_, hash)| hash.clone());
    let valid = with_hashing_permit(move || verify_password(&password, stored.as_deref())).await?;
    Ok(found.filter(|_| valid).map(|(user, _)| user))
}

/// Creates the first admin from settings when no user has its e-mail address yet.
pub async fn ensure_admin(pool: &PgPool, email: &Email, password: &Password) -> anyhow::Result<()> {
    if users::find_credentials(pool, email.as_str()).await?.is_some() {
        return Ok(());
    }
    let admin = NewUser {
        email: email.clone(),
        name: UserName::parse("Administrator").map_err(anyhow::Error::msg)?,
        password: password.clone(),
        role: Role::Admin,
    };
    match create_user(pool, &RequestId::parse_or_generate(Some("startup-admin")), &admin).await {
        Ok(_) | Err(CreateUserError::DuplicateEmail) => Ok(()), // another instance was quicker
        Err(error) => Err(anyhow::anyhow!(error).context("cannot create the first admin")),
    }
}
