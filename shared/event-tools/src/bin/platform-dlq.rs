//! `platform-dlq`: list and replay dead letters.
//!
//! ```text
//! platform-dlq list   <topic>              every letter in <topic>.dlq, one JSON object per line
//! platform-dlq replay <topic> [--dry-run]  send letters not yet replayed back to their topic
//! ```
//! Reads `KAFKA_BROKERS` and `KAFKA_TOPIC_PREFIX` like the services do.

use anyhow::{Context, bail};
use event_tools::dead_letters;
use eventing::configuration::KafkaSettings;
use platform::configuration::Env;

const USAGE: &str = "usage: platform-dlq list <topic> | platform-dlq replay <topic> [--dry-run]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let settings = KafkaSettings::from_env(&Env::from_process(), "platform-dlq")?;
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["list", topic] => {
            for letter in dead_letters::list(&settings, topic)? {
                println!("{}", serde_json::to_string(&letter).context("cannot print a letter")?);
            }
        }
        ["replay", topic, rest @ ..] if rest.iter().all(|a| *a == "--dry-run") => {
            let report = dead_letters::replay(&settings, topic, !rest.is_empty()).await?;
            for letter in &report.replayed {
                println!("{}", serde_json::to_string(letter).context("cannot print a letter")?);
            }
            let verb = if report.dry_run { "would replay" } else { "replayed" };
            eprintln!("{verb} {} dead letter(s) of {topic}", report.replayed.len());
        }
        _ => bail!(USAGE),
    }
    Ok(())
}
