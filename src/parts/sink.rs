//! What a sink is and is given: the [`Sink`] trait and the receiving end
//! of the pipeline's last channel.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::{Rejects, Stats};
use crate::error::Result;
use crate::record::Batch;

/// A consumer of records.
pub trait Sink: Send + 'static {
    /// Writes every batch of `input` until it closes, flushes, and returns.
    fn run(self: Box<Self>, input: SinkInput) -> BoxFuture<'static, Result<()>>;
}

/// The receiving end of the last channel of the pipeline. The last stage
/// (or the decode stage) holds the sender; it closes once everything
/// upstream has ended, which tells the sink to flush and return.
pub struct SinkInput {
    rx: mpsc::Receiver<Batch>,
    stats: Arc<Stats>,
    rejects: Arc<Rejects>,
}

impl SinkInput {
    /// Wraps the channel; `stats.written` counts what the sink reports
    /// written, `rejects` takes the records it cannot write (a CSV row
    /// with a key that is not a column), counted as rejected.
    pub fn new(rx: mpsc::Receiver<Batch>, stats: Arc<Stats>, rejects: Arc<Rejects>) -> Self {
        SinkInput { rx, stats, rejects }
    }

    /// Where the sink's rejected records go.
    pub fn rejects(&self) -> Arc<Rejects> {
        self.rejects.clone()
    }

    /// A sink input fed by the returned sender, for testing a sink alone.
    pub fn for_test(capacity: usize) -> (mpsc::Sender<Batch>, SinkInput, Arc<Stats>) {
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(Stats::default());
        (
            tx,
            SinkInput::new(rx, stats.clone(), Arc::new(Rejects::skip())),
            stats,
        )
    }

    /// A second input, fed by the returned sender, that rejects into this
    /// one's handler but counts what it writes apart ([`HeldWritten`]): for
    /// a sink that wraps another, hands it the batches, and calls them
    /// written only later (`--exactly-once`: once their transaction
    /// committed).
    pub fn relay(&self, capacity: usize) -> (mpsc::Sender<Batch>, SinkInput, HeldWritten) {
        let (tx, rx) = mpsc::channel(capacity);
        let held = HeldWritten {
            held: Arc::default(),
            run: self.stats.clone(),
        };
        let input = SinkInput::new(rx, held.held.clone(), self.rejects.clone());
        (tx, input, held)
    }

    /// The next batch, waiting for it; `None` once the input is closed and drained.
    pub async fn recv(&mut self) -> Option<Batch> {
        self.rx.recv().await
    }

    /// The next batch if one is ready now, without waiting.
    pub fn try_recv(&mut self) -> TryRecv {
        match self.rx.try_recv() {
            Ok(batch) => TryRecv::Batch(batch),
            Err(mpsc::error::TryRecvError::Empty) => TryRecv::Empty,
            Err(mpsc::error::TryRecvError::Disconnected) => TryRecv::Closed,
        }
    }

    /// Counts `records` as written out.
    pub fn count_written(&self, records: usize) {
        self.written_counter().add(records);
    }

    /// Counts one write of the sink (see [`WrittenCounter::add_write`]).
    pub fn count_write(&self, records: usize, bytes: usize, elapsed: Duration) {
        self.written_counter().add_write(records, bytes, elapsed);
    }

    /// A handle that counts written records, for use apart from the input.
    pub fn written_counter(&self) -> WrittenCounter {
        WrittenCounter(self.stats.clone())
    }
}

/// What a relayed sink ([`SinkInput::relay`]) wrote, held apart from the
/// run's figures until the wrapping sink calls it written.
pub struct HeldWritten {
    held: Arc<Stats>,
    run: Arc<Stats>,
}

impl HeldWritten {
    /// Counts what is held as written in the run's figures; returns how
    /// many records that was.
    pub fn release(&self) -> u64 {
        self.held.move_written(&self.run)
    }
}

/// What [`SinkInput::try_recv`] found.
#[derive(Debug)]
pub enum TryRecv {
    /// The next batch.
    Batch(Batch),
    /// No batch is ready now; more may come.
    Empty,
    /// The input is closed and drained: no batch will come.
    Closed,
}

/// Counts records a sink has written (the run's `written` figure).
#[derive(Clone)]
pub struct WrittenCounter(Arc<Stats>);

impl WrittenCounter {
    /// Counts `records` as written out.
    pub fn add(&self, records: usize) {
        self.0.written.fetch_add(records as u64, Ordering::Relaxed);
    }

    /// Counts one write of the sink: `records` written, `bytes` long,
    /// which took `elapsed`.
    pub fn add_write(&self, records: usize, bytes: usize, elapsed: Duration) {
        self.add(records);
        self.0
            .bytes_written
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.0.sink_writes.observe(elapsed);
    }
}
