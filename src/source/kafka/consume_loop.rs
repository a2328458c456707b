//! The read loop ([`ConsumeLoop`]): takes messages from the consumer,
//! groups them into batches per partition, sends the batches into the
//! pipeline, and stores the offsets of the batches the sink has written.
//!
//! Backpressure: the loop sends each batch into the pipeline and waits
//! while it is full, without polling the consumer. librdkafka then
//! prefetches only up to `queued.max.messages.kbytes` or
//! `queued.min.messages` and stops fetching, so memory stays flat however
//! far behind we are.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message as _};
use rdkafka::topic_partition_list::Offset;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::batcher::{Batcher, Finished, Message};
use super::commit::{store_delivered, Delivered};
use super::options::ASSIGNMENT_PATIENCE;
use super::partitions::{PartitionTable, Partitions};
use super::rebalance::GroupContext;
use super::unreadable::{is_unreadable, Unreadable};
use crate::ack::{Ack, CutAck};
use crate::error::{Error, Result};
use crate::exactly_once::Link;
use crate::kafka;
use crate::parts::{Closed, RawSender, Rejects};
use crate::record::{RawBatch, SourceInfo};

/// The read loop's state (named `Reader` before).
pub(super) struct ConsumeLoop<'a> {
    pub(super) consumer: &'a StreamConsumer<GroupContext>,
    pub(super) table: &'a PartitionTable,
    pub(super) rejects: &'a Rejects,
    /// Into the pipeline; the decode stage holds the receiver. Dropping it
    /// tells the pipeline the source is done.
    pub(super) out: RawSender,
    /// Cloned into every batch's ack; the receiver is [`Self::acks`].
    pub(super) acks_tx: mpsc::UnboundedSender<Delivered>,
    /// Acknowledgements of written batches, fired by the sink. Closed once
    /// `acks_tx` and every batch in flight are gone.
    pub(super) acks: mpsc::UnboundedReceiver<Delivered>,
    pub(super) batcher: Batcher,
    /// One shared `SourceInfo` per partition, so batches do not allocate it.
    pub(super) sources: HashMap<String, HashMap<i32, Arc<SourceInfo>>>,
    pub(super) until_end: bool,
    /// Messages fetched but not readable, in a row.
    pub(super) unreadable: Unreadable,
    /// Said once if no assignment comes within [`ASSIGNMENT_PATIENCE`].
    pub(super) waiting_note: String,
    /// `--exactly-once`: each batch's ack notes its offset in the open
    /// transaction, and fires ours once that committed.
    pub(super) transactions: Option<Link>,
}

/// The ack of a batch: once the sink has written it, notes it delivered in
/// the partition table (where a revoke callback may be waiting for it,
/// while the read loop is blocked in that callback) and tells the read
/// loop (through `acks`) to store the offset for the automatic commit.
fn ack_for(
    acks: &mpsc::UnboundedSender<Delivered>,
    table: &PartitionTable,
    source: Arc<SourceInfo>,
    epoch: u64,
    next_offset: i64,
) -> Ack {
    let acks = acks.clone();
    let table = table.clone();
    Ack::new(move || {
        if let SourceInfo::Kafka { topic, partition } = &*source {
            table.deliver(topic, *partition, epoch, next_offset);
        }
        // The receiver is gone only once the source has ended.
        let _ = acks.send(Delivered {
            source,
            epoch,
            next_offset,
        });
    })
}

impl ConsumeLoop<'_> {
    fn partitions(&self) -> MutexGuard<'_, Partitions> {
        self.table.lock()
    }

    /// Reads until shutdown, `--until-end`, the pipeline closing, or a
    /// permanent error; every message read is in a sent batch on return.
    pub(super) async fn read(
        &mut self,
        shutdown: &CancellationToken,
        changed: &Notify,
    ) -> Result<()> {
        let result = self.read_messages(shutdown, changed).await;
        let rest = self.batcher.take_all();
        // Closed: the run is ending downstream, nothing more can be sent.
        let _ = self.send_batches(rest).await;
        result
    }

    /// The loop of [`ConsumeLoop::read`]: `Ok` whenever the read ends
    /// normally (shutdown, `--until-end`, or the pipeline closed).
    async fn read_messages(
        &mut self,
        shutdown: &CancellationToken,
        changed: &Notify,
    ) -> Result<()> {
        let consumer = self.consumer;
        // Polling this stream runs the rebalance callbacks, which block;
        // see `rebalance` for how they keep off the worker.
        let mut stream = consumer.stream();
        // A restarted member's group may wait out the session of the
        // member it replaces, silently: say so once.
        let patience = tokio::time::sleep(ASSIGNMENT_PATIENCE);
        tokio::pin!(patience);
        let mut patient = true;
        loop {
            if self.until_end && self.partitions().all_at_end() {
                tracing::info!("every assigned partition is read to its end (--until-end)");
                return Ok(());
            }
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                Some(delivered) = self.acks.recv() => {
                    store_delivered(consumer, self.table, delivered);
                    continue;
                }
                _ = changed.notified() => continue,
                _ = &mut patience, if patient => {
                    patient = false;
                    if !self.partitions().joined() {
                        tracing::warn!("{}", self.waiting_note);
                    }
                    continue;
                }
                next = stream.next() => next,
            };
            // A burst: take every message ready now, sending full batches
            // as they fill, then the partial one once nothing is ready.
            let mut next = next;
            while let Some(result) = next {
                match result {
                    Ok(message) => {
                        self.unreadable.message_read();
                        self.add(&message)?
                    }
                    Err(error) => self.consumer_error(error)?,
                }
                if self.batcher.has_ready() {
                    let full = self.batcher.take_ready();
                    if self.send_batches(full).await.is_err() {
                        return Ok(());
                    }
                    // Under a steady stream the burst may not end by
                    // itself: look for the end here too.
                    if self.until_end && self.partitions().all_at_end() {
                        break;
                    }
                }
                if shutdown.is_cancelled() {
                    return Ok(());
                }
                next = stream.next().now_or_never().flatten();
            }
            let partial = self.batcher.take_all();
            if self.send_batches(partial).await.is_err() {
                return Ok(());
            }
        }
    }

    /// Copies one message into the batch of its partition.
    fn add(&mut self, message: &BorrowedMessage<'_>) -> Result<()> {
        if self.consumer.context().log.is_down() {
            self.consumer.context().log.mark_up();
        }
        // Headers are parsed by librdkafka on request: only for --origin.
        let headers = match self.batcher.origin().then(|| message.headers()).flatten() {
            Some(headers) => headers
                .iter()
                .map(|header| (header.key, header.value))
                .collect(),
            None => Vec::new(),
        };
        let view = Message {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            payload: message.payload(),
            key: message.key(),
            timestamp: message.timestamp().to_millis(),
            headers,
        };
        let sources = &mut self.sources;
        let table = self.table;
        let info = || {
            let source = sources
                .entry(view.topic.to_string())
                .or_default()
                .entry(view.partition)
                .or_insert_with(|| {
                    Arc::new(SourceInfo::Kafka {
                        topic: view.topic.to_string(),
                        partition: view.partition,
                    })
                })
                .clone();
            // Epoch 0 is no assignment's: a message read after its
            // partition was revoked is output, never committed.
            let epoch = table.lock().epoch(view.topic, view.partition).unwrap_or(0);
            (source, epoch)
        };
        let added = self.batcher.add(&view, info, self.rejects);
        // A message rejected by the batcher is in no batch; it was read all
        // the same (`read` = written + rejected).
        let rejected = self.batcher.take_rejected();
        if rejected > 0 {
            self.out.count_unsent(rejected);
        }
        added
    }

    /// Handles an error the consumer returned instead of a message. Most
    /// are passing (and already logged by the client context).
    fn consumer_error(&mut self, error: KafkaError) -> Result<()> {
        if let Some(reason) = self.consumer.context().log.permanent_error() {
            return Err(Error::Kafka(reason));
        }
        match error {
            KafkaError::PartitionEOF(partition) => {
                let ambiguous = self.partitions().end_reached(partition);
                if !ambiguous.is_empty() {
                    self.check_positions(&ambiguous);
                }
                Ok(())
            }
            KafkaError::MessageConsumptionFatal(code) => Err(self.fatal(code)),
            KafkaError::MessageConsumption(code) if is_unreadable(code) => {
                self.unreadable.handle(code, self.rejects.stops())
            }
            other => match kafka::error_code(&other) {
                Some(code) if kafka::is_permanent(code) => Err(self.fatal(code)),
                _ => Ok(()),
            },
        }
    }

    fn fatal(&self, code: RDKafkaErrorCode) -> Error {
        let reason = self.consumer.context().log.last_error();
        Error::Kafka(
            reason.unwrap_or_else(|| kafka::describe(&KafkaError::MessageConsumption(code))),
        )
    }

    /// After an end-of-partition event that names only a partition number
    /// shared by several topics: asks the consumer where each stands
    /// (local state, no broker round trip).
    fn check_positions(&self, candidates: &[(String, i32)]) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        let mut partitions = self.partitions();
        for (topic, partition) in candidates {
            if let Some(Offset::Offset(position)) = positions
                .find_partition(topic, *partition)
                .map(|element| element.offset())
            {
                partitions.position(topic, *partition, position);
            }
        }
    }

    /// Sends finished batches in order, each with an ack that reports its
    /// partition's next offset back here once the sink has written it.
    /// A batch of a partition revoked since it was started is dropped
    /// unsent: none of it is committed, so whoever owns the partition now
    /// reads it from the committed offset; sending it would only output
    /// those records twice.
    async fn send_batches(&mut self, batches: Vec<Finished>) -> Result<(), Closed> {
        for finished in batches {
            let Finished {
                mut batch,
                epoch,
                next_offset,
            } = finished;
            if let SourceInfo::Kafka { topic, partition } = &*batch.source {
                let mut partitions = self.partitions();
                if partitions.epoch(topic, *partition) != Some(epoch) {
                    let _span = super::partition_span(topic, *partition).entered();
                    tracing::debug!(
                        "{} records read before the partition was revoked dropped unsent \
                         (not committed: its next owner reads them)",
                        batch.len()
                    );
                    continue;
                }
                partitions.read(topic, *partition, epoch, next_offset);
            }
            let ack = ack_for(
                &self.acks_tx,
                self.table,
                batch.source.clone(),
                epoch,
                next_offset,
            );
            let ack = match (&self.transactions, &*batch.source) {
                (Some(link), SourceInfo::Kafka { topic, partition }) => {
                    batch.cut_ack = Some(self.cut_ack(link, &batch, epoch, next_offset));
                    link.ack(topic, *partition, epoch, next_offset, ack)
                }
                _ => ack,
            };
            batch.acks.push(ack);
            self.send(batch).await?;
        }
        Ok(())
    }

    /// `--exactly-once`: the ack of a batch's first records only (a
    /// rejection stopped the run after them): the partition's next offset
    /// is then the first record's not kept, so the last transaction
    /// carries the offsets of exactly what it output.
    fn cut_ack(&self, link: &Link, batch: &RawBatch, epoch: u64, next_offset: i64) -> CutAck {
        let offsets: Vec<i64> = batch.records().map(|r| r.location.pos as i64).collect();
        let (acks, table, link) = (self.acks_tx.clone(), self.table.clone(), link.clone());
        let source = batch.source.clone();
        CutAck::new(move |kept| {
            let next = offsets.get(kept).copied().unwrap_or(next_offset);
            let ack = ack_for(&acks, &table, source.clone(), epoch, next);
            match &*source {
                SourceInfo::Kafka { topic, partition } => {
                    link.ack(topic, *partition, epoch, next, ack)
                }
                _ => ack,
            }
        })
    }

    /// Sends one batch, waiting while the pipeline is full; stores the
    /// offsets of batches written meanwhile. The send is never dropped
    /// half-way (it is polled to completion), so no batch is lost.
    async fn send(&mut self, batch: RawBatch) -> Result<(), Closed> {
        while let Ok(delivered) = self.acks.try_recv() {
            store_delivered(self.consumer, self.table, delivered);
        }
        let send = self.out.send(batch);
        tokio::pin!(send);
        loop {
            tokio::select! {
                biased;
                sent = &mut send => return sent,
                Some(delivered) = self.acks.recv() => {
                    store_delivered(self.consumer, self.table, delivered);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_ack_reports_its_partition_epoch_and_next_offset_once_fired() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let source = Arc::new(SourceInfo::Kafka {
            topic: "t".into(),
            partition: 2,
        });
        let table = PartitionTable::default();
        let epoch = table.lock().assign([("t", 2)]);
        table.lock().read("t", 2, epoch, 17);
        let ack = ack_for(&tx, &table, source.clone(), epoch, 17);
        assert!(rx.try_recv().is_err(), "nothing before the sink wrote it");
        let mut acks = crate::ack::Acks::none();
        acks.push(ack);
        acks.deliver();
        let delivered = rx.try_recv().expect("an ack once delivered");
        assert!(Arc::ptr_eq(&delivered.source, &source));
        assert_eq!((delivered.epoch, delivered.next_offset), (epoch, 17));
        assert!(rx.try_recv().is_err(), "exactly one");
        assert!(
            table.wait_written(&[("t".into(), 2)], std::time::Duration::ZERO),
            "the table knows it written without the read loop"
        );
    }

    #[test]
    fn an_ack_fired_after_the_source_ended_is_harmless() {
        let (tx, rx) = mpsc::unbounded_channel::<Delivered>();
        let source = Arc::new(SourceInfo::Kafka {
            topic: "t".into(),
            partition: 0,
        });
        let ack = ack_for(&tx, &PartitionTable::default(), source, 1, 1);
        drop(rx);
        let mut acks = crate::ack::Acks::none();
        acks.push(ack);
        acks.deliver();
    }
}
