//! payment-service: settles orders and announces the outcome.

use payment_service::{Application, Settings};
use platform::configuration::Env;

/// jemalloc instead of glibc's malloc: every order allocates a request, its statement's
/// buffers, an event and the broker client's copies of it, freed within milliseconds, and
/// under that churn glibc's malloc spent a tenth of the service's CPU time on its own
/// bookkeeping (consolidating and unlinking free chunks), which jemalloc's size classes
/// avoid. See docs/decisions/jemalloc.md.
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
