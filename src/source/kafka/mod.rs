//! The Kafka source: consumes topics as a member of a consumer group and
//! commits offsets only for records the sink has written (at-least-once).
//!
//! Offsets: each batch holds one run of messages from one partition and
//! carries an acknowledgement with "the offset after its last message".
//! When the sink has written the batch the acknowledgement comes back to
//! the read loop, and the offset is stored in librdkafka, which commits
//! stored offsets every second (`enable.auto.offset.store=false`, auto
//! commit on). Batches of a partition are written in order, so a stored
//! offset never runs ahead of the output. When partitions are revoked,
//! their delivered offsets are committed synchronously before they go; at
//! the end of a run everything delivered is committed the same way.
//!
//! One job per module:
//! - `options`: what the source is asked to do, its checks and the
//!   consumer's default settings;
//! - this module: [`KafkaSource`], made from the options;
//! - `startup`: waiting for the brokers and the named topics;
//! - `lifecycle`: one run: subscribe, read, drain, final commit, leave;
//! - `consume_loop`: the read loop, batches out, acknowledgements in;
//! - `commit`: storing and committing offsets;
//! - `rebalance`: the consumer context and its rebalance callbacks (and
//!   how their blocking work keeps off the tokio workers);
//! - `partitions`: the partition table;
//! - `batcher`: messages into per-partition batches;
//! - `topic_watch`: named topics deleted mid-run;
//! - `start`: `--from` and `--from-timestamp`, placed on assignment;
//! - `origin`: a message's key, timestamp and headers as JSON, and
//!   `--keep-tombstones` records;
//! - `progress`: the stats line while it runs, the watermarks at the end.
//!
//! Log lines of the source are in a `kafka_source` span, and those about
//! one partition in a `partition{topic, partition}` span within it.

mod batcher;
mod commit;
mod consume_loop;
mod lifecycle;
mod options;
mod origin;
mod partitions;
mod progress;
mod rebalance;
mod start;
mod startup;
mod topic_watch;
mod transactional;
mod unreadable;

use std::sync::Arc;

use futures::future::BoxFuture;
use rdkafka::consumer::StreamConsumer;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use self::options::{KafkaOptions, OffsetReset, StatsLine};
pub use self::partitions::{PartitionLag, PartitionOffset, PartitionTable};
pub use self::start::{parse_from, parse_timestamp, StartAt};

use self::rebalance::GroupContext;
use crate::error::Result;
use crate::kafka::{self, ClientLog};
use crate::parts::{Source, SourceContext};

/// Consumes Kafka topics; see the module documentation.
pub struct KafkaSource {
    options: KafkaOptions,
    consumer: Arc<StreamConsumer<GroupContext>>,
    table: PartitionTable,
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
        options.validate()?;
        let config = options.config.client_config(&options.consumer_defaults());
        let table = PartitionTable::default();
        let changed = Arc::new(Notify::new());
        let context = GroupContext {
            log: ClientLog::new("source", &options.config.brokers),
            partitions: table.clone(),
            until_end: options.until_end.then_some(options.offset_reset),
            changed: changed.clone(),
            start: start::Placer::new(options.start.clone()),
            transactional: options.exactly_once.clone(),
        };
        let consumer: StreamConsumer<GroupContext> = config
            .create_with_context(context)
            .map_err(kafka::creation_error)?;
        let consumer = Arc::new(consumer);
        if let Some(link) = &options.exactly_once {
            transactional::attach(link, &consumer, &table);
        }
        Ok(KafkaSource {
            options,
            consumer,
            table,
            changed,
            connected: false,
        })
    }

    /// Waits until the brokers answer (logging while they do not), then
    /// checks that every named topic exists. False if `shutdown` came
    /// first. Running the source does this too; doing it first keeps a
    /// missing topic a start-up error, before any pipeline runs.
    pub async fn connect(&mut self, shutdown: &CancellationToken) -> Result<bool> {
        let named = self.options.named_topics();
        let brokers = &self.options.config.brokers;
        let connected = startup::wait_for_topics(&self.consumer, &named, brokers, shutdown).await?;
        self.connected = connected;
        Ok(connected)
    }

    /// The partition table (what each partition has read, written,
    /// committed, and its lag), readable while the source runs; its
    /// `snapshot()` gives the consumer lag.
    pub fn lag(&self) -> PartitionTable {
        self.table.clone()
    }
}

impl Source for KafkaSource {
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<()>> {
        // Every log line of the source says it is the Kafka source's; one
        // about a partition also says which (see `partition_span`). At
        // error level, as `partition_span`.
        let span = tracing::error_span!("kafka_source");
        Box::pin(lifecycle::consume(*self, ctx).instrument(span))
    }
}

/// The span of one partition's log lines: they print as
/// `kafka_source:partition{topic=T partition=P}: ...`. At error level so that it is
/// on whenever any of its lines is (a span filtered out would drop the
/// topic and partition from a warning).
fn partition_span(topic: &str, partition: i32) -> tracing::Span {
    tracing::error_span!("partition", topic = %topic, partition)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_options_and_settings_fail_when_the_source_is_made() {
        let options = |settings: Vec<(String, String)>, topics: Vec<String>| KafkaOptions {
            config: kafka::KafkaConfig {
                brokers: "127.0.0.1:1".into(),
                settings,
            },
            topics,
            group: "g".into(),
            offset_reset: OffsetReset::Earliest,
            until_end: false,
            format: crate::codec::Format::Jsonl,
            delimiter: b',',
            header: true,
            origin: false,
            instance_id: None,
            start: StartAt::default(),
            keep_tombstones: false,
            stats: None,
            exactly_once: None,
        };
        let error = KafkaSource::new(options(
            vec![("no.such.setting".into(), "1".into())],
            vec!["t".into()],
        ))
        .err()
        .unwrap();
        assert!(error.to_string().contains("no.such.setting"), "{error}");
        assert!(KafkaSource::new(options(vec![], vec![])).is_err());
        let source = KafkaSource::new(options(vec![], vec!["t".into()])).unwrap();
        assert!(source.lag().snapshot().is_empty());
    }
}
