//! The Kafka sink (`-o kafka://TOPIC`): each record's JSON object becomes
//! one message value, keyed by a field of the record with `--key FIELD`.
//!
//! A batch is acknowledged upstream only once the broker has confirmed
//! every message of it (librdkafka's delivery reports), and batches are
//! acknowledged in the order they came, whatever order their deliveries
//! finish in. librdkafka retries failed sends itself; a message it finally
//! gives up on (`message.timeout.ms`, 5 minutes by default) fails the run,
//! and its batch is never acknowledged.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;

use crate::ack::Acks;
use crate::error::{Error, Result};
use crate::kafka::{self, ClientLog, KafkaConfig, TopicCheck, QUERY_TIMEOUT};
use crate::parts::{Sink, SinkInput};
use crate::record::Batch;

mod delivery;
mod key;
mod native;
mod partitions;
mod poller;
mod producer_id;
mod settings;
mod transaction;
use self::delivery::{BatchDelivery, DeliveryContext, InFlight};
use self::key::key_of;
use self::native::{Message, TopicHandle, ANY_PARTITION};
use self::partitions::Partitions;
use self::poller::{Client, Poller};
pub use self::settings::Compression;
pub use self::transaction::Transactions;

/// Writes records to a Kafka topic.
pub struct KafkaSink {
    /// Serves the producer's events; dropped first (fields drop in order).
    poller: Poller,
    producer: Arc<Client>,
    /// Where messages are enqueued (holds a reference on `producer`).
    topic_handle: TopicHandle,
    topic: String,
    key_field: Option<String>,
    config: KafkaConfig,
    /// Where unkeyed records go (the partition count from the start-up
    /// check, read again now and then).
    partitions: Partitions,
}

impl KafkaSink {
    /// Makes the producer (no network traffic yet: a bad `-X` fails here).
    pub fn new(
        config: &KafkaConfig,
        topic: &str,
        key_field: Option<String>,
        compression: Option<Compression>,
    ) -> Result<Self> {
        kafka::check_topic_name(topic).map_err(Error::Config)?;
        let context = DeliveryContext::new(ClientLog::new("sink", &config.brokers));
        let client_config = settings::producer_config(config, compression);
        let producer: Client = client_config
            .create_with_context(context)
            .map_err(kafka::creation_error)?;
        let producer = Arc::new(producer);
        let poller = Poller::start(producer.clone()).map_err(|error| {
            Error::Kafka(format!("cannot start the Kafka producer's thread: {error}"))
        })?;
        Ok(KafkaSink {
            poller,
            topic_handle: TopicHandle::new(producer.clone(), topic).map_err(Error::Kafka)?,
            producer,
            topic: topic.to_string(),
            key_field,
            config: config.clone(),
            partitions: Partitions::new(settings::request_size(&client_config)),
        })
    }

    /// Fails for a topic that does not exist (and that the brokers will not
    /// create: a topic they create on demand is waited for, briefly); only
    /// warns when the brokers do not answer yet, since the producer keeps
    /// retrying. Worth calling before the run: without it, a missing topic
    /// fails each delivery after librdkafka's metadata wait.
    pub async fn check_topic(&self) -> Result<()> {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        let config = self.config.clone();
        let check = tokio::task::spawn_blocking(move || {
            let log = &producer.context().log;
            let check =
                match kafka::check_topic(producer.client(), log, Some(&topic), QUERY_TIMEOUT) {
                    TopicCheck::Missing => {
                        kafka::settle_missing(producer.client(), log, &config, &topic)?
                    }
                    check => check,
                };
            // Asked again: for the producer id, and the partition count.
            let partitions = match check {
                TopicCheck::Ready => producer_id::hasten(producer.client(), &topic),
                _ => None,
            };
            Ok::<_, String>((check, partitions))
        })
        .await
        .map_err(|e| Error::panicked("the Kafka topic check", e))?;
        let (check, partitions) = check.map_err(Error::Kafka)?;
        self.partitions.set(partitions);
        match check {
            TopicCheck::Permanent(reason) => Err(Error::Kafka(reason)),
            TopicCheck::Unreachable(reason) => {
                tracing::warn!(
                    "kafka sink: cannot reach the brokers at {} yet ({reason}); \
                     records wait in the producer until they answer",
                    self.config.brokers,
                );
                Ok(())
            }
            // Not listed yet, or being created: the producer waits for it.
            TopicCheck::Ready
            | TopicCheck::Missing
            | TopicCheck::Unlisted
            | TopicCheck::Unsettled(_) => Ok(()),
        }
    }
}

// Hook for `--exactly-once` (`crate::exactly_once`): the producer's
// transactional calls.
impl KafkaSink {
    /// The producer's transaction calls (its `transactional.id` set).
    pub fn transactions(&self) -> Arc<dyn Transactions> {
        self.producer.clone()
    }

    /// The topic written to.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl Sink for KafkaSink {
    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let written = input.written_counter();
            let mut counted = 0;
            let result = self.write_batches(&mut input, &mut counted).await;
            let failed = result.is_err();
            // Every delivery is reported by now, or the run failed: then
            // messages still in flight are waited for (briefly), so that
            // the ones that reached the topic are counted written. Dropping
            // the poller joins its thread, and the producer (its last
            // reference: the sink and the topic handle) waits for
            // librdkafka's threads: off the runtime.
            let KafkaSink {
                poller,
                producer,
                topic_handle,
                ..
            } = *self;
            let context = producer.context().clone();
            let _ = tokio::task::spawn_blocking(move || {
                if failed {
                    let _ = producer.flush(FLUSH_AFTER_FAILURE);
                }
                drop(poller);
                drop(topic_handle);
                drop(producer)
            })
            .await;
            if failed {
                let delivered = context.delivered.load(Ordering::Acquire);
                written.add(delivered.saturating_sub(counted));
            }
            result
        })
    }
}

/// How long a failed run waits for the messages still in flight.
const FLUSH_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// A batch handed to the producer, waiting for its deliveries.
struct Pending {
    delivery: Arc<BatchDelivery>,
    /// The partition all its records went to, or [`ANY_PARTITION`].
    partition: i32,
    records: usize,
    /// The message values' bytes, for the bytes-written figure.
    bytes: usize,
    /// When the batch's first message was handed to the producer.
    started: std::time::Instant,
    acks: Acks,
}

impl KafkaSink {
    /// Produces every batch of `input`, acknowledging each once all its
    /// messages are delivered; `counted` is how many were counted written.
    async fn write_batches(&self, input: &mut SinkInput, counted: &mut usize) -> Result<()> {
        let context = self.producer.context().clone();
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut open = true;
        loop {
            *counted += self.acknowledge(&mut pending, input)?;
            if !open && pending.is_empty() {
                return Ok(());
            }
            // None while every partition has a request's worth undelivered:
            // the next batch waits for deliveries (see `partitions`).
            let partition = if open {
                self.partition_for_batch(&pending)
            } else {
                None
            };
            tokio::select! {
                batch = input.recv(), if partition.is_some() => match batch {
                    Some(batch) => {
                        let partition = partition.expect("checked by the branch");
                        pending.push_back(self.produce(batch, partition, &context).await?);
                    }
                    None => open = false,
                },
                _ = context.completed.notified() => {}
                // Errors that end the run (a refused login) come as client
                // errors, not delivery reports: look for them now and then.
                _ = tokio::time::sleep(Duration::from_secs(1)), if !pending.is_empty() => {}
            }
        }
    }

    /// The error that ends the run once librdkafka gave up on a message:
    /// it names the brokers too, whose outage a timeout usually is.
    fn delivery_error(&self, failure: impl std::fmt::Display) -> Error {
        Error::Kafka(format!(
            "cannot deliver to topic `{}` (brokers {}): {failure}",
            self.topic, self.config.brokers
        ))
    }

    /// Acknowledges, in order, the batches at the front whose messages are
    /// all delivered; fails on the first delivery failure.
    /// Returns how many records it counted written.
    fn acknowledge(&self, pending: &mut VecDeque<Pending>, input: &SinkInput) -> Result<usize> {
        if let Some(reason) = self.producer.context().log.permanent_error() {
            return Err(Error::Kafka(reason));
        }
        if let Some(failure) = self.producer.context().failure() {
            return Err(self.delivery_error(failure));
        }
        let mut counted = 0;
        while pending
            .front()
            .is_some_and(|front| front.delivery.remaining.load(Ordering::Acquire) == 0)
        {
            let done = pending.pop_front().expect("checked above");
            input.count_write(done.records, done.bytes, done.started.elapsed());
            counted += done.records;
            done.acks.deliver();
        }
        Ok(counted)
    }

    /// Hands every record of `batch` to the producer, to `partition` (or
    /// [`ANY_PARTITION`]), waiting while its queue is full.
    async fn produce(
        &self,
        batch: Batch,
        partition: i32,
        context: &DeliveryContext,
    ) -> Result<Pending> {
        let delivery = BatchDelivery::new(batch.len());
        let in_flight = InFlight::new(&delivery);
        let started = std::time::Instant::now();
        let mut next = 0;
        if partition != ANY_PARTITION {
            self.partitions.taken(partition);
        }
        let sent = loop {
            let full_at = match self.enqueue(&batch, next, partition, in_flight) {
                Ok(None) => break Ok(()),
                Ok(Some(full_at)) => full_at,
                Err(error) => break Err(error),
            };
            if let Some(failure) = context.failure() {
                in_flight.never_sent(batch.len() - full_at);
                break Err(self.delivery_error(failure));
            }
            // The queue drains as the broker confirms messages.
            tokio::select! {
                _ = context.completed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
            next = full_at;
        };
        let records = batch.len();
        // Each message is a record's JSON line without its newline.
        let bytes = batch.as_ndjson().len() - records;
        let mut batch = batch;
        let acks = std::mem::replace(&mut batch.acks, Acks::none());
        // librdkafka reads the values where they are until their reports
        // come, failed or not: they go with the delivery's count.
        delivery.keep(batch.into_ndjson());
        sent?;
        Ok(Pending {
            delivery,
            partition,
            records,
            bytes,
            started,
            acks,
        })
    }

    /// Enqueues the records of `batch` from the `first`th on, in one
    /// librdkafka call; returns where it stopped if the producer's queue is
    /// full. (Not async: a batch is not `Sync`, so no reference to it may
    /// be held across an await.)
    fn enqueue(
        &self,
        batch: &Batch,
        first: usize,
        partition: i32,
        in_flight: InFlight,
    ) -> Result<Option<usize>> {
        let keys: Vec<Option<Cow<'_, [u8]>>> = match &self.key_field {
            Some(field) => batch
                .iter()
                .skip(first)
                .map(|record| key_of(record.json, field))
                .collect(),
            None => Vec::new(),
        };
        let messages: Vec<Message<'_>> = batch
            .iter()
            .skip(first)
            .enumerate()
            .map(|(index, record)| Message {
                payload: record.json,
                key: keys.get(index).and_then(Option::as_deref),
            })
            .collect();
        let done = self.topic_handle.produce(&messages, in_flight, partition);
        match done.refused {
            None => Ok(None),
            Some(RDKafkaErrorCode::QueueFull) => Ok(Some(first + done.sent)),
            Some(code) => {
                // Messages after the refused one may be enqueued: only
                // the others are never reported.
                in_flight.never_sent(messages.len() - done.enqueued);
                let record = batch
                    .iter()
                    .nth(first + done.sent)
                    .expect("a refused record");
                Err(Error::Kafka(format!(
                    "{}: cannot produce to topic `{}`: {}",
                    record.location,
                    self.topic,
                    kafka::describe(&KafkaError::MessageProduction(code))
                )))
            }
        }
    }
}

impl KafkaSink {
    /// Where the next batch goes: keyed, librdkafka's partitioner decides;
    /// unkeyed, see [`Partitions`] (`None`: wait for deliveries first).
    fn partition_for_batch(&self, pending: &VecDeque<Pending>) -> Option<i32> {
        match self.key_field {
            Some(_) => Some(ANY_PARTITION),
            None => self.partitions.next(&self.producer, &self.topic, pending),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_setting_fails_when_the_sink_is_made() {
        let config = KafkaConfig {
            brokers: "127.0.0.1:1".into(),
            settings: vec![("no.such.setting".into(), "1".into())],
        };
        let error = KafkaSink::new(&config, "t", None, None).err().unwrap();
        assert!(error.to_string().contains("no.such.setting"), "{error}");
        let config = KafkaConfig {
            brokers: "127.0.0.1:1".into(),
            settings: vec![],
        };
        assert!(KafkaSink::new(&config, "bad/topic", None, None).is_err());
    }
}
