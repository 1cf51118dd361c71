//! Keeps the topics a service needs in existence, with their retention policy.
//!
//! Topics vanish in real life: an admin tool deletes one, a local broker restarts on an
//! empty store, or (tansu 0.6) deleting one topic deletes them all. A service that only
//! created its topics at start would then sit on zero partitions, its outbox holding
//! everything, while `/health/ready` said 200. [`TopicKeeper`] instead looks at the
//! cluster's metadata every few seconds, recreates what is missing with the configured
//! partitions, replication and retention, and tells readiness what it found. The same
//! loop lets a service start while the broker is down and create its topics once it answers.
//!
//! A recreated topic numbers its partitions from 0 again, and neither tansu nor librdkafka
//! tells a running consumer so (confluentinc/librdkafka#3255): it would go on reading at
//! its old position, skipping every new message below it. The keeper therefore announces
//! each topic whose log restarted ([`LogResets`]), and the service's consumer reads those
//! partitions again from the beginning; handlers are idempotent, so what it had already
//! handled is recognised and skipped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, OwnedResourceSpecifier, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

use super::base_config;
use crate::configuration::KafkaSettings;
use contracts::events::dead_letter_topic;

/// A one-partition topic every keeper writes a record to (at start, and after a loss) and
/// whose end it remembers. Nothing else writes there and its records
/// never expire, so its end moving back means the broker lost its store, however much
/// traffic has refilled the other topics since.
const STORE_MARKER_TOPIC: &str = "platform.store-marker";

/// How long one metadata or admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What readiness reports about the topics: `None` when every needed topic exists.
#[derive(Debug, Clone)]
pub struct TopicStatus(Arc<RwLock<Option<String>>>);

impl TopicStatus {
    fn new() -> Self {
        Self(Arc::new(RwLock::new(Some("not checked yet".to_owned()))))
    }

    fn set(&self, problem: Option<String>) {
        if let Ok(mut slot) = self.0.write() {
            *slot = problem;
        }
    }

    /// `Err(reason)` while a needed topic is missing or the broker cannot be asked.
    pub fn check(&self) -> Result<(), String> {
        match self.0.read() {
            Ok(slot) => slot.clone().map_or(Ok(()), Err),
            Err(_) => Err("status unavailable".to_owned()),
        }
    }
}

/// Topics whose logs restarted from offset 0 (recreated, or the broker lost its store),
/// each with how many times this keeper has seen that happen. A consumer compares with
/// the counts it last acted on and rewinds the partitions whose count went up.
///
/// It also carries the store's *generation*: the random number in the store marker's
/// first record, which changes only when the broker lost its store. A consumer group commits the
/// generation it has read under (see [`super::ConsumerBuilder::rewind_on`]), so a process
/// that starts after a loss it did not see, with offsets committed into the new logs from
/// the old ones, still knows to read from the beginning.
#[derive(Debug, Clone)]
pub struct LogResets {
    counts: tokio::sync::watch::Receiver<BTreeMap<String, u64>>,
    generation: tokio::sync::watch::Receiver<Option<i64>>,
    marker: String,
}

/// What a keeper announced.
#[derive(Debug)]
pub enum LogReset {
    /// These topics' logs restarted.
    Topics(BTreeSet<String>),
    /// The store's generation is now this (see [`LogResets`]).
    Generation(i64),
}

impl LogResets {
    /// Waits for the next announcement; topics are those reset since `seen`, which is
    /// updated. `None` once the keeper is gone (the service is stopping).
    pub async fn next(&mut self, seen: &mut BTreeMap<String, u64>) -> Option<LogReset> {
        tokio::select! {
            changed = self.counts.changed() => {
                changed.ok()?;
                let now = self.counts.borrow_and_update().clone();
                let reset =
                    now.iter().filter(|(topic, count)| seen.get(*topic) < Some(*count)).map(|(t, _)| t.clone()).collect();
                *seen = now;
                Some(LogReset::Topics(reset))
            }
            changed = self.generation.changed() => {
                changed.ok()?;
                match *self.generation.borrow_and_update() {
                    Some(generation) => Some(LogReset::Generation(generation)),
                    None => Some(LogReset::Topics(BTreeSet::new())),
                }
            }
        }
    }

    /// The counts as they stand, to start comparing from. A generation already known is
    /// announced by the first [`Self::next`].
    pub fn current(&mut self) -> BTreeMap<String, u64> {
        self.generation.mark_changed();
        self.counts.borrow().clone()
    }

    /// The store-marker topic, whose partition 0 carries the group's committed generation.
    pub fn marker_topic(&self) -> &str {
        &self.marker
    }
}

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
    status: TopicStatus,
    /// The service's outbox, replayed when one of its topics lost its log.
    outbox: Option<sqlx::PgPool>,
    /// Topics this keeper found missing since the last pass (and created, or saw created).
    created: std::sync::Mutex<Vec<String>>,
    /// Announces topics whose logs restarted.
    resets: tokio::sync::watch::Sender<BTreeMap<String, u64>>,
    /// The store's generation (see [`LogResets`]), once read.
    generation: tokio::sync::watch::Sender<Option<i64>>,
    /// Configuration of the store marker's reader, made afresh for each use: a consumer that
    /// keeps the marker's old topic id across a wipe fetches by it, and librdkafka 2.12.1
    /// crashes on tansu's answer (see the README, "What heals itself").
    marker_reader: rdkafka::ClientConfig,
    /// When this keeper was made (this process's start, near enough).
    started: chrono::DateTime<chrono::Utc>,
}

impl TopicKeeper {
    /// A keeper for `bases` and their dead-letter topics. Needs no broker yet.
    pub fn new(settings: &KafkaSettings, bases: &[&str]) -> anyhow::Result<Self> {
        let admin = Arc::new(base_config(settings).create().context("cannot create Kafka admin client")?);
        let mut needed: Vec<Needed> = bases
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
        needed.push(Needed {
            name: settings.topic(STORE_MARKER_TOPIC),
            outbox_topic: None,
            // A century, not -1: tansu 0.6 deletes every record of a topic whose
            // `retention.ms` is negative. Its end only moves back when the store is lost.
            retention_ms: "3153600000000".to_owned(),
            // One partition, written and read at partition 0 only: with several, a record
            // written elsewhere leaves partition 0's end behind what the writer remembers,
            // which read as a loss at every start.
            partitions: 1,
        });
        Ok(Self {
            admin,
            needed,
            settings: settings.clone(),
            status: TopicStatus::new(),
            outbox: None,
            created: std::sync::Mutex::new(Vec::new()),
            resets: tokio::sync::watch::Sender::new(BTreeMap::new()),
            generation: tokio::sync::watch::Sender::new(None),
            started: chrono::Utc::now(),
            marker_reader: {
                let mut config = base_config(settings);
                // librdkafka assigns partitions only to a consumer with a group. This one never
                // subscribes, so the group has no members; it keeps, as a committed offset,
                // the generation this service's outbox last sent under.
                config
                    .set("group.id", settings.group(&format!("{}.outbox-generation", settings.client_id)))
                    .set("enable.auto.commit", "false")
                    .set("fetch.wait.max.ms", settings.fetch_wait_max_ms.to_string());
                config
            },
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
    pub fn status(&self) -> TopicStatus {
        self.status.clone()
    }

    /// Announcements of topics whose logs restarted, for the service's consumer
    /// ([`super::ConsumerBuilder::rewind_on`]).
    pub fn log_resets(&self) -> LogResets {
        LogResets {
            counts: self.resets.subscribe(),
            generation: self.generation.subscribe(),
            marker: self.settings.topic(STORE_MARKER_TOPIC),
        }
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
            self.status.set(result.clone().err());
            match result {
                Err(problem) if tokio::time::Instant::now() < deadline && !problem.starts_with("broker") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                result => return result,
            }
        }
    }

    /// Reconciles now and then every `KAFKA_TOPIC_CHECK_INTERVAL_MS` until `shutdown`.
    /// The first pass that finds every topic also aligns the retention of topics created
    /// before the policy existed.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut retention_aligned = false;
        let mut marker: Option<i64> = None;
        let mut outbox_generation: Option<i64> = None;
        loop {
            let result = self.reconcile().await;
            if result.is_ok() && !retention_aligned {
                retention_aligned = self.align_retention().await;
            }
            let mut lost: Vec<String> = self.created.lock().map(|mut c| std::mem::take(&mut *c)).unwrap_or_default();
            let seen = marker;
            if result.is_ok() && self.store_lost(&mut marker).await == Some(true) {
                tracing::warn!("the broker lost its store (the store marker's end moved back)");
                lost.extend(self.needed.iter().map(|t| t.name.clone()));
            }
            if result.is_ok() && (marker != seen || self.generation.borrow().is_none()) {
                self.read_generation().await;
            }
            if !lost.is_empty() {
                // Topics created before the first pass are new to this process's consumer: it
                // has no position in them to correct (the generation covers a group's commits).
                if seen.is_some() {
                    self.resets.send_modify(|counts| {
                        for topic in &lost {
                            *counts.entry(topic.clone()).or_default() += 1;
                        }
                    });
                }
                // Likewise, what this process sent before its first pass went to these topics.
                self.replay_outbox(&lost, seen.is_none().then_some(self.started)).await;
            }
            let generation = *self.generation.borrow();
            if let Some(generation) = generation
                && self.outbox.is_some()
                && outbox_generation != Some(generation)
                && self.outbox_sent_under(generation, outbox_generation.is_some()).await
            {
                outbox_generation = Some(generation);
            }
            self.status.set(result.err());
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.settings.topic_check_interval) => {}
            }
        }
    }

    /// Whether the store-marker topic ends before the end this keeper last saw: the broker
    /// lost its store. Writes a fresh marker when there is none to compare with yet, or
    /// after a loss, and remembers the new end. `None` when the broker does not answer.
    async fn store_lost(&self, remembered: &mut Option<i64>) -> Option<bool> {
        let topic = self.settings.topic(STORE_MARKER_TOPIC);
        let admin = Arc::clone(&self.admin);
        let probe = topic.clone();
        let high = tokio::task::spawn_blocking(move || admin.inner().fetch_watermarks(&probe, 0, REQUEST_TIMEOUT))
            .await
            .ok()?
            .ok()?
            .1;
        let lost = remembered.is_some_and(|seen| high < seen);
        if remembered.is_none() || lost {
            let producer: rdkafka::producer::FutureProducer = base_config(&self.settings).create().ok()?;
            // A random number: if this becomes the first record, it names the store's generation.
            let generation = (uuid::Uuid::new_v4().as_u64_pair().0 >> 1).to_string();
            let record = rdkafka::producer::FutureRecord::<(), _>::to(&topic).partition(0).payload(&generation);
            let delivery = producer.send(record, REQUEST_TIMEOUT).await.ok()?;
            *remembered = Some(delivery.offset + 1);
        } else {
            *remembered = Some(high);
        }
        Some(lost)
    }

    /// Reads the store's generation (the number in the store marker's first record) and
    /// announces it when it changed.
    async fn read_generation(&self) {
        let Ok(reader) = self.marker_reader.create::<rdkafka::consumer::BaseConsumer>() else { return };
        let topic = self.settings.topic(STORE_MARKER_TOPIC);
        let read = tokio::task::spawn_blocking(move || first_record(&reader, &topic)).await.ok().flatten();
        tracing::debug!(generation = read, "store generation read");
        if let Some(generation) = read {
            self.generation.send_if_modified(|current| {
                let changed = *current != Some(generation);
                *current = Some(generation);
                changed
            });
        }
    }

    /// Replays the outbox once per store generation, and records that it did: a process that
    /// dies between noticing a loss and replaying, or that starts after a loss it never saw,
    /// would otherwise never send again what the lost logs held. The generation last sent
    /// under is the committed offset of this service's `<service>.outbox-generation` group on
    /// the store marker, so a wipe deletes it with the logs. Returns whether that is settled.
    /// `recorded_before`: whether this process already recorded a generation (it sent
    /// under an earlier store, so all its recent rows go again).
    async fn outbox_sent_under(&self, generation: i64, recorded_before: bool) -> bool {
        use rdkafka::consumer::Consumer;
        let mut partition = rdkafka::TopicPartitionList::new();
        partition.add_partition(&self.settings.topic(STORE_MARKER_TOPIC), 0);
        let Ok(reader) = self.marker_reader.create::<rdkafka::consumer::BaseConsumer>() else { return false };
        let reader = Arc::new(reader);
        let (probe, asking) = (partition.clone(), Arc::clone(&reader));
        let before = tokio::task::spawn_blocking(move || asking.committed_offsets(probe, REQUEST_TIMEOUT))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|committed| {
                committed.elements().first().map(rdkafka::topic_partition_list::TopicPartitionListElem::offset)
            });
        let Some(before) = before else { return false };
        if before == rdkafka::Offset::Offset(generation) {
            return true;
        }
        // With none recorded (a new service, or a wipe deleted it), what this process sent
        // went to the store as it is now, unless it had recorded an earlier generation; what
        // an earlier process sent may be gone.
        let published_before = (before == rdkafka::Offset::Invalid && !recorded_before).then_some(self.started);
        tracing::warn!(
            ?before,
            generation,
            "the outbox last sent under another store generation; sending its recent events again"
        );
        let topics: Vec<String> =
            self.needed.iter().filter(|t| t.outbox_topic.is_some()).map(|t| t.name.clone()).collect();
        self.replay_outbox(&topics, published_before).await;
        if partition.set_all_offsets(rdkafka::Offset::Offset(generation)).is_err() {
            return false;
        }
        tokio::task::spawn_blocking(move || reader.commit(&partition, rdkafka::consumer::CommitMode::Sync))
            .await
            .is_ok_and(|committed| committed.is_ok())
    }

    /// Marks the outbox rows of `topics` published within the retention unpublished, so
    /// the relay sends them again, in their original order.
    /// With `published_before`, only rows published before then.
    async fn replay_outbox(&self, topics: &[String], published_before: Option<chrono::DateTime<chrono::Utc>>) {
        let Some(pool) = &self.outbox else { return };
        let bases: Vec<String> =
            self.needed.iter().filter(|t| topics.contains(&t.name)).filter_map(|t| t.outbox_topic.clone()).collect();
        if bases.is_empty() {
            return;
        }
        let replayed = sqlx::query(
            "UPDATE outbox SET published_at = NULL
             WHERE topic = ANY($1) AND published_at > now() - make_interval(secs => $2)
               AND ($3::timestamptz IS NULL OR published_at < $3)",
        )
        .bind(&bases)
        .bind(self.settings.retention.as_secs_f64())
        .bind(published_before)
        .execute(pool)
        .await;
        match replayed {
            Ok(result) => {
                tracing::warn!(topics = ?bases, events = result.rows_affected(), "a topic lost its log; replaying the outbox's recent events");
                metrics::counter!("outbox_replayed_events_total").increment(result.rows_affected());
            }
            Err(error) => tracing::warn!(%error, topics = ?bases, "cannot replay the outbox"),
        }
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
        let results =
            self.admin.create_topics(&new_topics, &self.options()).await.context("create_topics request failed")?;
        for result in results {
            match result {
                Ok(name) => {
                    let partitions = topics.iter().find(|topic| topic.name == name).map(|topic| topic.partitions);
                    tracing::info!(topic = name, partitions, "topic created");
                    if let Ok(mut created) = self.created.lock() {
                        created.push(name);
                    }
                }
                // Another service recreated it since our look: its log restarted all the same.
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    if let Ok(mut created) = self.created.lock() {
                        created.push(name);
                    }
                }
                Err((name, code)) => anyhow::bail!("cannot create topic {name}: {code}"),
            }
        }
        Ok(())
    }

    /// Gives existing topics the retention policy; returns whether that is settled
    /// (done, or not supported by this broker: then it is logged once and not retried).
    async fn align_retention(&self) -> bool {
        let specifiers: Vec<ResourceSpecifier<'_>> =
            self.needed.iter().map(|topic| ResourceSpecifier::Topic(&topic.name)).collect();
        let current: HashMap<String, (Option<String>, Option<String>)> =
            match self.admin.describe_configs(&specifiers, &self.options()).await {
                Ok(results) => results
                    .into_iter()
                    .flatten()
                    .filter_map(|resource| {
                        let OwnedResourceSpecifier::Topic(name) = &resource.specifier else { return None };
                        let value = |key: &str| resource.get(key).and_then(|entry| entry.value.clone());
                        Some((name.clone(), (value("cleanup.policy"), value("retention.ms"))))
                    })
                    .collect(),
                Err(error) => {
                    tracing::warn!(%error, "cannot read topic configurations; retention left as it is");
                    return true;
                }
            };
        let stale: Vec<&Needed> = self
            .needed
            .iter()
            .filter(|topic| {
                current.get(&topic.name).is_some_and(|(policy, retention)| {
                    !policy.as_deref().is_some_and(|policy| policy.contains("delete"))
                        || retention.as_deref() != Some(topic.retention_ms.as_str())
                })
            })
            .collect();
        if stale.is_empty() {
            return true;
        }
        let changes: Vec<AlterConfig<'_>> = stale
            .iter()
            .map(|topic| {
                AlterConfig::new(ResourceSpecifier::Topic(&topic.name))
                    .set("cleanup.policy", "delete")
                    .set("retention.ms", &topic.retention_ms)
            })
            .collect();
        match self.admin.alter_configs(&changes, &self.options()).await {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(resource) => tracing::info!(?resource, "retention policy applied"),
                        Err((resource, code)) => tracing::warn!(?resource, %code, "cannot apply retention policy"),
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot apply retention policy to existing topics"),
        }
        true
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT)).request_timeout(Some(REQUEST_TIMEOUT))
    }
}

/// The number in the first record of `topic`'s partition 0, if it has one (0 for a record
/// from before markers carried numbers).
fn first_record(reader: &rdkafka::consumer::BaseConsumer, topic: &str) -> Option<i64> {
    use rdkafka::Message;
    use rdkafka::consumer::Consumer;
    let mut partitions = rdkafka::TopicPartitionList::new();
    partitions.add_partition_offset(topic, 0, rdkafka::Offset::Beginning).ok()?;
    if let Err(error) = reader.assign(&partitions) {
        tracing::warn!(%error, "cannot read the store marker");
        return None;
    }
    let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
    let found = loop {
        if std::time::Instant::now() >= deadline {
            break None;
        }
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let number = message.payload().and_then(|payload| std::str::from_utf8(payload).ok()?.parse().ok());
                break Some(number.unwrap_or(0));
            }
            Some(Err(error)) => tracing::debug!(%error, "cannot read the store marker"),
            None => {}
        }
    };
    let _ = reader.unassign();
    found
}

/// Creates each topic in `bases` and its `.dlq` when missing, once (tests, tools).
pub async fn ensure_topics(settings: &KafkaSettings, bases: &[&str]) -> anyhow::Result<()> {
    TopicKeeper::new(settings, bases)?.prepare().await.map_err(|problem| anyhow::anyhow!("topics not ready: {problem}"))
}
