//! user-service: stores users and announces them with `user.created`.

use platform::configuration::Env;
use user_service::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env(&Env::from_process())?;
    let telemetry = platform::telemetry::init(&settings.telemetry)?;
    let application = Application::build(settings).await?;
    let result = application.run_until_stopped().await;
    telemetry.shutdown().await;
    result
}
