//! api-gateway: the single entry point in front of the services.

use api_gateway::{Application, Settings};
use platform::configuration::Env;

/// jemalloc instead of glibc's malloc, so that memory freed after a burst goes back to
/// the system. The gateway's live heap is flat under steady load, but it holds one
/// request's worth of buffers per request in flight, and under glibc every burst of
/// concurrent requests (a backend slow for a moment, a busy machine) left the per-thread
/// arenas holding the freed chunks: RSS rose in steps, one per new peak, and never came
/// down, even with `glibc.malloc.arena_max=1`. jemalloc purges unused pages within
/// seconds (its decay), so RSS follows the live heap back down; its price is about 2 MiB
/// more at rest. See docs/decisions/jemalloc.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A single-threaded runtime: the public port's connections are served by threads that
/// each own theirs (`HTTP_SERVING_THREADS`, see `platform::http::ServerBuilder::serving_threads`),
/// this one among them; background work is light.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env(&Env::from_process())?;
    let telemetry = platform::telemetry::init(&settings.telemetry)?;
    let application = Application::build(settings).await?;
    let result = application.run_until_stopped().await;
    telemetry.shutdown().await;
    result
}
