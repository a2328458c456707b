//! [`TransactionalSink`]: the Kafka sink inside transactions. It hands the
//! batches on to the [`KafkaSink`] (through a relay channel, so the
//! sink's write loop is the same one as without `--exactly-once`), opens a
//! transaction before the first batch, and every `--transaction-interval`
//! (and at the end of its input) stops handing batches on, waits until
//! every batch handed on is delivered, and commits: the input offsets the
//! batches' acks noted ([`Link`]) and the messages together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::commit::{self, describe, CALL_TIMEOUT};
use super::link::Link;
use crate::ack::Ack;
use crate::error::{Error, Result};
use crate::kafka;
use crate::parts::{HeldWritten, Sink, SinkInput};
use crate::record::Batch;
use crate::sink::{KafkaSink, Transactions};

/// Batches the relay channel holds: the Kafka sink has its own queue.
const RELAY_BATCHES: usize = 2;

/// Writes records to a Kafka topic in transactions that also commit the
/// input's offsets; see the module documentation.
pub struct TransactionalSink {
    inner: KafkaSink,
    producer: Arc<dyn Transactions>,
    link: Link,
    /// `topic `OUT` (transactional.id ID)`, for every error.
    name: String,
}

impl TransactionalSink {
    /// Registers the producer's `transactional.id` with the brokers, which
    /// fences an earlier producer of that id (aborting its open
    /// transaction); fails if the brokers refuse transactions. `inner`'s
    /// settings must carry [`Link::producer_config`].
    pub async fn start(inner: KafkaSink, link: Link) -> Result<Self> {
        let name = format!(
            "topic `{}` (transactional.id {})",
            inner.topic(),
            link.transactional_id()
        );
        let producer = inner.transactions();
        let initializing = producer.clone();
        tokio::task::spawn_blocking(move || initializing.init(CALL_TIMEOUT))
            .await
            .map_err(|e| Error::panicked("starting the Kafka transactions", e))?
            .map_err(|error| {
                Error::Kafka(format!(
                    "{name}: cannot start transactions: {}",
                    kafka::describe(&error)
                ))
            })?;
        Ok(TransactionalSink {
            inner,
            producer,
            link,
            name,
        })
    }
}

impl Sink for TransactionalSink {
    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let TransactionalSink {
                inner,
                producer,
                link,
                name,
            } = *self;
            // The Kafka sink's input: this sink holds the sender; closing
            // it (once the last transaction is committed) ends that sink.
            // What it writes counts as written once committed (`held`).
            let (relay, inner_input, held) = input.relay(RELAY_BATCHES);
            let inner = tokio::spawn(Box::new(inner).run(inner_input));
            let mut cycle = Cycle {
                producer,
                link,
                name,
                delivered: Arc::default(),
                forwarded: 0,
                open_records: 0,
                held,
                open_until: None,
                inner,
            };
            let result = cycle.copy(&mut input, relay).await;
            let Cycle { producer, .. } = cycle;
            // Its last reference may join the producer's polling thread.
            let _ = tokio::task::spawn_blocking(move || drop(producer)).await;
            result
        })
    }
}

/// Batches delivered by the Kafka sink, counted by an ack of this sink's
/// own added after the batch's others.
#[derive(Default)]
struct Delivered {
    batches: AtomicU64,
    /// Woken at each; [`Cycle::end`] waits on it.
    notify: Notify,
}

/// The transaction cycle of one run.
struct Cycle {
    producer: Arc<dyn Transactions>,
    link: Link,
    name: String,
    delivered: Arc<Delivered>,
    /// Batches handed on to the Kafka sink, all transactions together.
    forwarded: u64,
    /// Records handed on in the open transaction.
    open_records: u64,
    /// What the Kafka sink wrote, counted written when it commits.
    held: HeldWritten,
    /// When the open transaction is due to commit; `None`: none is open.
    open_until: Option<Instant>,
    /// The Kafka sink's task: ended only after the relay closes, unless it
    /// failed (then it is not polled again: the run ends).
    inner: JoinHandle<Result<()>>,
}

impl Cycle {
    /// Hands every batch of `input` on inside transactions, committing
    /// them as it goes and once the input ends.
    async fn copy(&mut self, input: &mut SinkInput, relay: mpsc::Sender<Batch>) -> Result<()> {
        loop {
            // A revoke in progress: commit what is open now.
            let due = match self.open_until {
                Some(_) if self.link.hurried() => Instant::now(),
                Some(until) => until,
                None => Instant::now(),
            };
            tokio::select! {
                batch = input.recv() => match batch {
                    Some(mut batch) => {
                        if self.open_until.is_none() {
                            self.begin()?;
                        }
                        batch.acks.push(self.delivery_ack());
                        self.forwarded += 1;
                        self.open_records += batch.len() as u64;
                        if relay.send(batch).await.is_err() {
                            let ended = (&mut self.inner).await;
                            return Err(self.fail(inner_failure(ended)).await);
                        }
                    }
                    None => {
                        if self.open_until.is_some() {
                            self.end().await?;
                        }
                        drop(relay);
                        return (&mut self.inner)
                            .await
                            .map_err(|e| Error::panicked("the Kafka sink", e))?;
                    }
                },
                _ = tokio::time::sleep_until(due), if self.open_until.is_some() => self.end().await?,
                // Loops to the check above (a stale wake-up costs nothing).
                _ = self.link.hurry_called() => {}
                ended = &mut self.inner => return Err(self.fail(inner_failure(ended)).await),
            }
        }
    }

    fn begin(&mut self) -> Result<()> {
        self.producer.begin().map_err(|error| {
            Error::Kafka(format!(
                "{}: cannot begin a transaction: {}",
                self.name,
                kafka::describe(&error)
            ))
        })?;
        self.open_until = Some(Instant::now() + self.link.interval());
        Ok(())
    }

    fn delivery_ack(&self) -> Ack {
        let delivered = self.delivered.clone();
        Ack::new(move || {
            delivered.batches.fetch_add(1, Ordering::AcqRel);
            delivered.notify.notify_one();
        })
    }

    /// Waits until every batch handed on is delivered (so every offset of
    /// the transaction is noted), then commits; aborts on any failure.
    async fn end(&mut self) -> Result<()> {
        while self.delivered.batches.load(Ordering::Acquire) < self.forwarded {
            tokio::select! {
                _ = self.delivered.notify.notified() => {}
                ended = &mut self.inner => return Err(self.fail(inner_failure(ended)).await),
            }
        }
        let (producer, link) = (self.producer.clone(), self.link.clone());
        let committed = tokio::task::spawn_blocking(move || commit::commit(&*producer, &link))
            .await
            .map_err(|e| Error::panicked("the Kafka transaction commit", e))?;
        match committed {
            Ok(offsets) => {
                tracing::debug!(
                    "transaction committed: input offsets {}",
                    describe(&offsets)
                );
                self.held.release();
                self.open_records = 0;
                self.open_until = None;
                Ok(())
            }
            Err(reason) => Err(self.fail(reason).await),
        }
    }

    /// Aborts the open transaction after `reason`: the run's error.
    async fn fail(&mut self, reason: String) -> Error {
        let (producer, records) = (self.producer.clone(), self.open_records);
        // Open past its timeout, the broker aborted it (and bumped the
        // epoch, which librdkafka reports as a fencing).
        let timed_out = self
            .open_until
            .map(|until| until - self.link.interval())
            .filter(|opened| opened.elapsed() >= self.link.timeout())
            .map(|_| self.link.timeout());
        let message = tokio::task::spawn_blocking(move || {
            commit::abort(&*producer, &reason, records, timed_out)
        })
        .await
        .unwrap_or_else(|_| "aborting the transaction panicked".into());
        // Their records are not committed: the source must not call them
        // written.
        drop(self.link.take());
        Error::Kafka(format!("{}: {message}", self.name))
    }
}

/// Why the Kafka sink's task ended while this sink still fed it.
fn inner_failure(ended: std::result::Result<Result<()>, tokio::task::JoinError>) -> String {
    match ended {
        // Without its "kafka: " prefix: the run's error wraps it in one
        // (it read `kafka: topic ...: kafka: cannot deliver ...`).
        Ok(Err(Error::Kafka(message))) => message,
        Ok(Err(error)) => error.to_string(),
        Ok(Ok(())) => "the Kafka sink ended before its input".into(),
        Err(error) => format!("the Kafka sink panicked: {error}"),
    }
}
