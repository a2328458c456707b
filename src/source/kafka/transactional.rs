//! `--exactly-once`'s hook in the Kafka source: the consumer group as the
//! transactional sink sees it ([`Group`]). Under `--exactly-once` the
//! consumer commits nothing itself (`enable.auto.commit=false`, no revoke
//! or final commit): its offsets are committed in the output's
//! transactions, and a batch's ack reaches the partition table only once
//! its transaction committed (see `crate::exactly_once`).

use std::sync::{Arc, Weak};

use rdkafka::consumer::{Consumer, ConsumerGroupMetadata, StreamConsumer};

use super::partitions::PartitionTable;
use super::rebalance::GroupContext;
use crate::exactly_once::{Group, Link, NextOffset};

/// The source's consumer and partition table, as the sink's commits ask
/// about them. Holds the consumer weakly: leaving the group is the
/// source's (off the workers, at its end), not whoever drops the link last.
struct SourceGroup {
    consumer: Weak<StreamConsumer<GroupContext>>,
    table: PartitionTable,
}

impl Group for SourceGroup {
    fn metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.consumer.upgrade()?.group_metadata()
    }

    fn owns(&self, topic: &str, partition: i32, epoch: u64) -> bool {
        self.table.lock().epoch(topic, partition) == Some(epoch)
    }

    fn committed(&self, offsets: &[NextOffset]) {
        let mut partitions = self.table.lock();
        for offset in offsets {
            partitions.committed(&offset.topic, offset.partition, offset.offset);
        }
    }
}

/// Attaches the source's consumer group to the link.
pub(super) fn attach(
    link: &Link,
    consumer: &Arc<StreamConsumer<GroupContext>>,
    table: &PartitionTable,
) {
    link.attach(Box::new(SourceGroup {
        consumer: Arc::downgrade(consumer),
        table: table.clone(),
    }));
}
