//! Where unkeyed records go: a whole librdkafka call to one partition, the
//! partitions in turn. librdkafka's sticky partitioner spreads unkeyed
//! messages the same way, but runs for each message (a clock read and a
//! partition lookup); a call for one partition appends its messages under
//! one lookup (measured: see the commit that brought this in).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::metadata::Metadata;
use rdkafka::producer::Producer;

use super::native::ANY_PARTITION;
use super::poller::Client;
use crate::kafka::QUERY_TIMEOUT;

/// How often the partition count is read again while records flow, so
/// that partitions added during a run get records too.
const REFRESH: Duration = Duration::from_secs(10);

/// The topic's partition count and whose turn it is.
pub(super) struct Partitions {
    /// The partition count; 0 while not known (then librdkafka's
    /// partitioner decides). Shared with the refresh's blocking task.
    count: Arc<AtomicUsize>,
    /// Which partition the next call goes to, modulo `count`.
    next: AtomicUsize,
    /// When the count was last asked for.
    asked: std::sync::Mutex<Instant>,
}

impl Partitions {
    /// Not known yet.
    pub(super) fn new() -> Self {
        Partitions {
            count: Arc::new(AtomicUsize::new(0)),
            next: AtomicUsize::new(0),
            asked: std::sync::Mutex::new(Instant::now()),
        }
    }

    /// The count from a metadata answer (the start-up check's).
    pub(super) fn set(&self, count: Option<usize>) {
        self.count.store(count.unwrap_or(0), Ordering::Relaxed);
    }

    /// The partition of the next call, or [`ANY_PARTITION`] while the count
    /// is not known. Asks for the count again, in the background, every
    /// [`REFRESH`].
    pub(super) fn next(&self, producer: &Arc<Client>, topic: &str) -> i32 {
        self.refresh_if_due(producer, topic);
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return ANY_PARTITION;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        i32::try_from(turn % count).unwrap_or(ANY_PARTITION)
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
