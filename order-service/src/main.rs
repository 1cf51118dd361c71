//! order-service: orders, welcome orders for new users, and payment outcomes.

use order_service::{Application, Settings};
use platform::configuration::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env(&Env::from_process())?;
    let telemetry = platform::telemetry::init(&settings.telemetry)?;
    let application = Application::build(settings).await?;
    let result = application.run_until_stopped().await;
    telemetry.shutdown().await;
    result
}
