//! user-service: stores users and announces them with `user.created`.

use platform::configuration::Env;
use user_service::{Application, Settings};

/// jemalloc, for argon2id's 19 MiB of working memory per hash: freed after each hash, it
/// stays cached for the next one during a burst and goes back to the system about 10 s
/// after the last (jemalloc's decay, on its background thread). With glibc's malloc the
/// first free raised its mmap threshold, so every later area came from a thread's arena
/// and stayed there: idle RSS kept one area per hashing thread for good.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env(&Env::from_process())?;
    let telemetry = platform::telemetry::init(&settings.telemetry)?;
    let application = Application::build(settings).await?;
    let result = application.run_until_stopped().await;
    telemetry.shutdown().await;
    result
}
