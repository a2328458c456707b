//! The run's live counters ([`Stats`]): what the summary, `--metrics` and
//! the progress line read. Every part adds to them once per batch (or per
//! write), never per record, with relaxed atomic adds: the hot path pays
//! a few adds a batch, and the readers only load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;

/// Counters shared by every part of a run.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records the source took in: handed to the pipeline (whether or not
    /// it still took them), or rejected by the source itself.
    pub read: AtomicU64,
    /// Of those, lines that were no records at all (blank JSON lines),
    /// skipped by the decode stage.
    pub skipped: AtomicU64,
    /// Records the sink wrote out.
    pub written: AtomicU64,
    /// Records `--filter` dropped in the decode stage (handled, and
    /// acknowledged with their batch, but not written).
    pub filtered: AtomicU64,
    /// Bytes of the records handed to the pipeline, as the source holds
    /// them: a file's lines without their line ends, a TCP frame as
    /// framed (a line with its end), a Kafka message's value.
    pub bytes_read: AtomicU64,
    /// Bytes the sink wrote out (NDJSON or CSV as written; for Kafka, the
    /// message values).
    pub bytes_written: AtomicU64,
    /// Nanoseconds the source waited for room in the first channel
    /// (backpressure from the stages after it).
    pub backpressure_nanos: AtomicU64,
    /// How long each of the sink's writes took (a write to a file or
    /// stdout; for Kafka, from a batch's hand-over to its last delivery).
    pub sink_writes: Latency,
    /// The pipeline's channels, for their fill.
    pub channels: Channels,
}

impl Stats {
    /// Moves the records and bytes written and the write times counted
    /// here into `to` (`--exactly-once` counts a transaction's writes apart
    /// until it commits); returns the records moved.
    pub fn move_written(&self, to: &Stats) -> u64 {
        let records = self.written.swap(0, Ordering::Relaxed);
        to.written.fetch_add(records, Ordering::Relaxed);
        let bytes = self.bytes_written.swap(0, Ordering::Relaxed);
        to.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        self.sink_writes.move_to(&to.sink_writes);
        records
    }
}

/// Upper bounds, in seconds, of [`Latency`]'s buckets (the last bucket,
/// +Inf, is implied).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A histogram of durations: a count per bucket, their sum and count,
/// each an atomic (no lock on the write path).
#[derive(Debug, Default)]
pub struct Latency {
    /// Observations per bucket (not cumulative); the last is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Latency {
    /// Counts one duration.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Moves every observation into `to`.
    fn move_to(&self, to: &Latency) {
        let pairs = self.buckets.iter().zip(&to.buckets);
        let all = pairs.chain([(&self.sum_nanos, &to.sum_nanos), (&self.count, &to.count)]);
        for (from, to) in all {
            to.fetch_add(from.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// The sum in seconds, the count, and each bucket's upper bound with
    /// its observations (not cumulative: the encoder adds them up).
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let bounds = LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]);
        let buckets = bounds
            .zip(&self.buckets)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, self.count.load(Ordering::Relaxed), buckets)
    }
}

/// The pipeline's channels, registered as [`crate::pipeline::Pipeline`]
/// makes them, each read through a weak sender: reading one never keeps
/// it open.
#[derive(Default)]
pub struct Channels(Mutex<Vec<Channel>>);

/// One registered channel.
struct Channel {
    name: String,
    capacity: usize,
    fill: Box<dyn Fn() -> usize + Send + Sync>,
}

/// How full one channel is, in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelFill {
    /// Which channel: `raw` (source → decode), `decoded`, `stage_N`.
    pub name: String,
    /// Batches it holds now.
    pub batches: usize,
    /// Batches it holds at most.
    pub capacity: usize,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.fill()).finish()
    }
}

impl Channels {
    /// Registers the channel `tx` sends on, as `name`.
    pub fn register<T: Send + 'static>(&self, name: &str, tx: &mpsc::Sender<T>) {
        let weak = tx.downgrade();
        let channel = Channel {
            name: name.to_string(),
            capacity: tx.max_capacity(),
            // A closed channel (every sender gone) holds nothing more that
            // anyone will send: read as empty.
            fill: Box::new(move || {
                weak.upgrade()
                    .map_or(0, |tx| tx.max_capacity() - tx.capacity())
            }),
        };
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(channel);
    }

    /// Every channel's fill, in pipeline order.
    pub fn fill(&self) -> Vec<ChannelFill> {
        let channels = self.0.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .iter()
            .map(|channel| ChannelFill {
                name: channel.name.clone(),
                batches: (channel.fill)(),
                capacity: channel.capacity,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_counts_move_whole_and_leave_nothing_behind() {
        let (held, run) = (Stats::default(), Stats::default());
        held.written.store(7, Ordering::Relaxed);
        held.bytes_written.store(70, Ordering::Relaxed);
        held.sink_writes.observe(Duration::from_millis(3));
        run.written.store(1, Ordering::Relaxed);
        assert_eq!(held.move_written(&run), 7);
        assert_eq!(run.written.load(Ordering::Relaxed), 8);
        assert_eq!(run.bytes_written.load(Ordering::Relaxed), 70);
        assert_eq!(run.sink_writes.snapshot().1, 1);
        assert_eq!(held.move_written(&run), 0);
        assert_eq!(held.sink_writes.snapshot().1, 0);
    }

    #[test]
    fn latency_falls_in_its_buckets() {
        let latency = Latency::default();
        latency.observe(Duration::from_micros(50));
        latency.observe(Duration::from_millis(3));
        latency.observe(Duration::from_secs(60));
        let (sum, count, buckets) = latency.snapshot();
        assert_eq!(count, 3);
        assert!((sum - 60.00305).abs() < 1e-9, "{sum}");
        assert_eq!(buckets[0], (0.0001, 1));
        assert_eq!(buckets[5], (0.005, 1));
        assert_eq!(buckets[14], (f64::INFINITY, 1));
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 3);
    }

    #[tokio::test]
    async fn channel_fill_counts_waiting_batches() {
        let channels = Channels::default();
        let (tx, mut rx) = mpsc::channel::<u8>(4);
        channels.register("raw", &tx);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        let fill = |batches| ChannelFill {
            name: "raw".into(),
            batches,
            capacity: 4,
        };
        assert_eq!(channels.fill(), vec![fill(2)]);
        rx.recv().await.unwrap();
        assert_eq!(channels.fill(), vec![fill(1)]);
        drop(tx);
        assert_eq!(channels.fill(), vec![fill(0)]);
        assert_eq!(rx.recv().await, Some(2), "reading it kept nothing open");
        assert_eq!(rx.recv().await, None);
    }
}
