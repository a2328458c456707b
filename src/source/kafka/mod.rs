//! The Kafka source: consumes topics as a member of a consumer group and
//! commits offsets only for records the sink has written (at-least-once).
//!
//! Offsets: each batch holds one run of messages from one partition and
//! carries an acknowledgement with "the offset after its last message".
//! When the sink has written the batch the acknowledgement comes back here
//! (through `Reader::acks`), and the offset is stored in librdkafka, which
//! commits stored offsets every second (`enable.auto.offset.store=false`,
//! auto commit on). Batches of a partition are written in order, so a
//! stored offset never runs ahead of the output. When partitions are
//! revoked, their delivered offsets are committed synchronously before they
//! go; at the end of a run everything delivered is committed the same way.
//!
//! Backpressure: the read loop sends each batch into the pipeline and
//! waits while it is full, without polling the consumer. librdkafka then
//! prefetches only up to `queued.max.messages.kbytes` (8 MiB here) or
//! `queued.min.messages` (50 000) and stops fetching, so memory stays flat
//! however far behind we are.

mod batcher;
mod partitions;
mod topic_watch;

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
    StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::Statistics;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

pub use self::partitions::{ConsumerLag, PartitionLag, PartitionOffset};

use self::batcher::{Batcher, Finished, Message, ValueFormat};
use self::partitions::Partitions;
use super::{Closed, Interrupted, Source, SourceContext};
use crate::ack::Ack;
use crate::codec::Format;
use crate::error::{Error, Result};
use crate::kafka::{self, client_context_via_log, ClientLog, KafkaConfig, QUERY_TIMEOUT};
use crate::record::{RawBatch, SourceInfo};

/// Where a group without committed offsets starts (`--offset-reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OffsetReset {
    /// At the oldest message still in the partition.
    #[default]
    Earliest,
    /// At the end: only messages produced from now on.
    Latest,
}

impl OffsetReset {
    fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// How the Kafka source consumes.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// Brokers and librdkafka settings.
    pub config: KafkaConfig,
    /// Topic names; one starting with `^` is a regular expression.
    pub topics: Vec<String>,
    /// The consumer group.
    pub group: String,
    /// Where to start without a committed offset.
    pub offset_reset: OffsetReset,
    /// Interrupted once every assigned partition is read up to its end offset as
    /// of its assignment.
    pub until_end: bool,
    /// What message values hold.
    pub format: Format,
    /// CSV cell separator.
    pub delimiter: u8,
    /// CSV: each message's first row names the columns.
    pub header: bool,
    /// Keep each message's key, timestamp and headers for `_origin`.
    pub origin: bool,
}

/// The consumer's settings that differ from librdkafka's defaults; `-X`
/// overrides any of them.
fn consumer_defaults(options: &KafkaOptions) -> Vec<(&str, &str)> {
    vec![
        ("group.id", &options.group),
        ("auto.offset.reset", options.offset_reset.as_str()),
        ("enable.auto.commit", "true"),
        ("auto.commit.interval.ms", "1000"),
        // Offsets are stored by us, once the sink has written the records.
        ("enable.auto.offset.store", "false"),
        (
            "enable.partition.eof",
            if options.until_end { "true" } else { "false" },
        ),
        // Bound the prefetch: about this much, plus one fetch response, is
        // what the client holds while the pipeline is full. The message
        // count matters as much as the bytes for small messages (each
        // queued message costs librdkafka a few hundred bytes).
        ("queued.max.messages.kbytes", "8192"),
        ("queued.min.messages", "50000"),
        ("fetch.max.bytes", "4194304"),
        // Once the prefetch is full, librdkafka waits this long before
        // fetching again (1 s by default, which stalls a fast pipeline).
        ("fetch.queue.backoff.ms", "10"),
        // Statistics carry the high watermarks that the lag figure needs.
        ("statistics.interval.ms", "5000"),
    ]
}

/// Consumes Kafka topics; see the module documentation.
pub struct KafkaSource {
    options: KafkaOptions,
    consumer: Arc<StreamConsumer<GroupContext>>,
    lag: ConsumerLag,
    /// Woken by the rebalance callbacks, so `--until-end` notices an
    /// assignment that has nothing to read.
    changed: Arc<Notify>,
    /// [`KafkaSource::connect`] already saw the brokers and the topics.
    connected: bool,
}

impl KafkaSource {
    /// Makes the consumer (no network traffic yet: a bad `-X` fails here).
    /// Needs a Tokio runtime.
    pub fn new(options: KafkaOptions) -> Result<Self> {
        if options.topics.is_empty() {
            return Err(Error::Config("give at least one --topic".into()));
        }
        for topic in options.topics.iter().filter(|t| !t.starts_with('^')) {
            kafka::check_topic_name(topic).map_err(Error::Config)?;
        }
        // A cooperative rebalance first hands a joining member an empty
        // incremental assignment, which `--until-end` would take as "all
        // read" and exit having read nothing.
        let cooperative = options.config.settings.iter().any(|(key, value)| {
            key == "partition.assignment.strategy" && value.contains("cooperative")
        });
        if options.until_end && cooperative {
            return Err(Error::Config(
                "--until-end does not work with a cooperative partition.assignment.strategy; \
                 use the default (range,roundrobin) or group.protocol=consumer"
                    .into(),
            ));
        }
        let config = options.config.client_config(&consumer_defaults(&options));
        let lag = ConsumerLag::default();
        let changed = Arc::new(Notify::new());
        let context = GroupContext {
            log: ClientLog::new("source", &options.config.brokers),
            partitions: lag.clone(),
            until_end: options.until_end.then_some(options.offset_reset),
            changed: changed.clone(),
        };
        let consumer: StreamConsumer<GroupContext> = config
            .create_with_context(context)
            .map_err(kafka::creation_error)?;
        Ok(KafkaSource {
            options,
            consumer: Arc::new(consumer),
            lag,
            changed,
            connected: false,
        })
    }

    /// Waits until the brokers answer (logging while they do not), then
    /// checks that every named topic exists. False if `shutdown` came
    /// first. Running the source does this too; doing it first keeps a
    /// missing topic a start-up error, before any pipeline runs.
    pub async fn connect(&mut self, shutdown: &CancellationToken) -> Result<bool> {
        let connected = wait_for_topics(&self.consumer, &self.options, shutdown).await?;
        self.connected = connected;
        Ok(connected)
    }

    /// The per-partition consumer lag, readable while the source runs.
    pub fn lag(&self) -> ConsumerLag {
        self.lag.clone()
    }
}

impl Source for KafkaSource {
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<()>> {
        Box::pin(consume(*self, ctx))
    }
}

/// How long the end of a run may wait for the final commit, and for
/// leaving the group, before giving up on them (brokers down).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);

async fn consume(source: KafkaSource, ctx: SourceContext) -> Result<()> {
    let KafkaSource {
        options,
        consumer,
        lag,
        changed,
        connected,
    } = source;
    let SourceContext {
        out,
        shutdown,
        rejects,
        batch_records,
        batch_bytes,
    } = ctx;
    if !connected && !wait_for_topics(&consumer, &options, &shutdown).await? {
        return Ok(());
    }
    let topics: Vec<&str> = options.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|error| Error::Kafka(format!("cannot subscribe: {}", kafka::describe(&error))))?;

    // Acknowledgements of sent batches. Each batch's ack holds a clone of
    // the sender; when every batch is written or dropped and the reader's
    // own clone is gone, `recv` returns `None`: nothing is in flight.
    let (acks_tx, acks_rx) = mpsc::unbounded_channel();
    let format = ValueFormat {
        format: options.format,
        delimiter: options.delimiter,
        header: options.header,
        origin: options.origin,
    };
    let mut reader = Reader {
        consumer: &consumer,
        lag: &lag,
        rejects: &rejects,
        out,
        acks_tx,
        acks: acks_rx,
        batcher: Batcher::new(format, batch_records, batch_bytes),
        sources: HashMap::new(),
        until_end: options.until_end,
    };
    let named: Vec<String> = options
        .topics
        .iter()
        .filter(|topic| !topic.starts_with('^'))
        .cloned()
        .collect();
    let watcher = tokio::spawn(topic_watch::watch(consumer.clone(), named));
    let result = reader.read(&shutdown, &changed).await;
    watcher.abort();
    let Reader {
        out,
        acks_tx,
        mut acks,
        ..
    } = reader;

    // Drain: closing our end of the pipeline lets it finish; each written
    // batch acknowledges here, and the channel closes once none is left.
    drop(out);
    drop(acks_tx);
    while let Some(delivered) = acks.recv().await {
        store_delivered(&*consumer, &lag, delivered);
    }
    let committer = consumer.clone();
    let partitions = lag.clone();
    let committed =
        tokio::task::spawn_blocking(move || commit_delivered(&*committer, &partitions, "final"));
    if tokio::time::timeout(CLOSE_TIMEOUT, committed)
        .await
        .is_err()
    {
        tracing::warn!(
            "kafka source: the final offset commit did not finish in {} s (brokers down?); \
             the next run starts from the last committed offsets",
            CLOSE_TIMEOUT.as_secs()
        );
    }
    let known = |offset: Option<i64>| offset.map_or("?".to_string(), |o| o.to_string());
    for partition in lag.snapshot() {
        tracing::info!(
            "kafka source: {}/{}: read to {}, written to {}, committed {}, lag {}",
            partition.topic,
            partition.partition,
            known(partition.read),
            known(partition.delivered),
            known(partition.committed),
            known(partition.lag)
        );
    }
    // Leaving the group runs the revoke callback (nothing left to commit)
    // and may block on unreachable brokers: do it off the runtime, bounded.
    let closing = tokio::task::spawn_blocking(move || drop(consumer));
    if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
        tracing::warn!("kafka source: leaving the consumer group timed out");
    }
    result
}

/// A batch the sink has written: its partition can be committed up to
/// `next_offset` (if still assigned under `epoch`).
#[derive(Debug)]
struct Delivered {
    source: Arc<SourceInfo>,
    epoch: u64,
    next_offset: i64,
}

/// The read loop's state.
struct Reader<'a> {
    consumer: &'a StreamConsumer<GroupContext>,
    lag: &'a ConsumerLag,
    rejects: &'a crate::pipeline::Rejects,
    /// Into the pipeline; the decode stage holds the receiver.
    out: super::RawSender,
    /// Cloned into every batch's ack.
    acks_tx: mpsc::UnboundedSender<Delivered>,
    /// Acknowledgements of written batches, fired by the sink.
    acks: mpsc::UnboundedReceiver<Delivered>,
    batcher: Batcher,
    /// One shared `SourceInfo` per partition, so batches do not allocate it.
    sources: HashMap<String, HashMap<i32, Arc<SourceInfo>>>,
    until_end: bool,
}

impl Reader<'_> {
    fn partitions(&self) -> MutexGuard<'_, Partitions> {
        self.lag.lock()
    }

    /// Reads until shutdown, `--until-end`, the pipeline closing, or a
    /// permanent error; every message read is in a sent batch on return.
    async fn read(&mut self, shutdown: &CancellationToken, changed: &Notify) -> Result<()> {
        let result = self.read_messages(shutdown, changed).await;
        let rest = self.batcher.take_all();
        let flushed = self.send_batches(rest).await;
        match (result, flushed) {
            (Err(Interrupted::Failed(error)), _) | (_, Err(Interrupted::Failed(error))) => {
                Err(error)
            }
            _ => Ok(()),
        }
    }

    async fn read_messages(
        &mut self,
        shutdown: &CancellationToken,
        changed: &Notify,
    ) -> Result<(), Interrupted> {
        let consumer = self.consumer;
        let mut stream = consumer.stream();
        loop {
            if self.until_end && self.partitions().all_at_end() {
                tracing::info!(
                    "kafka source: every assigned partition is read to its end (--until-end)"
                );
                return Ok(());
            }
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                Some(delivered) = self.acks.recv() => {
                    store_delivered(consumer, self.lag, delivered);
                    continue;
                }
                _ = changed.notified() => continue,
                next = stream.next() => next,
            };
            // A burst: take every message ready now, sending full batches
            // as they fill, then the partial one once nothing is ready.
            let mut next = next;
            while let Some(result) = next {
                match result {
                    Ok(message) => self.add(&message)?,
                    Err(error) => self.consumer_error(error)?,
                }
                if self.batcher.has_ready() {
                    let full = self.batcher.take_ready();
                    self.send_batches(full).await?;
                    // Under a steady stream the burst may not end by
                    // itself: look for the end here too.
                    if self.until_end && self.partitions().all_at_end() {
                        break;
                    }
                }
                if shutdown.is_cancelled() {
                    return Ok(());
                }
                next = stream.next().now_or_never().flatten();
            }
            let partial = self.batcher.take_all();
            self.send_batches(partial).await?;
        }
    }

    /// Copies one message into the batch of its partition.
    fn add(&mut self, message: &BorrowedMessage<'_>) -> Result<(), Interrupted> {
        if self.consumer.context().log.is_down() {
            self.consumer.context().log.mark_up();
        }
        // Headers are parsed by librdkafka on request: only for --origin.
        let headers = match self.batcher.origin().then(|| message.headers()).flatten() {
            Some(headers) => headers
                .iter()
                .map(|header| (header.key, header.value))
                .collect(),
            None => Vec::new(),
        };
        let view = Message {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            payload: message.payload(),
            key: message.key(),
            timestamp: message.timestamp().to_millis(),
            headers,
        };
        let sources = &mut self.sources;
        let lag = self.lag;
        let info = || {
            let source = sources
                .entry(view.topic.to_string())
                .or_default()
                .entry(view.partition)
                .or_insert_with(|| {
                    Arc::new(SourceInfo::Kafka {
                        topic: view.topic.to_string(),
                        partition: view.partition,
                    })
                })
                .clone();
            // Epoch 0 is no assignment's: a message read after its
            // partition was revoked is output, never committed.
            let epoch = lag.lock().epoch(view.topic, view.partition).unwrap_or(0);
            (source, epoch)
        };
        let added = self.batcher.add(&view, info, self.rejects);
        // A message rejected by the batcher is in no batch; it was read all
        // the same (`read` = written + rejected).
        let rejected = self.batcher.take_rejected();
        if rejected > 0 {
            self.out.count_unsent(rejected);
        }
        added?;
        Ok(())
    }

    /// Handles an error the consumer returned instead of a message. Most
    /// are passing (and already logged by the client context).
    fn consumer_error(&mut self, error: KafkaError) -> Result<(), Interrupted> {
        if let Some(reason) = self.consumer.context().log.permanent_error() {
            return Err(Interrupted::Failed(Error::Kafka(reason)));
        }
        match error {
            KafkaError::PartitionEOF(partition) => {
                let ambiguous = self.partitions().end_reached(partition);
                if !ambiguous.is_empty() {
                    self.check_positions(&ambiguous);
                }
                Ok(())
            }
            KafkaError::MessageConsumptionFatal(code) => Err(Interrupted::Failed(self.fatal(code))),
            other => match kafka::error_code(&other) {
                Some(code) if kafka::is_permanent(code) => {
                    Err(Interrupted::Failed(self.fatal(code)))
                }
                _ => Ok(()),
            },
        }
    }

    fn fatal(&self, code: RDKafkaErrorCode) -> Error {
        let reason = self.consumer.context().log.last_error();
        Error::Kafka(
            reason.unwrap_or_else(|| kafka::describe(&KafkaError::MessageConsumption(code))),
        )
    }

    /// After an end-of-partition event that names only a partition number
    /// shared by several topics: asks the consumer where each stands.
    fn check_positions(&self, candidates: &[(String, i32)]) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        let mut partitions = self.partitions();
        for (topic, partition) in candidates {
            if let Some(Offset::Offset(position)) = positions
                .find_partition(topic, *partition)
                .map(|element| element.offset())
            {
                partitions.position(topic, *partition, position);
            }
        }
    }

    /// Sends finished batches in order, each with an ack that reports its
    /// partition's next offset back here once the sink has written it.
    async fn send_batches(&mut self, batches: Vec<Finished>) -> Result<(), Interrupted> {
        for finished in batches {
            let Finished {
                mut batch,
                epoch,
                next_offset,
            } = finished;
            if let SourceInfo::Kafka { topic, partition } = &*batch.source {
                self.partitions()
                    .read(topic, *partition, epoch, next_offset);
            }
            let acks = self.acks_tx.clone();
            let source = batch.source.clone();
            batch.acks.push(Ack::new(move || {
                // The receiver is gone only once the source has ended.
                let _ = acks.send(Delivered {
                    source,
                    epoch,
                    next_offset,
                });
            }));
            self.send(batch).await?;
        }
        Ok(())
    }

    /// Sends one batch, waiting while the pipeline is full; stores the
    /// offsets of batches written meanwhile. The send is never dropped
    /// half-way (it is polled to completion), so no batch is lost.
    async fn send(&mut self, batch: RawBatch) -> Result<(), Closed> {
        while let Ok(delivered) = self.acks.try_recv() {
            store_delivered(self.consumer, self.lag, delivered);
        }
        let send = self.out.send(batch);
        tokio::pin!(send);
        loop {
            tokio::select! {
                biased;
                sent = &mut send => return sent,
                Some(delivered) = self.acks.recv() => {
                    store_delivered(self.consumer, self.lag, delivered);
                }
            }
        }
    }
}

/// Stores the offset of a written batch in librdkafka, which commits it
/// with the next automatic commit.
fn store_delivered<C: Consumer<GroupContext>>(
    consumer: &C,
    lag: &ConsumerLag,
    delivered: Delivered,
) {
    let SourceInfo::Kafka { topic, partition } = &*delivered.source else {
        return;
    };
    if !lag
        .lock()
        .deliver(topic, *partition, delivered.epoch, delivered.next_offset)
    {
        return;
    }
    let mut list = TopicPartitionList::new();
    if list
        .add_partition_offset(topic, *partition, Offset::Offset(delivered.next_offset))
        .is_ok()
    {
        if let Err(error) = consumer.store_offsets(&list) {
            tracing::debug!(
                "kafka source: cannot store offset {} of {topic}/{partition}: {}",
                delivered.next_offset,
                kafka::describe(&error)
            );
        }
    }
}

/// Commits, synchronously, every delivered offset not committed yet.
fn commit_delivered<C: Consumer<GroupContext>>(consumer: &C, lag: &ConsumerLag, why: &str) {
    let pending = lag.lock().uncommitted();
    commit_offsets(consumer, lag, &pending, why);
}

fn commit_offsets<C: Consumer<GroupContext>>(
    consumer: &C,
    lag: &ConsumerLag,
    offsets: &[PartitionOffset],
    why: &str,
) {
    if offsets.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for offset in offsets {
        let _ = list.add_partition_offset(
            &offset.topic,
            offset.partition,
            Offset::Offset(offset.offset),
        );
    }
    let described = describe_offsets(offsets);
    match consumer.commit(&list, CommitMode::Sync) {
        Ok(()) => {
            let mut partitions = lag.lock();
            for offset in offsets {
                partitions.committed(&offset.topic, offset.partition, offset.offset);
            }
            tracing::info!("kafka source: committed ({why}) {described}");
        }
        Err(error) => tracing::warn!(
            "kafka source: cannot commit ({why}) {described}: {}; \
             those records will be read again by the next consumer",
            kafka::describe(&error)
        ),
    }
}

fn describe_offsets(offsets: &[PartitionOffset]) -> String {
    offsets
        .iter()
        .map(|o| format!("{}/{}@{}", o.topic, o.partition, o.offset))
        .collect::<Vec<_>>()
        .join(" ")
}

fn describe_list(list: &TopicPartitionList) -> String {
    let names: Vec<String> = list
        .elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(" ")
    }
}

/// Waits until the brokers answer and checks that every named topic
/// exists. False when shutdown came first.
async fn wait_for_topics(
    consumer: &Arc<StreamConsumer<GroupContext>>,
    options: &KafkaOptions,
    shutdown: &CancellationToken,
) -> Result<bool> {
    let named: Vec<String> = options
        .topics
        .iter()
        .filter(|topic| !topic.starts_with('^'))
        .cloned()
        .collect();
    let mut warned: Option<Instant> = None;
    let mut failures = 0u32;
    loop {
        let probe = consumer.clone();
        let topics = named.clone();
        let check = tokio::task::spawn_blocking(move || check_topics(&*probe, &topics));
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return Ok(false),
            outcome = serving_events(consumer, check) => {
                outcome.map_err(|e| Error::Kafka(format!("internal error: {e}")))?
            }
        };
        if let Some(reason) = consumer.context().log.permanent_error() {
            return Err(Error::Kafka(reason));
        }
        match outcome {
            Ok(()) => {
                consumer.context().log.mark_up();
                return Ok(true);
            }
            Err(TopicCheck::Missing(topic)) => {
                return Err(Error::Kafka(format!(
                    "topic `{topic}` does not exist on {}",
                    options.config.brokers
                )))
            }
            Err(TopicCheck::Permanent(reason)) => return Err(Error::Kafka(reason)),
            Err(TopicCheck::Unreachable(reason)) => {
                // Not on the first failure: a refused login shows up as a
                // lost connection first, and as what it is a moment later.
                failures += 1;
                if failures >= 2 && warned.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(
                        "kafka source: cannot reach the brokers at {} ({reason}); \
                         retrying until they answer (Ctrl-C to stop)",
                        options.config.brokers
                    );
                    warned = Some(Instant::now());
                }
                consumer.context().log.mark_down();
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(false),
                    _ = serving_events(consumer, tokio::time::sleep(Duration::from_secs(1))) => {}
                }
            }
        }
    }
}

/// Runs `work` while serving the consumer's queued events (librdkafka's
/// logs, errors, statistics) as they come, however many: so its own reasons
/// (connection refused, a refused login...) reach the client context, and
/// the log, before `work` ends. Serving a fixed number (64) per check
/// instead let `-X debug=...`, which queues more log events than that
/// between two checks, bury a refused login behind an ever longer backlog:
/// the run retried for ever. Only for before the subscription: a message
/// served here would be lost.
async fn serving_events<F: std::future::Future>(
    consumer: &StreamConsumer<GroupContext>,
    work: F,
) -> F::Output {
    let mut events = consumer.stream();
    tokio::pin!(work);
    loop {
        tokio::select! {
            output = &mut work => return output,
            // Errors were handed to the context while being served.
            _ = events.next() => {}
        }
    }
}

/// How long the start-up check waits for the brokers before saying they
/// do not answer (and trying again).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the start-up metadata check failed.
enum TopicCheck {
    Missing(String),
    Permanent(String),
    Unreachable(String),
}

fn check_topics<C: Consumer<GroupContext>>(
    consumer: &C,
    topics: &[String],
) -> Result<(), TopicCheck> {
    let classify = |error: KafkaError| match kafka::error_code(&error) {
        Some(code) if kafka::is_permanent(code) => TopicCheck::Permanent(
            consumer
                .context()
                .log
                .last_error()
                .unwrap_or_else(|| kafka::describe(&error)),
        ),
        _ => TopicCheck::Unreachable(kafka::describe(&error)),
    };
    if topics.is_empty() {
        // Patterns only: just see that the brokers answer.
        return consumer
            .fetch_metadata(None, PROBE_TIMEOUT)
            .map(|_| ())
            .map_err(classify);
    }
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), PROBE_TIMEOUT)
            .map_err(classify)?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(TopicCheck::Missing(topic.clone()));
        };
        match found.error().map(RDKafkaErrorCode::from) {
            None if found.partitions().is_empty() => {
                return Err(TopicCheck::Missing(topic.clone()))
            }
            None => {}
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                return Err(TopicCheck::Missing(topic.clone()))
            }
            Some(code) if kafka::is_permanent(code) => {
                return Err(TopicCheck::Permanent(format!(
                    "topic `{topic}`: {}",
                    kafka::describe(&KafkaError::MetadataFetch(code))
                )))
            }
            Some(code) => {
                return Err(TopicCheck::Unreachable(format!(
                    "topic `{topic}`: {}",
                    kafka::describe(&KafkaError::MetadataFetch(code))
                )))
            }
        }
    }
    Ok(())
}

/// The consumer's context: logs, statistics, and the rebalance callbacks
/// that keep [`Partitions`] true and commit before partitions go.
struct GroupContext {
    log: ClientLog,
    partitions: ConsumerLag,
    /// `--until-end` (with the reset policy, to know where a partition
    /// without a committed offset starts).
    until_end: Option<OffsetReset>,
    changed: Arc<Notify>,
}

impl GroupContext {
    fn on_stats(&self, statistics: &Statistics) {
        let mut partitions = self.partitions.lock();
        for (name, topic) in &statistics.topics {
            for (number, partition) in &topic.partitions {
                if *number >= 0 && partition.hi_offset >= 0 {
                    partitions.set_high_watermark(name, *number, partition.hi_offset);
                }
            }
        }
    }

    /// `--until-end`: each newly assigned partition's end offset now, and
    /// where reading it starts (committed offset, else the reset policy).
    /// One request each for the ends, the starts and the committed offsets.
    fn find_ends(
        &self,
        consumer: &BaseConsumer<Self>,
        assigned: &TopicPartitionList,
        reset: OffsetReset,
    ) {
        let started = Instant::now();
        let ends = list_offsets(consumer, assigned, Offset::End);
        let lows = list_offsets(consumer, assigned, Offset::Beginning);
        let committed = consumer.committed_offsets(assigned.clone(), QUERY_TIMEOUT);
        let found = |list: &KafkaResult<TopicPartitionList>, topic: &str, partition: i32| match list
            .as_ref()
            .ok()
            .and_then(|list| list.find_partition(topic, partition))
            .map(|element| element.offset())
        {
            Some(Offset::Offset(offset)) => Some(offset),
            _ => None,
        };
        let mut partitions = self.partitions.lock();
        for element in assigned.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let (Some(end), Some(low)) = (
                found(&ends, topic, partition),
                found(&lows, topic, partition),
            ) else {
                tracing::warn!(
                    "kafka source: cannot read the end offset of {topic}/{partition}; \
                     --until-end waits for its end-of-partition event instead"
                );
                continue;
            };
            let committed = found(&committed, topic, partition);
            if let Some(committed) = committed {
                partitions.committed(topic, partition, committed);
            }
            let start = match committed {
                Some(offset) if (low..=end).contains(&offset) => offset,
                _ => match reset {
                    OffsetReset::Earliest => low,
                    OffsetReset::Latest => end,
                },
            };
            tracing::debug!(
                "kafka source: {topic}/{partition}: reading from {start} to end offset {end}"
            );
            partitions.set_end(topic, partition, start, end);
        }
        tracing::debug!("kafka source: end offsets found in {:?}", started.elapsed());
    }
}

/// The earliest (`Offset::Beginning`) or end (`Offset::End`) offset of
/// each partition of `list`, in one ListOffsets round trip.
fn list_offsets(
    consumer: &BaseConsumer<GroupContext>,
    list: &TopicPartitionList,
    which: Offset,
) -> KafkaResult<TopicPartitionList> {
    let mut query = TopicPartitionList::new();
    for element in list.elements() {
        query.add_partition_offset(element.topic(), element.partition(), which)?;
    }
    consumer.offsets_for_times(query, QUERY_TIMEOUT)
}

client_context_via_log!(GroupContext);

fn pairs(list: &TopicPartitionList) -> Vec<(String, i32)> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let revoked = pairs(list);
                let finished = {
                    let mut partitions = self.partitions.lock();
                    let finished = partitions.revoke(revoked.iter().map(|(t, p)| (t.as_str(), *p)));
                    // Eager rebalancing takes every partition away and then
                    // hands out a new assignment; cooperative moves only some.
                    if !matches!(
                        consumer.rebalance_protocol(),
                        RebalanceProtocol::Cooperative
                    ) {
                        partitions.await_assignment();
                    }
                    finished
                };
                tracing::info!("kafka source: partitions revoked: {}", describe_list(list));
                if consumer.assignment_lost() {
                    crate::warn_limited!(
                        "kafka source: the group dropped this consumer (too slow, or the brokers \
                         were away); records not yet committed will be read again"
                    );
                }
                commit_offsets(consumer, &self.partitions, &finished, "revoked partitions");
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(error) => {
                crate::warn_limited!("kafka source: rebalance failed: {}", kafka::describe(error))
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let assigned = pairs(list);
            self.partitions
                .lock()
                .assign(assigned.iter().map(|(t, p)| (t.as_str(), *p)));
            tracing::info!(
                "kafka source: assigned {} partitions: {}",
                assigned.len(),
                describe_list(list)
            );
            if let Some(reset) = self.until_end {
                self.find_ends(consumer, list, reset);
            }
            self.changed.notify_one();
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                let mut partitions = self.partitions.lock();
                for element in offsets.elements() {
                    if let Offset::Offset(offset) = element.offset() {
                        partitions.committed(element.topic(), element.partition(), offset);
                    }
                }
            }
            // Nothing new to commit is not a failure.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => tracing::debug!(
                "kafka source: automatic commit failed: {} (retried with the next)",
                kafka::describe(&error)
            ),
        }
    }
}
