//! Keeps the topics a service needs in existence, with their retention policy.
//!
//! Topics vanish in real life: an admin tool deletes one, or a local broker restarts on an
//! empty store. A service that only
//! created its topics at start would then sit on zero partitions, its outbox holding
//! everything, while `/health/ready` said 200. [`TopicKeeper`] instead looks at the
//! cluster's metadata every few seconds, recreates what is missing with the configured
//! partitions, replication and retention, and tells readiness what it found. The same
//! loop lets a service start while the broker is down and create its topics once it answers.
//!
//! A topic whose log restarted (recreated, or the broker lost its store: see [`super::loss`])
//! is announced to the service's consumer ([`LogResets`]), which reads its partitions
//! again from the beginning; handlers are idempotent, so what it had already handled is
//! recognised and skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

use super::client::{REQUEST_TIMEOUT, base_config};
use super::loss::{Certificates, PendingReplay};
use super::resets::LogResets;
use crate::configuration::KafkaSettings;
use crate::health::Status;
use contracts::events::dead_letter_topic;

/// One topic the service needs, with the retention it should have.
#[derive(Debug, Clone)]
struct Needed {
    name: String,
    /// The name the outbox knows it by (no prefix); `None` for a dead-letter topic.
    outbox_topic: Option<String>,
    retention_ms: String,
    partitions: i32,
}

/// Watches and repairs the topics of one service (each base topic and its `.dlq`).
pub struct TopicKeeper {
    admin: Arc<AdminClient<DefaultClientContext>>,
    needed: Vec<Needed>,
    settings: KafkaSettings,
    status: Status,
    /// The service's outbox, replayed when one of its topics lost its log.
    outbox: Option<sqlx::PgPool>,
    /// Topics this keeper found missing since the last pass (and created, or saw created).
    created: std::sync::Mutex<Vec<String>>,
    /// Announces topics whose logs restarted.
    resets: tokio::sync::watch::Sender<BTreeMap<String, u64>>,
    /// When this keeper was made (this process's start, near enough).
    started: chrono::DateTime<chrono::Utc>,
}

impl TopicKeeper {
    /// A keeper for `bases` and their dead-letter topics. Needs no broker yet.
    pub fn new(settings: &KafkaSettings, bases: &[&str]) -> anyhow::Result<Self> {
        let admin = Arc::new(base_config(settings).create().context("cannot create Kafka admin client")?);
        let needed: Vec<Needed> = bases
            .iter()
            .flat_map(|base| {
                let topic = settings.topic(base);
                [
                    Needed {
                        name: dead_letter_topic(&topic),
                        outbox_topic: None,
                        retention_ms: settings.dlq_retention.as_millis().to_string(),
                        partitions: settings.partitions,
                    },
                    Needed {
                        name: topic,
                        outbox_topic: Some((*base).to_owned()),
                        retention_ms: settings.retention.as_millis().to_string(),
                        partitions: settings.partitions,
                    },
                ]
            })
            .collect();
        Ok(Self {
            admin,
            needed,
            settings: settings.clone(),
            status: Status::default(),
            outbox: None,
            created: std::sync::Mutex::new(Vec::new()),
            resets: tokio::sync::watch::Sender::new(BTreeMap::new()),
            started: chrono::Utc::now(),
        })
    }

    /// A keeper that has tried [`Self::prepare`] once: with a healthy broker the topics
    /// exist when this returns; without one the service starts anyway and readiness
    /// names the problem until [`Self::run`] repairs it.
    pub async fn start(settings: &KafkaSettings, bases: &[&str]) -> anyhow::Result<Self> {
        let keeper = Self::new(settings, bases)?;
        if let Err(problem) = keeper.prepare().await {
            tracing::warn!(problem, "starting without every topic; they are created once the broker answers");
        }
        Ok(keeper)
    }

    /// Replays the recent rows of `pool`'s outbox for a topic that lost its log (it was
    /// missing, or its partitions' ends moved backwards: a broker back on an empty store).
    /// Events published there but not yet consumed would otherwise be lost with it; the
    /// consumers deduplicate the rest by event id.
    #[must_use]
    pub fn replay_outbox_on_loss(mut self, pool: sqlx::PgPool) -> Self {
        self.outbox = Some(pool);
        self
    }

    /// The status readiness reads.
    pub fn status(&self) -> Status {
        self.status.clone()
    }

    /// Announcements of topics whose logs restarted, for the service's consumer
    /// ([`super::ConsumerBuilder::rewind_on`]).
    pub fn log_resets(&self) -> LogResets {
        LogResets::new(self.resets.subscribe())
    }

    /// One pass: which topics are missing, create them, bring retention in line.
    /// Returns the problem still standing, if any.
    pub async fn reconcile(&self) -> Result<(), String> {
        let present = match self.describe().await {
            Ok(present) => present,
            Err(error) => {
                tracing::debug!(error = format!("{error:#}"), "topic check: broker did not answer");
                return Err("broker does not answer metadata requests".to_owned());
            }
        };
        let missing: Vec<&Needed> = self.needed.iter().filter(|topic| !present.contains(&topic.name)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = missing.iter().map(|topic| topic.name.as_str()).collect();
        tracing::warn!(topics = ?names, "topics missing; creating them");
        metrics::counter!("kafka_topics_recreated_total").increment(missing.len() as u64);
        match self.create(&missing).await {
            // Metadata may lag creation by a moment; the next pass confirms.
            Ok(()) => Err(format!("topics being created: {}", names.join(", "))),
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "cannot create missing topics");
                Err(format!("topics missing: {}", names.join(", ")))
            }
        }
    }

    /// Reconciles until every topic exists, for at most a few seconds: a service starting
    /// beside a healthy broker has its topics before it serves. A broker that does not
    /// answer is left to [`Self::run`]; the service starts anyway.
    pub async fn prepare(&self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        loop {
            let result = self.reconcile().await;
            self.status.set(result.clone());
            match result {
                Err(problem) if tokio::time::Instant::now() < deadline && !problem.starts_with("broker") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                result => return result,
            }
        }
    }

    /// Reconciles now and then every `KAFKA_TOPIC_CHECK_INTERVAL_MS` until `shutdown`.
    /// (Topics created elsewhere without the retention policy get it from
    /// `infra/scripts/topic_retention.py`, which `make up` runs.)
    pub async fn run(self, shutdown: CancellationToken) {
        let mut certificates = match Certificates::new(&self.settings) {
            Ok(certificates) => Some(certificates),
            Err(error) => {
                tracing::warn!(%error, "cannot create the topic certificates' client; recreated topics go unnoticed");
                None
            }
        };
        let mut first_pass = true;
        let mut replays = PendingReplay::default();
        loop {
            let result = self.reconcile().await;
            let mut lost: Vec<String> = self.created.lock().map(|mut c| std::mem::take(&mut *c)).unwrap_or_default();
            if result.is_ok() {
                let restarted = self.restarted(&mut certificates).await;
                if !restarted.is_empty() {
                    tracing::warn!(topics = ?restarted, "topics lost their logs (recreated, or the broker lost its store)");
                }
                lost.extend(restarted.into_iter().filter(|topic| !lost.contains(topic)).collect::<Vec<_>>());
            }
            if !lost.is_empty() {
                // Topics created before the first pass are new to this process's consumer: it
                // has no position in them to correct.
                if !first_pass {
                    self.resets.send_modify(|counts| {
                        for topic in &lost {
                            *counts.entry(topic.clone()).or_default() += 1;
                        }
                    });
                }
                // Likewise, what this process sent before its first pass went to these topics.
                let bases =
                    self.needed.iter().filter(|t| lost.contains(&t.name)).filter_map(|t| t.outbox_topic.clone());
                replays.add(bases, first_pass.then_some(self.started));
            }
            if let Some(pool) = &self.outbox {
                replays.run(pool, self.settings.retention).await;
            }
            first_pass &= result.is_err();
            self.status.set(result);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.settings.topic_check_interval) => {}
            }
        }
    }

    /// The topics whose logs restarted since the last look (see [`Certificates`]).
    async fn restarted(&self, certificates: &mut Option<Certificates>) -> Vec<String> {
        let Some(mut taken) = certificates.take() else { return Vec::new() };
        let names: Vec<String> = self.needed.iter().map(|topic| topic.name.clone()).collect();
        let looked = tokio::task::spawn_blocking(move || {
            let topics: Vec<&str> = names.iter().map(String::as_str).collect();
            let restarted = taken.restarted(&topics);
            (taken, restarted)
        })
        .await;
        let Ok((taken, restarted)) = looked else { return Vec::new() };
        *certificates = Some(taken);
        restarted.unwrap_or_default().into_iter().collect()
    }

    /// Names of the topics the cluster has, with at least one partition and no error.
    async fn describe(&self) -> anyhow::Result<BTreeSet<String>> {
        let admin = Arc::clone(&self.admin);
        // librdkafka's metadata call blocks its thread.
        let metadata = tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, REQUEST_TIMEOUT))
            .await
            .context("metadata task failed")?
            .context("metadata request failed")?;
        anyhow::ensure!(!metadata.brokers().is_empty(), "metadata lists no broker");
        Ok(metadata
            .topics()
            .iter()
            .filter(|topic| topic.error().is_none() && !topic.partitions().is_empty())
            .map(|topic| topic.name().to_owned())
            .collect())
    }

    async fn create(&self, topics: &[&Needed]) -> anyhow::Result<()> {
        let new_topics: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|topic| {
                NewTopic::new(&topic.name, topic.partitions, TopicReplication::Fixed(self.settings.replication_factor))
                    .set("cleanup.policy", "delete")
                    .set("retention.ms", &topic.retention_ms)
            })
            .collect();
        let options =
            AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT)).request_timeout(Some(REQUEST_TIMEOUT));
        let results = self.admin.create_topics(&new_topics, &options).await.context("create_topics request failed")?;
        for result in results {
            match result {
                // Already existing: another service recreated it since our look, and its log
                // restarted all the same.
                Ok(name) | Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    tracing::info!(topic = name, "topic created");
                    if let Ok(mut created) = self.created.lock() {
                        created.push(name);
                    }
                }
                Err((name, code)) => anyhow::bail!("cannot create topic {name}: {code}"),
            }
        }
        Ok(())
    }
}

/// Creates each topic in `bases` and its `.dlq` when missing, once (tests, tools).
pub async fn ensure_topics(settings: &KafkaSettings, bases: &[&str]) -> anyhow::Result<()> {
    TopicKeeper::new(settings, bases)?.prepare().await.map_err(|problem| anyhow::anyhow!("topics not ready: {problem}"))
}
