//! What the Kafka source knows of each partition assigned to it: the
//! assignment it belongs to, how far it was read, how far the sink has
//! written it, what is committed, and (for `--until-end`) where it ends.
//!
//! Pure bookkeeping, shared (behind a mutex) by the source's read loop, the
//! consumer's rebalance callbacks and anyone asking for the lag.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One partition's state, from its assignment to its revocation. Offsets
/// are "next offset" positions: the offset after the last message counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PartitionState {
    /// Which assignment this is; acknowledgements of batches read under an
    /// earlier assignment of the same partition carry an older epoch.
    epoch: u64,
    /// After the last message read.
    read: Option<i64>,
    /// After the last message the sink has written (stored for commit).
    delivered: Option<i64>,
    /// The last offset known committed.
    committed: Option<i64>,
    /// `--until-end`: the partition's end offset when it was assigned.
    end: Option<i64>,
    /// `--until-end`: known to be read to its end.
    at_end: bool,
    /// The broker's high watermark, from the client's statistics.
    high_watermark: Option<i64>,
}

impl PartitionState {
    fn is_at_end(&self) -> bool {
        self.at_end || matches!((self.read, self.end), (Some(read), Some(end)) if read >= end)
    }
}

/// A partition of a topic, and an offset in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffset {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
    /// A "next offset": the offset after the last message counted.
    pub offset: i64,
}

/// How far behind one assigned partition is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
    /// The broker's end of the partition (high watermark), when known.
    pub high_watermark: Option<i64>,
    /// The offset after the last message read.
    pub read: Option<i64>,
    /// The offset after the last message the sink has written.
    pub delivered: Option<i64>,
    /// The last committed offset known.
    pub committed: Option<i64>,
    /// Messages in the partition not yet written by the sink: the high
    /// watermark less the delivered (else committed) offset, when both are known.
    pub lag: Option<i64>,
}

/// The state of every partition assigned to the consumer.
#[derive(Debug, Default)]
pub(crate) struct Partitions {
    last_epoch: u64,
    /// Whether the group ever gave us an assignment (maybe empty): until
    /// then `--until-end` cannot say it is done.
    joined: bool,
    /// The run drained its pipeline: no batch is in flight any more, even
    /// one read but dropped unwritten (so never acknowledged).
    drained: bool,
    topics: BTreeMap<String, BTreeMap<i32, PartitionState>>,
}

impl Partitions {
    fn get(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.topics.get(topic)?.get(&partition)
    }

    fn get_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionState> {
        self.topics.get_mut(topic)?.get_mut(&partition)
    }

    fn states(&self) -> impl Iterator<Item = (&str, i32, &PartitionState)> {
        self.topics.iter().flat_map(|(topic, partitions)| {
            partitions
                .iter()
                .map(move |(partition, state)| (topic.as_str(), *partition, state))
        })
    }

    /// Records a (possibly empty) assignment; returns its epoch.
    pub(crate) fn assign<'a>(&mut self, assigned: impl IntoIterator<Item = (&'a str, i32)>) -> u64 {
        self.last_epoch += 1;
        self.joined = true;
        for (topic, partition) in assigned {
            self.topics.entry(topic.to_string()).or_default().insert(
                partition,
                PartitionState {
                    epoch: self.last_epoch,
                    ..PartitionState::default()
                },
            );
        }
        self.last_epoch
    }

    /// True once the group gave this consumer an assignment (maybe empty).
    pub(crate) fn joined(&self) -> bool {
        self.joined
    }

    /// An eager rebalance revoked everything and a new assignment is on its
    /// way: until it comes, `--until-end` must not take "no partitions"
    /// for "every partition read".
    pub(crate) fn await_assignment(&mut self) {
        self.joined = false;
    }

    /// Forgets revoked partitions; returns their delivered offsets that are
    /// not committed yet, to commit before they go.
    pub(crate) fn revoke<'a>(
        &mut self,
        revoked: impl IntoIterator<Item = (&'a str, i32)>,
    ) -> Vec<PartitionOffset> {
        let mut finished = Vec::new();
        for (topic, partition) in revoked {
            let Some(partitions) = self.topics.get_mut(topic) else {
                continue;
            };
            if let Some(state) = partitions.remove(&partition) {
                if let Some(offset) = uncommitted(&state) {
                    finished.push(PartitionOffset {
                        topic: topic.to_string(),
                        partition,
                        offset,
                    });
                }
            }
            if partitions.is_empty() {
                self.topics.remove(topic);
            }
        }
        finished
    }

    /// True while a batch of one of `partitions` (under its current
    /// assignment) is sent into the pipeline but not yet written.
    pub(crate) fn in_flight(&self, partitions: &[(String, i32)]) -> bool {
        !self.drained
            && partitions.iter().any(|(topic, partition)| {
                self.get(topic, *partition)
                    .is_some_and(|state| state.read.is_some() && state.delivered < state.read)
            })
    }

    /// The pipeline is drained: nothing in flight is waited for any more.
    pub(crate) fn drained(&mut self) {
        self.drained = true;
    }

    /// The epoch of the partition's current assignment, if assigned.
    pub(crate) fn epoch(&self, topic: &str, partition: i32) -> Option<u64> {
        self.get(topic, partition).map(|state| state.epoch)
    }

    /// Notes that messages up to `next - 1` were read.
    pub(crate) fn read(&mut self, topic: &str, partition: i32, epoch: u64, next: i64) {
        // A batch read under an earlier assignment says nothing of this
        // one: counting it could end `--until-end` before this assignment
        // is read (and that batch's ack is ignored anyway).
        match self.get_mut(topic, partition) {
            Some(state) if state.epoch == epoch => state.read = state.read.max(Some(next)),
            _ => {}
        }
    }

    /// Notes that the sink wrote messages up to `next - 1` read under
    /// assignment `epoch`. True when this moves the partition's delivered
    /// offset forward (the caller then stores it for commit); false for a
    /// partition no longer assigned, or assigned again since.
    pub(crate) fn deliver(&mut self, topic: &str, partition: i32, epoch: u64, next: i64) -> bool {
        match self.get_mut(topic, partition) {
            Some(state) if state.epoch == epoch && state.delivered < Some(next) => {
                state.delivered = Some(next);
                true
            }
            _ => false,
        }
    }

    /// Notes a successful commit of `next` for the partition.
    pub(crate) fn committed(&mut self, topic: &str, partition: i32, next: i64) {
        if let Some(state) = self.get_mut(topic, partition) {
            state.committed = state.committed.max(Some(next));
        }
    }

    /// Delivered offsets not committed yet, for every assigned partition.
    pub(crate) fn uncommitted(&self) -> Vec<PartitionOffset> {
        self.states()
            .filter_map(|(topic, partition, state)| {
                uncommitted(state).map(|offset| PartitionOffset {
                    topic: topic.to_string(),
                    partition,
                    offset,
                })
            })
            .collect()
    }

    /// `--until-end`: the partition is read from `start` up to `end` (its
    /// high watermark when assigned); nothing to read if `start >= end`.
    pub(crate) fn set_end(&mut self, topic: &str, partition: i32, start: i64, end: i64) {
        if let Some(state) = self.get_mut(topic, partition) {
            state.end = Some(end);
            if start >= end {
                state.at_end = true;
            }
        }
    }

    /// The consumer reached the end of a partition numbered `partition`
    /// (librdkafka does not say of which topic). Marks it at its end when
    /// only one assigned partition has that number; otherwise returns the
    /// candidates for the caller to check by position.
    pub(crate) fn end_reached(&mut self, partition: i32) -> Vec<(String, i32)> {
        let candidates: Vec<String> = self
            .states()
            .filter(|(_, number, state)| *number == partition && !state.is_at_end())
            .map(|(topic, _, _)| topic.to_string())
            .collect();
        let same_number = self
            .states()
            .filter(|(_, number, _)| *number == partition)
            .count();
        if same_number == 1 {
            for topic in &candidates {
                if let Some(state) = self.get_mut(topic, partition) {
                    state.at_end = true;
                }
            }
            return Vec::new();
        }
        candidates
            .into_iter()
            .map(|topic| (topic, partition))
            .collect()
    }

    /// Marks the partition at its end if `position` (the next offset the
    /// consumer will return) has reached its end offset.
    pub(crate) fn position(&mut self, topic: &str, partition: i32, position: i64) {
        if let Some(state) = self.get_mut(topic, partition) {
            if state.end.is_some_and(|end| position >= end) {
                state.at_end = true;
            }
        }
    }

    /// `--until-end`: true once we joined the group and every partition
    /// assigned to us is read to its end (an empty assignment is done).
    pub(crate) fn all_at_end(&self) -> bool {
        self.joined && self.states().all(|(_, _, state)| state.is_at_end())
    }

    /// Notes the broker's high watermark of a partition.
    pub(crate) fn set_high_watermark(&mut self, topic: &str, partition: i32, high: i64) {
        if let Some(state) = self.get_mut(topic, partition) {
            state.high_watermark = Some(high);
        }
    }

    /// The lag of every assigned partition, by topic and partition.
    pub(crate) fn lag(&self) -> Vec<PartitionLag> {
        self.states()
            .map(|(topic, partition, state)| {
                let done = state.delivered.or(state.committed);
                PartitionLag {
                    topic: topic.to_string(),
                    partition,
                    high_watermark: state.high_watermark,
                    read: state.read,
                    delivered: state.delivered,
                    committed: state.committed,
                    lag: state
                        .high_watermark
                        .zip(done)
                        .map(|(high, done)| (high - done).max(0)),
                }
            })
            .collect()
    }
}

fn uncommitted(state: &PartitionState) -> Option<i64> {
    state
        .delivered
        .filter(|&delivered| Some(delivered) > state.committed)
}

/// A shared handle on the Kafka source's partition table: what each
/// assigned partition has read, delivered and committed, and its lag.
/// The read loop, the rebalance callbacks and the commit helpers all hold
/// one; it is readable while the source runs (progress lines, metrics).
/// (Named `ConsumerLag` before, though it is the whole table.)
#[derive(Debug, Clone, Default)]
pub struct PartitionTable(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    partitions: Mutex<Partitions>,
    /// Notified whenever a partition's delivered offset moves, for the
    /// revoke callback waiting for the batches in flight (see
    /// [`PartitionTable::wait_written`]).
    written: Condvar,
}

impl PartitionTable {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Partitions> {
        self.0
            .partitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// [`Partitions::deliver`], waking whoever waits in
    /// [`PartitionTable::wait_written`]. Called by a batch's ack, on the
    /// sink's side, so that a waiter needs nothing of the read loop.
    pub(crate) fn deliver(&self, topic: &str, partition: i32, epoch: u64, next: i64) -> bool {
        let moved = self.lock().deliver(topic, partition, epoch, next);
        if moved {
            self.0.written.notify_all();
        }
        moved
    }

    /// [`Partitions::drained`], waking whoever waits.
    pub(crate) fn drained(&self) {
        self.lock().drained();
        self.0.written.notify_all();
    }

    /// Blocks until no batch of `partitions` is in flight, or `limit`
    /// passed; true if none is. Blocking: for the rebalance callbacks,
    /// through `off_worker`.
    pub(crate) fn wait_written(&self, partitions: &[(String, i32)], limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut guard = self.lock();
        while guard.in_flight(partitions) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = match self.0.written.wait_timeout(guard, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    /// The lag of every partition assigned now, by topic and partition. The
    /// high watermark comes from the client's statistics (every second, or
    /// `-X statistics.interval.ms`), so it lags by up to that interval.
    pub fn snapshot(&self) -> Vec<PartitionLag> {
        self.lock().lag()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_count_only_for_the_current_assignment() {
        let mut parts = Partitions::default();
        let first = parts.assign([("t", 0), ("t", 1)]);
        assert!(parts.deliver("t", 0, first, 10));
        assert!(!parts.deliver("t", 0, first, 5), "never backwards");
        let finished = parts.revoke([("t", 0)]);
        assert_eq!(
            finished,
            vec![PartitionOffset {
                topic: "t".into(),
                partition: 0,
                offset: 10
            }]
        );
        assert!(
            !parts.deliver("t", 0, first, 20),
            "revoked: not stored any more"
        );
        let second = parts.assign([("t", 0)]);
        assert!(second > first);
        assert!(
            !parts.deliver("t", 0, first, 30),
            "an ack from the earlier assignment"
        );
        assert!(parts.deliver("t", 0, second, 12));
        assert_eq!(parts.epoch("t", 0), Some(second));
        assert_eq!(parts.epoch("t", 1), Some(first));
        assert_eq!(parts.epoch("t", 2), None);
    }

    #[test]
    fn only_uncommitted_offsets_are_committed_again() {
        let mut parts = Partitions::default();
        let epoch = parts.assign([("a", 0), ("b", 0)]);
        parts.deliver("a", 0, epoch, 7);
        parts.deliver("b", 0, epoch, 3);
        parts.committed("a", 0, 7);
        let pending = parts.uncommitted();
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].topic.as_str(), pending[0].offset), ("b", 3));
        assert!(parts.revoke([("a", 0)]).is_empty());
    }

    #[test]
    fn until_end_needs_an_assignment_and_every_partition_at_its_end() {
        let mut parts = Partitions::default();
        assert!(!parts.all_at_end(), "not joined yet");
        let epoch = parts.assign([("t", 0), ("t", 1), ("t", 2)]);
        parts.set_end("t", 0, 0, 5);
        parts.set_end("t", 1, 9, 9);
        assert!(!parts.all_at_end());
        parts.read("t", 0, epoch, 5);
        assert!(!parts.all_at_end(), "partition 2 has no end offset yet");
        assert!(parts.end_reached(2).is_empty());
        assert!(parts.all_at_end());
        let mut empty = Partitions::default();
        empty.assign(std::iter::empty());
        assert!(
            empty.all_at_end(),
            "an empty assignment has nothing to read"
        );
    }

    #[test]
    fn a_batch_read_under_an_earlier_assignment_does_not_count_as_read() {
        let mut parts = Partitions::default();
        let old = parts.assign([("t", 0)]);
        parts.revoke([("t", 0)]);
        let new = parts.assign([("t", 0)]);
        assert_ne!(old, new);
        parts.set_end("t", 0, 0, 5);
        parts.read("t", 0, old, 5);
        assert!(
            !parts.all_at_end(),
            "the old batch's ack is ignored, so is its read"
        );
        parts.read("t", 0, new, 5);
        assert!(parts.all_at_end());
    }

    #[test]
    fn end_of_a_partition_number_shared_by_two_topics_is_checked_by_position() {
        let mut parts = Partitions::default();
        parts.assign([("a", 0), ("b", 0)]);
        parts.set_end("a", 0, 0, 4);
        parts.set_end("b", 0, 0, 8);
        let candidates = parts.end_reached(0);
        assert_eq!(candidates, vec![("a".into(), 0), ("b".into(), 0)]);
        assert!(!parts.all_at_end());
        parts.position("a", 0, 4);
        parts.position("b", 0, 6);
        assert!(!parts.all_at_end());
        parts.position("b", 0, 8);
        assert!(parts.all_at_end());
    }

    #[test]
    fn a_waiter_for_batches_in_flight_wakes_when_they_are_written() {
        let table = PartitionTable::default();
        let epoch = table.lock().assign([("t", 0), ("t", 1)]);
        table.lock().read("t", 0, epoch, 10);
        table.lock().read("t", 1, epoch, 4);
        let zero = [("t".to_string(), 0)];
        assert!(!table.wait_written(&zero, Duration::from_millis(10)));
        let acker = table.clone();
        let ack = std::thread::spawn(move || acker.deliver("t", 0, epoch, 10));
        assert!(table.wait_written(&zero, Duration::from_secs(10)));
        assert!(ack.join().unwrap());
        let one = [("t".to_string(), 1)];
        assert!(!table.wait_written(&one, Duration::ZERO));
        table.drained();
        assert!(
            table.wait_written(&one, Duration::ZERO),
            "nothing in flight once drained"
        );
    }

    #[test]
    fn lag_is_high_watermark_less_delivered() {
        let lag = PartitionTable::default();
        {
            let mut parts = lag.lock();
            let epoch = parts.assign([("t", 0), ("t", 1)]);
            parts.set_high_watermark("t", 0, 100);
            parts.read("t", 0, epoch, 90);
            parts.deliver("t", 0, epoch, 80);
            parts.committed("t", 1, 5);
            parts.set_high_watermark("t", 1, 5);
        }
        let snapshot = lag.snapshot();
        assert_eq!(snapshot.len(), 2);
        assert_eq!(snapshot[0].lag, Some(20));
        assert_eq!(snapshot[0].read, Some(90));
        assert_eq!(snapshot[1].lag, Some(0));
        assert_eq!(snapshot[1].delivered, None);
    }
}
