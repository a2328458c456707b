//! Offsets back to Kafka: storing the offset of each written batch (which
//! librdkafka's automatic commit then sends), and the synchronous commits
//! made when partitions are revoked and at the end of a run.

use std::sync::Arc;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::partition_span;
use super::partitions::{PartitionOffset, PartitionTable};
use super::rebalance::GroupContext;
use crate::kafka;
use crate::record::SourceInfo;

/// A batch the sink has written: its partition can be committed up to
/// `next_offset` (if still assigned under `epoch`).
#[derive(Debug)]
pub(super) struct Delivered {
    pub(super) source: Arc<SourceInfo>,
    pub(super) epoch: u64,
    pub(super) next_offset: i64,
}

/// Stores the offset of a written batch in librdkafka, which commits it
/// with the next automatic commit. The batch's ack already moved the
/// table's delivered offset (see [`super::consume_loop`]); not for a
/// partition revoked (or re-assigned) since the batch was read: its epoch
/// no longer matches.
pub(super) fn store_delivered<C: Consumer<GroupContext>>(
    consumer: &C,
    table: &PartitionTable,
    delivered: Delivered,
) {
    let SourceInfo::Kafka { topic, partition } = &*delivered.source else {
        return;
    };
    if table.lock().epoch(topic, *partition) != Some(delivered.epoch) {
        return;
    }
    let mut list = TopicPartitionList::new();
    if list
        .add_partition_offset(topic, *partition, Offset::Offset(delivered.next_offset))
        .is_ok()
    {
        if let Err(error) = consumer.store_offsets(&list) {
            let _span = partition_span(topic, *partition).entered();
            tracing::debug!(
                "cannot store offset {}: {}",
                delivered.next_offset,
                kafka::describe(&error)
            );
        }
    }
}

/// Commits, synchronously, every delivered offset not committed yet.
pub(super) fn commit_delivered<C: Consumer<GroupContext>>(
    consumer: &C,
    table: &PartitionTable,
    why: &str,
) {
    let pending = table.lock().uncommitted();
    commit_offsets(consumer, table, &pending, why);
}

/// Commits `offsets` synchronously (blocks up to the broker's answer) and
/// notes them in the table; a failure is logged, never fatal: the records
/// are then read again by the next consumer (at-least-once).
pub(super) fn commit_offsets<C: Consumer<GroupContext>>(
    consumer: &C,
    table: &PartitionTable,
    offsets: &[PartitionOffset],
    why: &str,
) {
    if offsets.is_empty() {
        return;
    }
    let list = offsets_list(offsets);
    let described = describe_offsets(offsets);
    // Stored too: librdkafka commits its stored offsets itself when the
    // partitions are unassigned, right after the revoke callback, and an
    // older stored offset (the read loop stores them, and it is blocked in
    // the callback) would overwrite this commit.
    if let Err(error) = consumer.store_offsets(&list) {
        tracing::debug!("cannot store {described}: {}", kafka::describe(&error));
    }
    match consumer.commit(&list, CommitMode::Sync) {
        Ok(()) => {
            let mut partitions = table.lock();
            for offset in offsets {
                partitions.committed(&offset.topic, offset.partition, offset.offset);
            }
            tracing::info!("committed ({why}) {described}");
        }
        Err(error) => tracing::warn!(
            "cannot commit ({why}) {described}: {}; \
             those records will be read again by the next consumer",
            kafka::describe(&error)
        ),
    }
}

fn offsets_list(offsets: &[PartitionOffset]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for offset in offsets {
        let _ = list.add_partition_offset(
            &offset.topic,
            offset.partition,
            Offset::Offset(offset.offset),
        );
    }
    list
}

/// `t/0@5 t/1@7`.
fn describe_offsets(offsets: &[PartitionOffset]) -> String {
    offsets
        .iter()
        .map(|o| format!("{}/{}@{}", o.topic, o.partition, o.offset))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `t/0 t/1`, or `none`.
pub(super) fn describe_list(list: &TopicPartitionList) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(topic: &str, partition: i32, offset: i64) -> PartitionOffset {
        PartitionOffset {
            topic: topic.into(),
            partition,
            offset,
        }
    }

    #[test]
    fn offsets_to_commit_keep_topic_partition_and_offset() {
        let offsets = [offset("a", 0, 5), offset("b", 3, 7)];
        let list = offsets_list(&offsets);
        assert_eq!(list.count(), 2);
        assert_eq!(
            list.find_partition("b", 3).map(|e| e.offset()),
            Some(Offset::Offset(7))
        );
        assert_eq!(describe_offsets(&offsets), "a/0@5 b/3@7");
        assert_eq!(describe_list(&list), "a/0 b/3");
        assert_eq!(describe_list(&TopicPartitionList::new()), "none");
    }
}
