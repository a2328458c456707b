//! Where unkeyed records go: a whole librdkafka call to one partition, the
//! partitions in turn. librdkafka's sticky partitioner spreads unkeyed
//! messages the same way, but runs for each message (a clock read and a
//! partition lookup); a call for one partition appends its messages under
//! one lookup (measured: see the commit that brought this in).
//!
//! A partition is skipped while it has half a request's worth of records
//! undelivered. librdkafka's idempotent producer sends one request at a
//! time per partition (it counts messages in flight against its limit of 5
//! requests: confluentinc/librdkafka#4989), and while that request is out,
//! a batch ready behind it makes its broker thread spin (it wakes at once
//! to send, and cannot): with 2M records to 4 partitions, that spinning was
//! half the thread's time. Records held back wait in the pipeline's
//! bounded channels instead.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::metadata::Metadata;
use rdkafka::producer::Producer;

use super::native::ANY_PARTITION;
use super::poller::Client;
use super::settings::RequestSize;
use super::Pending;
use crate::kafka::QUERY_TIMEOUT;

/// How often the partition count is read again while records flow, so
/// that partitions added during a run get records too.
const REFRESH: Duration = Duration::from_secs(10);

/// A v2 record's framing around its value, about (length, attributes,
/// timestamp and offset deltas, key and header counts): what `batch.size`
/// counts besides the value.
const RECORD_FRAMING: usize = 16;

/// The topic's partition count and whose turn it is.
pub(super) struct Partitions {
    /// The partition count; 0 while not known (then librdkafka's
    /// partitioner decides). Shared with the refresh's blocking task.
    count: Arc<AtomicUsize>,
    /// Which partition the next call goes to, modulo `count`.
    next: AtomicUsize,
    /// When the count was last asked for.
    asked: std::sync::Mutex<Instant>,
    /// What one request carries to a partition, at most.
    request: RequestSize,
}

impl Partitions {
    /// Not known yet; `request` is the producer's request size.
    pub(super) fn new(request: RequestSize) -> Self {
        Partitions {
            count: Arc::new(AtomicUsize::new(0)),
            next: AtomicUsize::new(0),
            asked: std::sync::Mutex::new(Instant::now()),
            request,
        }
    }

    /// The count from a metadata answer (the start-up check's).
    pub(super) fn set(&self, count: Option<usize>) {
        self.count.store(count.unwrap_or(0), Ordering::Relaxed);
    }

    /// The partition of the next batch: from the one whose turn it is,
    /// the first with less than half a request's worth of `pending` records
    /// undelivered; `None` when none has (wait for deliveries). Any
    /// partition ([`ANY_PARTITION`]) while the count is not known. Asks
    /// for the count again, in the background, every [`REFRESH`].
    pub(super) fn next(
        &self,
        producer: &Arc<Client>,
        topic: &str,
        pending: &VecDeque<Pending>,
    ) -> Option<i32> {
        self.refresh_if_due(producer, topic);
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return Some(ANY_PARTITION);
        }
        // (records, bytes) undelivered per partition.
        let mut loads = vec![(0usize, 0usize); count];
        for batch in pending {
            let Some(load) = usize::try_from(batch.partition)
                .ok()
                .and_then(|partition| loads.get_mut(partition))
            else {
                continue;
            };
            if batch.delivery.remaining.load(Ordering::Acquire) > 0 {
                load.0 += batch.records;
                load.1 += batch.bytes + batch.records * RECORD_FRAMING;
            }
        }
        let turn = self.next.load(Ordering::Relaxed);
        free_partition(&loads, turn, self.request).and_then(|found| i32::try_from(found).ok())
    }

    /// Notes that a batch went to `partition`: the next one's turn comes.
    pub(super) fn taken(&self, partition: i32) {
        if let Ok(partition) = usize::try_from(partition) {
            self.next.store(partition + 1, Ordering::Relaxed);
        }
    }

    fn refresh_if_due(&self, producer: &Arc<Client>, topic: &str) {
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        if asked.elapsed() < REFRESH {
            return;
        }
        *asked = Instant::now();
        let (producer, topic, count) = (producer.clone(), topic.to_string(), self.count.clone());
        // A metadata request blocks: off the runtime's workers. An answer
        // without the topic leaves the count as it was.
        tokio::task::spawn_blocking(move || {
            if let Ok(metadata) = producer
                .client()
                .fetch_metadata(Some(&topic), QUERY_TIMEOUT)
            {
                if let Some(found) = partition_count(&metadata, &topic) {
                    count.store(found, Ordering::Relaxed);
                }
            }
        });
    }
}

/// From `turn` on (modulo their count), the first partition whose
/// undelivered (records, bytes) in `loads` are below half a request, so
/// that with the next batch (less than half a request, as a rule) they
/// still fit in one.
fn free_partition(loads: &[(usize, usize)], turn: usize, request: RequestSize) -> Option<usize> {
    let count = loads.len();
    (0..count)
        .map(|step| (turn + step) % count)
        .find(|&partition| {
            let (records, bytes) = loads[partition];
            records < request.records / 2 && bytes < request.bytes / 2
        })
}

/// How many partitions `metadata` lists for `topic`, if it lists it
/// without an error.
pub(super) fn partition_count(metadata: &Metadata, topic: &str) -> Option<usize> {
    metadata
        .topics()
        .iter()
        .find(|listed| listed.name() == topic && listed.error().is_none())
        .map(|listed| listed.partitions().len())
        .filter(|&count| count > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_with_half_a_request_undelivered_is_skipped() {
        let request = RequestSize {
            records: 100,
            bytes: 10_000,
        };
        let loads = [(0, 0), (50, 100), (10, 5_000), (49, 4_999)];
        // In turn from 3: 3 is below both halves.
        assert_eq!(free_partition(&loads, 3, request), Some(3));
        // From 1: 1 has half the records, 2 half the bytes.
        assert_eq!(free_partition(&loads, 1, request), Some(3));
        // Past the last, round to the first.
        assert_eq!(free_partition(&loads, 4, request), Some(0));
        let busy = [(50, 0), (0, 5_000)];
        assert_eq!(free_partition(&busy, 0, request), None);
    }
}
