//! Delivery reports, counted per batch. Every message of a batch carries
//! the same opaque, a pointer to the batch's [`BatchDelivery`], kept alive
//! by one reference that the batch's reports give back (the last one
//! drops it): no reference count per message. It also holds the batch's
//! bytes, which librdkafka sends from where they are, without a copy. The polling thread
//! ([`super::poller`]) hands a delivery report event's messages over in
//! runs of one batch, one count per run; rdkafka's own poll (in `flush`,
//! and in the producer's drop) hands them over one by one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Statistics;
use tokio::sync::Notify;

use crate::kafka::{self, client_context_via_log, ClientLog};

/// How many messages of one batch the broker has yet to confirm.
#[derive(Debug)]
pub(super) struct BatchDelivery {
    /// Messages not confirmed yet: the batch is acknowledged at 0.
    pub remaining: AtomicUsize,
    /// Messages whose report (a confirmation or a failure) has not come:
    /// at 0, the reference their opaque stood for is dropped.
    unreported: AtomicUsize,
    /// The batch's NDJSON, which the messages' values point into:
    /// librdkafka does not copy them, so they live as long as this.
    values: OnceLock<Vec<u8>>,
}

impl BatchDelivery {
    /// A batch of `records` messages, none sent yet.
    pub(super) fn new(records: usize) -> Arc<Self> {
        Arc::new(BatchDelivery {
            remaining: AtomicUsize::new(records),
            unreported: AtomicUsize::new(records),
            values: OnceLock::new(),
        })
    }

    /// Keeps the buffer the batch's messages point into until their last
    /// report (given once, after the batch is enqueued or failed).
    pub(super) fn keep(&self, values: Vec<u8>) {
        let _ = self.values.set(values);
    }
}

/// The opaque of every message of one batch: a reference to its
/// [`BatchDelivery`] that the batch's reports give back.
#[derive(Clone, Copy)]
pub(super) struct InFlight(*const BatchDelivery);

// SAFETY: a pointer to a `Sync` value, shared by the producing task and the
// polling thread; it stays valid until the last report (see `reported`).
unsafe impl Send for InFlight {}
unsafe impl Sync for InFlight {}

impl InFlight {
    /// Takes a reference to `delivery` for its batch's messages, each of
    /// which must then be reported once ([`DeliveryContext`], or
    /// [`InFlight::never_sent`]).
    pub(super) fn new(delivery: &Arc<BatchDelivery>) -> Self {
        InFlight(Arc::into_raw(delivery.clone()))
    }

    /// The opaque given to librdkafka.
    pub(super) fn as_ptr(self) -> *mut std::ffi::c_void {
        self.0 as *mut _
    }

    /// Gives back `count` messages that will never be sent (the run
    /// failed while enqueueing them).
    pub(super) fn never_sent(self, count: usize) {
        // SAFETY: `count` messages of this batch, not reported.
        unsafe { reported(self.0, count) }
    }
}

/// Notes that `count` messages of the batch at `batch` were reported, and
/// drops the batch's in-flight reference after its last.
///
/// # Safety
/// `batch` comes from [`InFlight::new`], and these `count` messages were
/// not reported before.
unsafe fn reported(batch: *const BatchDelivery, count: usize) {
    // SAFETY: the in-flight reference is alive until its last report.
    if unsafe { &*batch }
        .unreported
        .fetch_sub(count, Ordering::AcqRel)
        == count
    {
        drop(unsafe { Arc::from_raw(batch) });
    }
}

/// The producer's context: logs, and delivery reports counted per batch.
pub(super) struct DeliveryContext {
    pub log: ClientLog,
    /// Woken when a batch is fully delivered or a delivery failed; the
    /// sink's write loop waits on it.
    pub completed: Notify,
    /// The first delivery failure.
    failure: Mutex<Option<String>>,
    /// Messages the broker confirmed, all batches together.
    pub delivered: AtomicUsize,
}

impl DeliveryContext {
    pub(super) fn new(log: ClientLog) -> Self {
        DeliveryContext {
            log,
            completed: Notify::new(),
            failure: Mutex::new(None),
            delivered: AtomicUsize::new(0),
        }
    }

    fn on_stats(&self, _statistics: &Statistics) {}

    /// The first delivery failure, if any.
    pub(super) fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Counts the reports of `count` messages of one batch (`opaque`), all
    /// confirmed, or all failed with `error`.
    ///
    /// # Safety
    /// `opaque` is an [`InFlight`]'s pointer, and the messages were not
    /// reported before.
    pub(super) unsafe fn report(
        &self,
        opaque: *mut std::ffi::c_void,
        count: usize,
        error: Option<RDKafkaErrorCode>,
    ) {
        let batch = opaque as *const BatchDelivery;
        match error {
            None => {
                if self.log.is_down() {
                    self.log.mark_up();
                }
                self.delivered.fetch_add(count, Ordering::AcqRel);
                // SAFETY: alive until `reported` below.
                if unsafe { &*batch }
                    .remaining
                    .fetch_sub(count, Ordering::AcqRel)
                    == count
                {
                    self.completed.notify_one();
                }
            }
            Some(code) => {
                let mut failure = self
                    .failure
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if failure.is_none() {
                    *failure = Some(kafka::describe(&KafkaError::MessageProduction(code)));
                }
                drop(failure);
                self.completed.notify_one();
            }
        }
        // SAFETY: as the caller promised.
        unsafe { reported(batch, count) }
    }
}

client_context_via_log!(DeliveryContext);

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    /// A report that rdkafka's own poll hands over.
    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let error = match result {
            Ok(_) => None,
            Err((error, _)) => Some(kafka::error_code(error).unwrap_or(RDKafkaErrorCode::Fail)),
        };
        // SAFETY: every message's opaque is its batch's `InFlight`, and
        // librdkafka reports each message once.
        unsafe { self.report(opaque as *mut _, 1, error) }
    }
}
