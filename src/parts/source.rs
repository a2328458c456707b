//! What a source is and is given: the [`Source`] trait, its
//! [`SourceContext`], and the sending end of the raw channel.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Rejects, Stats};
use crate::error::Result;
use crate::record::RawBatch;

/// A producer of records.
pub trait Source: Send + 'static {
    /// Reads until the input ends or `ctx.shutdown` is cancelled, sending
    /// every record it read through `ctx.out` before returning.
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<()>>;
}

/// What a source is given to run with.
pub struct SourceContext {
    /// Where the source's batches go.
    pub out: RawSender,
    /// Cancelled when the source must stop taking new input (Ctrl-C,
    /// SIGTERM, `--limit` reached, or the run failing downstream). Records
    /// already read are still sent.
    pub shutdown: CancellationToken,
    /// Where records the source itself finds bad (an over-long line) go.
    pub rejects: Arc<Rejects>,
    /// Most records a batch should hold.
    pub batch_records: usize,
    /// A batch is sent once it holds this many bytes.
    pub batch_bytes: usize,
}

impl SourceContext {
    /// A context for testing a source alone: returns it with the receiving
    /// end of its output channel (`capacity` batches) and its shutdown token.
    pub fn for_test(
        capacity: usize,
        batch_records: usize,
    ) -> (SourceContext, mpsc::Receiver<RawBatch>, CancellationToken) {
        let (tx, rx) = mpsc::channel(capacity);
        let shutdown = CancellationToken::new();
        let context = SourceContext {
            out: RawSender::new(tx, Arc::new(Stats::default())),
            shutdown: shutdown.clone(),
            rejects: Arc::new(Rejects::skip()),
            batch_records,
            batch_bytes: 256 * 1024,
        };
        (context, rx, shutdown)
    }

    /// True once `batch` should be sent rather than grown.
    pub fn is_full(&self, batch: &RawBatch) -> bool {
        batch.len() >= self.batch_records || batch.byte_len() >= self.batch_bytes
    }
}

/// The sending end of the source → decode channel. The decode stage holds
/// the receiver; when it is dropped (the run is ending), [`RawSender::send`]
/// fails and the source should return.
#[derive(Clone)]
pub struct RawSender {
    tx: mpsc::Sender<RawBatch>,
    stats: Arc<Stats>,
    /// Cancelled by the user's signal only (not by `--limit` or a
    /// failure, which also stop the source).
    signal: CancellationToken,
}

/// The pipeline no longer takes records: the run is ending downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl RawSender {
    /// Wraps the channel's sender; `stats.read` counts every record handed
    /// to it, also when the pipeline no longer takes them (they were read:
    /// the summary reports them as read but not processed).
    pub fn new(tx: mpsc::Sender<RawBatch>, stats: Arc<Stats>) -> Self {
        RawSender {
            tx,
            stats,
            signal: CancellationToken::new(),
        }
    }

    /// The same sender, told that `signal` is cancelled by the user's
    /// signal (Ctrl-C, SIGTERM).
    pub fn with_signal(self, signal: CancellationToken) -> Self {
        RawSender { signal, ..self }
    }

    /// True once the user's signal stopped the run: a record then half
    /// read is rejected, since its bytes may be gone for good (a pipe).
    /// Not when the run stops for `--limit` or a failure.
    pub fn signalled(&self) -> bool {
        self.signal.is_cancelled()
    }

    /// Sends a batch, waiting while the pipeline is full. Empty batches
    /// without acks are not sent.
    pub async fn send(&self, batch: RawBatch) -> Result<(), Closed> {
        if batch.is_empty() && batch.acks.is_empty() {
            return Ok(());
        }
        let records = batch.len() as u64;
        let bytes = batch.byte_len() as u64;
        // The clock is read only when the channel is full: the fast path
        // pays nothing for the backpressure figure.
        let sent = match self.tx.try_send(batch) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(batch)) => {
                let waiting = std::time::Instant::now();
                let sent = self.tx.send(batch).await;
                let waited = u64::try_from(waiting.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.stats
                    .backpressure_nanos
                    .fetch_add(waited, Ordering::Relaxed);
                sent.map_err(|_| Closed)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Closed),
        };
        self.stats.read.fetch_add(records, Ordering::Relaxed);
        self.stats.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        sent
    }

    /// The run's counters (records read, written), for a source that
    /// reports its progress.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Counts records the source read but rejected itself, so never sends:
    /// they are read all the same (`read` = written + rejected).
    pub fn count_unsent(&self, records: u64) {
        self.stats.read.fetch_add(records, Ordering::Relaxed);
    }

    /// Resolves once the pipeline takes no more records (the decode stage
    /// ended: `--limit` reached, or the run failing downstream), so a
    /// source waiting for input can stop waiting.
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    /// True once the pipeline takes no more records.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Waits for `next`; if it is not ready at once, first runs what
/// `meanwhile` makes (once): a source passes on the records it holds
/// rather than keep them while its input pauses. Fails, without waiting
/// for `next`, when `meanwhile` does.
pub async fn or_meanwhile<T, E, M>(
    next: impl std::future::Future<Output = T>,
    meanwhile: impl FnOnce() -> M,
) -> Result<T, E>
where
    M: std::future::Future<Output = std::result::Result<(), E>>,
{
    tokio::pin!(next);
    if let std::task::Poll::Ready(value) = futures::poll!(next.as_mut()) {
        return Ok(value);
    }
    meanwhile().await?;
    Ok(next.await)
}
