//! The consumer's context ([`GroupContext`]): librdkafka's logs and
//! statistics, and the rebalance callbacks that keep the partition table
//! true and commit what was written before partitions go.
//!
//! Blocking: rdkafka runs these callbacks inside the poll of the consumer
//! stream, that is inside the read loop's task on a tokio worker, and they
//! block (a synchronous commit, offset queries of up to
//! [`QUERY_TIMEOUT`]). They must finish before they return: librdkafka
//! hands revoked partitions to another member as soon as the revoke
//! callback returns, so a commit left for later could come after another
//! member has read from the old offset (records read twice at best, or an
//! old commit overwriting the new owner's). So the work is not handed to
//! another thread to finish later; instead [`off_worker`] runs it with
//! [`tokio::task::block_in_place`], which first gives this worker's other
//! tasks to a new worker thread: the pipeline keeps running while the
//! commit waits, and the callback still returns only once it is done.
//! Polling the consumer on a thread of its own would have needed an owned
//! copy of every message to cross to the runtime; this costs nothing per
//! message, only a thread hand-over per rebalance.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::Statistics;
use tokio::sync::Notify;

use super::commit::{commit_offsets, describe_list};
use super::options::OffsetReset;
use super::partition_span;
use super::partitions::PartitionTable;
use super::start::Placer;
use crate::exactly_once::Link;
use crate::kafka::{self, client_context_via_log, ClientLog, QUERY_TIMEOUT};

/// The consumer's context: logs, statistics, and the rebalance callbacks
/// that keep the [`PartitionTable`] true and commit before partitions go.
pub(super) struct GroupContext {
    pub(super) log: ClientLog,
    pub(super) partitions: PartitionTable,
    /// `--until-end` (with the reset policy, to know where a partition
    /// without a committed offset starts).
    pub(super) until_end: Option<OffsetReset>,
    /// Woken after an assignment, so the read loop re-checks `--until-end`
    /// for an assignment that has nothing to read.
    pub(super) changed: Arc<Notify>,
    /// `--from`, `--from-timestamp`: where newly assigned partitions start.
    pub(super) start: Placer,
    /// `--exactly-once`: the offsets are committed in the output's
    /// transactions, never by the consumer (`transactional`).
    pub(super) transactional: Option<Link>,
}

/// How long the revoke callback waits for the revoked partitions' batches
/// in flight to be written, so that it can commit them before the
/// partitions go. Beyond it, a stalled sink would hold the whole group.
const REVOKE_WAIT: Duration = Duration::from_secs(5);

/// The rebalance callbacks' blocking work (a commit, offset queries) runs
/// through [`crate::cpu::blocking`]: off the tokio workers.
pub(super) use crate::cpu::blocking as off_worker;

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
            let _span = partition_span(topic, partition).entered();
            let (Some(end), Some(low)) = (
                found(&ends, topic, partition),
                found(&lows, topic, partition),
            ) else {
                tracing::warn!(
                    "cannot read the end offset; --until-end waits for its end-of-partition \
                     event instead"
                );
                continue;
            };
            let committed = found(&committed, topic, partition);
            if let Some(committed) = committed {
                partitions.committed(topic, partition, committed);
            }
            // Placed by --from or --from-timestamp, else where the group is.
            let start = match element.offset() {
                Offset::Offset(placed) => placed.clamp(low, end),
                Offset::End => end,
                _ => start_offset(committed, low, end, reset),
            };
            tracing::debug!("reading from {start} to end offset {end}");
            partitions.set_end(topic, partition, start, end);
        }
        tracing::debug!("end offsets found in {:?}", started.elapsed());
    }

    fn revoked(&self, consumer: &BaseConsumer<Self>, list: &TopicPartitionList) {
        let revoked = pairs(list);
        tracing::info!("partitions revoked: {}", describe_list(list));
        let lost = consumer.assignment_lost();
        if lost {
            crate::warn_limited!(
                "the group dropped this consumer (too slow, or the brokers \
                 were away); records not yet committed will be read again"
            );
        }
        // Synchronous, and before returning: see the module documentation.
        off_worker(|| {
            // Batches of these partitions still in the pipeline would be
            // read again by the next owner: let the sink write them first
            // (their acks reach the table without the read loop, which is
            // blocked in this callback). Lost partitions are gone already.
            // Under --exactly-once they are written once their transaction
            // commits: have it commit now, not at its interval's end.
            if let Some(link) = self.transactional.as_ref().filter(|_| !lost) {
                link.hurry();
            }
            let written = lost || self.partitions.wait_written(&revoked, REVOKE_WAIT);
            if let Some(link) = self.transactional.as_ref().filter(|_| !lost) {
                link.unhurry();
            }
            if !written {
                tracing::warn!(
                    "batches of the revoked partitions still not written after {} s; \
                     their records will be read again by the partitions' next owner",
                    REVOKE_WAIT.as_secs()
                );
            }
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
            // Lost: the group has moved on to a new generation, so a commit
            // is refused; made while the coordinator is away, it would also
            // hold this callback (and so the rejoin) until it came back.
            // Under --exactly-once, waiting above was for their
            // transaction's commit, which committed the offsets.
            if !lost && self.transactional.is_none() {
                commit_offsets(consumer, &self.partitions, &finished, "revoked partitions")
            }
        });
    }

    fn assigned(&self, consumer: &BaseConsumer<Self>, list: &TopicPartitionList) {
        let assigned = pairs(list);
        self.partitions
            .lock()
            .assign(assigned.iter().map(|(t, p)| (t.as_str(), *p)));
        tracing::info!(
            "assigned {} partitions: {}",
            assigned.len(),
            describe_list(list)
        );
        if let Some(reset) = self.until_end {
            off_worker(|| self.find_ends(consumer, list, reset));
        }
        self.changed.notify_one();
    }
}

/// Where reading a partition starts: its committed offset if that is still
/// in the partition (`low..=end`), else where the reset policy says.
fn start_offset(committed: Option<i64>, low: i64, end: i64, reset: OffsetReset) -> i64 {
    match committed {
        Some(offset) if (low..=end).contains(&offset) => offset,
        _ => match reset {
            OffsetReset::Earliest => low,
            OffsetReset::Latest => end,
        },
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
    /// rdkafka's own rebalance, with the start offsets of newly assigned
    /// partitions placed in the list before it is assigned.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        list: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let outcome = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                off_worker(|| self.start.place(consumer, list));
                self.pre_rebalance(consumer, &Rebalance::Assign(list));
                let assigned = if cooperative {
                    consumer.incremental_assign(list)
                } else {
                    consumer.assign(list)
                };
                self.post_rebalance(consumer, &Rebalance::Assign(list));
                assigned
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Revoke(list));
                let revoked = if cooperative {
                    consumer.incremental_unassign(list)
                } else {
                    consumer.unassign()
                };
                self.post_rebalance(consumer, &Rebalance::Revoke(list));
                revoked
            }
            other => {
                let error = KafkaError::Rebalance(other.into());
                self.pre_rebalance(consumer, &Rebalance::Error(error));
                consumer.unassign()
            }
        };
        if let Err(error) = outcome {
            crate::warn_limited!("rebalance failed: {}", kafka::describe(&error));
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => self.revoked(consumer, list),
            Rebalance::Assign(_) => {}
            Rebalance::Error(error) => {
                crate::warn_limited!("rebalance failed: {}", kafka::describe(error))
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            self.assigned(consumer, list);
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
                "automatic commit failed: {} (retried with the next)",
                kafka::describe(&error)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn reading_starts_at_a_committed_offset_still_in_the_partition() {
        assert_eq!(start_offset(Some(5), 2, 9, OffsetReset::Earliest), 5);
        assert_eq!(start_offset(Some(9), 2, 9, OffsetReset::Earliest), 9);
        assert_eq!(start_offset(Some(1), 2, 9, OffsetReset::Earliest), 2);
        assert_eq!(start_offset(Some(1), 2, 9, OffsetReset::Latest), 9);
        assert_eq!(start_offset(None, 2, 9, OffsetReset::Earliest), 2);
        assert_eq!(start_offset(None, 2, 9, OffsetReset::Latest), 9);
    }

    /// With one worker, a task blocked in `off_worker` must not stop
    /// another task from running meanwhile: the blocking work left the
    /// worker.
    #[test]
    fn blocking_work_leaves_the_worker_free() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let released = Arc::new(AtomicBool::new(false));
        let ran = runtime.block_on(async {
            let flag = released.clone();
            let (started_tx, started) = tokio::sync::oneshot::channel();
            let blocked = tokio::spawn(async move {
                off_worker(|| {
                    let _ = started_tx.send(());
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while !flag.load(Ordering::Acquire) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    flag.load(Ordering::Acquire)
                })
            });
            // The worker is taken by the blocking work before the other
            // task is spawned.
            started.await.unwrap();
            let flag = released.clone();
            let other = tokio::spawn(async move { flag.store(true, Ordering::Release) });
            other.await.unwrap();
            blocked.await.unwrap()
        });
        assert!(ran, "the other task never ran while the work blocked");
    }

    #[test]
    fn outside_a_multi_thread_runtime_the_work_just_runs() {
        assert_eq!(off_worker(|| 7), 7);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(runtime.block_on(async { off_worker(|| 8) }), 8);
        // Leaving the group runs the revoke callback on the blocking pool.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let on_pool = runtime.block_on(runtime.spawn_blocking(|| off_worker(|| 9)));
        assert_eq!(on_pool.unwrap(), 9);
    }
}
