//! `platform-events` (`make events`): follow the platform's topics and their dead-letter
//! topics live, one line per message.
//!
//! ```text
//! platform-events [--from-beginning] [--json] [--payload-chars N] [topic …]
//! ```
//! Topics are base names (`user.created`); by default every platform topic and its
//! `.dlq`. `--json` prints one JSON object per message instead. Reads `KAFKA_BROKERS` and
//! `KAFKA_TOPIC_PREFIX` like the services do. Stop it with Ctrl-C: it joins no consumer
//! group and commits nothing, so stopping leaves nothing behind.

use std::cell::RefCell;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use contracts::events::{ALL_TOPICS, dead_letter_topic};
use event_tools::tail::{self, StartAt};
use eventing::configuration::KafkaSettings;
use platform::configuration::Env;

const USAGE: &str = "usage: platform-events [--from-beginning] [--json] [--payload-chars N] [topic …]";

/// A wrong command line is the user's slip, not a failure: usage, exit status 2.
fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    let settings = KafkaSettings::from_env(&Env::from_process(), "platform-events")?;
    let (mut start, mut json, mut payload_chars, mut bases) = (StartAt::Now, false, 100, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--from-beginning" => start = StartAt::Beginning,
            "--json" => json = true,
            "--payload-chars" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => payload_chars = n,
                None => usage(),
            },
            flag if flag.starts_with('-') => usage(),
            topic => bases.push(topic.to_owned()),
        }
    }
    if bases.is_empty() {
        bases = ALL_TOPICS.iter().map(|t| (*t).to_owned()).collect();
    }
    let topics: Vec<String> = bases
        .iter()
        .flat_map(|base| {
            let topic = settings.topic(base);
            [dead_letter_topic(&topic), topic]
        })
        .collect();
    let mut out = std::io::stdout().lock();
    let failed = RefCell::new(None);
    let following = |partitions| {
        eprintln!(
            "following {partitions} partitions of {} on {} (Ctrl-C to stop)",
            topics.join(", "),
            settings.brokers
        );
    };
    let stop = || failed.borrow().is_some();
    tail::follow(&settings, &topics, start, Duration::from_secs(2), stop, following, |seen| {
        let line = if json { serde_json::to_string(&seen).unwrap_or_default() } else { seen.line(payload_chars) };
        // A closed pipe (`make events | head`) ends the watch.
        if let Err(error) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            *failed.borrow_mut() = Some(error);
        }
    })?;
    match failed.into_inner() {
        Some(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Some(error) => Err(error).context("cannot write to standard output"),
        None => Ok(()),
    }
}
