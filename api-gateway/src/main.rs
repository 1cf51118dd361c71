//! api-gateway: the single entry point in front of the services.

use api_gateway::{Application, Settings};
use platform::configuration::Env;

/// jemalloc instead of glibc's malloc, so that memory freed after a burst goes back to
/// the system. The gateway's live heap is flat under steady load (heaptrack: 1.8-1.9 MB
/// from minute 2 of a soak-shaped run on), but it is the process that holds one request's
/// worth of buffers per request in flight, and every burst of concurrent requests (a
/// backend slow for a moment, a busy machine: 24 → 48 open sockets in the soak) left
/// glibc's per-thread arenas holding the freed chunks: RSS rose in steps, one per new
/// peak, and never came down (issue 12: +11 % over the 10-minute soak; 13.7 → 27.1 MiB
/// over four 2-second backend stalls, 12.3 → 25.2 with `glibc.malloc.arena_max=1`). jemalloc
/// purges unused pages within seconds (its decay), so RSS follows the live heap back down
/// (15.4 → 18.6-19.0 MiB after each stall, the rest being the pooled connections the
/// burst opened); its price is about 2 MiB more at rest.
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
