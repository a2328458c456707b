//! The producer's transactional calls, for `--exactly-once`
//! (`crate::exactly_once`), which wraps this sink: a trait object, so that
//! the wrapper needs nothing of the producer's context type.

use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaResult;
use rdkafka::producer::Producer;
use rdkafka::TopicPartitionList;

use super::poller::Client;

/// librdkafka's transactional producer API (rd_kafka_*_transaction). Every
/// call but `begin` blocks up to its timeout: call them off the workers.
pub trait Transactions: Send + Sync {
    /// Registers the `transactional.id` with its coordinator, fencing any
    /// earlier producer of the same id and aborting its open transaction.
    fn init(&self, timeout: Duration) -> KafkaResult<()>;
    /// Opens a transaction (local: no request).
    fn begin(&self) -> KafkaResult<()>;
    /// Adds the consumer group's offsets to the open transaction.
    fn send_offsets(
        &self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> KafkaResult<()>;
    /// Flushes, then commits the open transaction.
    fn commit(&self, timeout: Duration) -> KafkaResult<()>;
    /// Aborts the open transaction: none of its messages or offsets count.
    fn abort(&self, timeout: Duration) -> KafkaResult<()>;
}

impl Transactions for Client {
    fn init(&self, timeout: Duration) -> KafkaResult<()> {
        self.init_transactions(timeout)
    }

    fn begin(&self) -> KafkaResult<()> {
        self.begin_transaction()
    }

    fn send_offsets(
        &self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> KafkaResult<()> {
        self.send_offsets_to_transaction(offsets, group, timeout)
    }

    fn commit(&self, timeout: Duration) -> KafkaResult<()> {
        self.commit_transaction(timeout)
    }

    fn abort(&self, timeout: Duration) -> KafkaResult<()> {
        self.abort_transaction(timeout)
    }
}
