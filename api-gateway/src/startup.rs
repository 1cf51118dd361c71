//! Wiring: the upstream client, routes and the server.

use shared::http::{Server, ServerBuilder};

use crate::configuration::Settings;
use crate::routes::{self, Upstreams};

/// Builds api-gateway. The result is a bound [`Server`]: `port()`, `run_until_stopped()`, `run_until(signal)`.
pub struct Application;

impl Application {
    /// Builds the upstream client and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Server> {
        shared::metrics::handle();
        let upstreams = Upstreams::new(&settings.upstreams)?;
        // The gateway holds no state of its own: ready as soon as it listens. Backends
        // report their own readiness; tying it to theirs would cascade one outage into all.
        ServerBuilder::new(routes::router(upstreams)).bind(&settings.http).await
    }
}
