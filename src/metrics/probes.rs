//! What a run's observers (`--metrics`, the progress line) read: the
//! counters every part keeps anyway, and the source's own state. Nothing
//! here is updated for the observers' sake: they read when they report.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::parts::{Rejects, Stats};
use crate::source::file::checkpoint::CheckpointStore;
use crate::source::kafka::PartitionTable;
use crate::source::tcp::TcpCounters;

/// Handles on a running pipeline's figures.
#[derive(Clone)]
pub struct Probes {
    /// The kind of source: `file`, `stdin`, `tcp` or `kafka` (the
    /// `source` label: a kind, never a path, so the series stay few).
    pub source: &'static str,
    /// The pipeline's counters.
    pub stats: Arc<Stats>,
    /// The rejected records, by kind of reason.
    pub rejects: Arc<Rejects>,
    /// The TCP source's connections.
    pub tcp: Option<Arc<TcpCounters>>,
    /// The Kafka source's partitions: lag, committed offsets.
    pub kafka: Option<PartitionTable>,
    /// The file source's positions delivered, per open file.
    pub checkpoints: Option<Arc<CheckpointStore>>,
}

impl Probes {
    /// Probes of a run of `source` over `stats` and `rejects`; add the
    /// source's own with the fields.
    pub fn new(source: &'static str, stats: Arc<Stats>, rejects: Arc<Rejects>) -> Self {
        Probes {
            source,
            stats,
            rejects,
            tcp: None,
            kafka: None,
            checkpoints: None,
        }
    }

    /// Records taken in (blank lines skipped by the decode stage not
    /// counted).
    pub fn records_read(&self) -> u64 {
        let stats = &self.stats;
        // The decode stage may count a batch's skipped lines before its
        // source has counted the batch read.
        let skipped = stats.skipped.load(Ordering::Relaxed);
        stats.read.load(Ordering::Relaxed).saturating_sub(skipped)
    }

    /// Records written out.
    pub fn records_written(&self) -> u64 {
        self.stats.written.load(Ordering::Relaxed)
    }

    /// Batches held in the channels now, and how many they hold at most,
    /// over every channel.
    pub fn buffered_batches(&self) -> (usize, usize) {
        self.stats
            .channels
            .fill()
            .iter()
            .fold((0, 0), |(held, room), channel| {
                (held + channel.batches, room + channel.capacity)
            })
    }

    /// The Kafka source's total lag over its partitions, when known for
    /// any.
    pub fn kafka_lag(&self) -> Option<i64> {
        let table = self.kafka.as_ref()?;
        table
            .snapshot()
            .iter()
            .filter_map(|partition| partition.lag)
            .fold(None, |total, lag| Some(total.unwrap_or(0) + lag))
    }
}
