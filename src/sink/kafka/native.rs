//! librdkafka's batch call (`rd_kafka_produce_batch`), which rdkafka does
//! not wrap. rdkafka's `send` names the topic by a string, so each message
//! costs a `CString`, a topic lookup under the client's lock, a topic lock
//! and two clock reads; the batch call takes a topic handle and does those
//! once per batch (measured: see the commit that brought it in).
//!
//! Every message of a batch carries the batch's [`InFlight`] as its opaque
//! (see `delivery`).

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use rdkafka::bindings as rd;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;

use super::delivery::InFlight;
use super::poller::Client;

/// `RD_KAFKA_PARTITION_UA` (a macro, so not in the bindings): let the
/// configured partitioner pick each message's partition.
pub(super) const ANY_PARTITION: i32 = -1;

/// Most messages of one librdkafka call: bounds the call's array (and
/// `--batch-records` is a `u64`, the call's count an `i32`).
const MAX_CALL: usize = 8192;

/// One message to enqueue: its payload must outlive its delivery report
/// (librdkafka reads it in place); the key is copied.
pub(super) struct Message<'a> {
    pub payload: &'a [u8],
    pub key: Option<&'a [u8]>,
}

/// The producer's handle on one topic.
pub(super) struct TopicHandle {
    raw: NonNull<rd::rd_kafka_topic_t>,
    /// Keeps the client alive while the handle is (a topic handle must be
    /// destroyed before its client; fields drop in order).
    _producer: Arc<Client>,
}

// SAFETY: librdkafka's topic handles are thread-safe (its own locks).
unsafe impl Send for TopicHandle {}
unsafe impl Sync for TopicHandle {}

impl TopicHandle {
    /// A handle on `topic`, with the producer's default topic settings.
    pub(super) fn new(producer: Arc<Client>, topic: &str) -> Result<Self, String> {
        let name = CString::new(topic).map_err(|_| format!("topic `{topic}` contains a NUL"))?;
        // SAFETY: a live client and a NUL-terminated name; a null
        // configuration means the client's defaults.
        let raw = unsafe {
            rd::rd_kafka_topic_new(
                producer.client().native_ptr(),
                name.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        let raw = NonNull::new(raw).ok_or_else(|| format!("cannot open topic `{topic}`"))?;
        Ok(TopicHandle {
            raw,
            _producer: producer,
        })
    }

    /// Enqueues `messages` in order to `partition` (or [`ANY_PARTITION`]),
    /// each with `in_flight` as its opaque. After a full queue librdkafka
    /// refuses every later message of the call too, so the order holds
    /// when the rest is sent again; after another refusal it goes on, and
    /// the calls stop there.
    pub(super) fn produce(
        &self,
        messages: &[Message<'_>],
        in_flight: InFlight,
        partition: i32,
    ) -> Produced {
        let mut done = Produced {
            sent: 0,
            enqueued: 0,
            refused: None,
        };
        for chunk in messages.chunks(MAX_CALL) {
            let call = self.produce_call(chunk, in_flight, partition);
            done.enqueued += call.enqueued;
            if call.refused.is_some() {
                done.sent += call.sent;
                done.refused = call.refused;
                return done;
            }
            done.sent += chunk.len();
        }
        done
    }

    /// One `rd_kafka_produce_batch` call, for at most [`MAX_CALL`] messages.
    fn produce_call(
        &self,
        messages: &[Message<'_>],
        in_flight: InFlight,
        partition: i32,
    ) -> Produced {
        let mut native: Vec<rd::rd_kafka_message_t> = messages
            .iter()
            .map(|message| {
                let (key, key_len) = match message.key {
                    Some(key) => (key.as_ptr() as *mut _, key.len()),
                    None => (std::ptr::null_mut(), 0),
                };
                rd::rd_kafka_message_t {
                    err: rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
                    rkt: std::ptr::null_mut(),
                    partition,
                    payload: message.payload.as_ptr() as *mut _,
                    len: message.payload.len(),
                    key,
                    key_len,
                    offset: 0,
                    _private: in_flight.as_ptr(),
                }
            })
            .collect();
        let count = i32::try_from(native.len()).expect("at most MAX_CALL messages");
        // SAFETY: the handle is live; every pointer is valid for the call.
        // Without RD_KAFKA_MSG_F_COPY librdkafka keeps the payload pointers
        // (not the keys: it always copies those): the caller keeps the
        // payloads alive until each message's report (`BatchDelivery`).
        unsafe {
            rd::rd_kafka_produce_batch(self.raw.as_ptr(), partition, 0, native.as_mut_ptr(), count);
        }
        let taken = |message: &rd::rd_kafka_message_t| {
            message.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        };
        let enqueued = native.iter().filter(|message| taken(message)).count();
        match native.iter().position(|message| !taken(message)) {
            Some(index) => Produced {
                sent: index,
                enqueued,
                refused: Some(RDKafkaErrorCode::from(native[index].err)),
            },
            None => Produced {
                sent: messages.len(),
                enqueued,
                refused: None,
            },
        }
    }
}

/// What [`TopicHandle::produce`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Produced {
    /// Messages enqueued before the first refused one (all, if none was).
    pub sent: usize,
    /// Messages enqueued in all (some after a refused one, unless the
    /// queue was full): each will be reported.
    pub enqueued: usize,
    /// Why the first refused message was.
    pub refused: Option<RDKafkaErrorCode>,
}

impl Drop for TopicHandle {
    fn drop(&mut self) {
        // SAFETY: made by rd_kafka_topic_new, destroyed once, before the
        // client (`_producer` drops after this). Messages in flight keep
        // their own reference on the topic.
        unsafe { rd::rd_kafka_topic_destroy(self.raw.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::super::delivery::BatchDelivery;
    use super::super::delivery::DeliveryContext;
    use super::*;
    use crate::kafka::{ClientLog, KafkaConfig};
    use std::sync::atomic::Ordering;

    #[test]
    fn a_full_queue_stops_the_batch_and_every_report_gives_back_the_reference() {
        // No broker: messages stay in the queue, which holds 8194.
        let config = KafkaConfig {
            brokers: "127.0.0.1:1".into(),
            settings: vec![("queue.buffering.max.messages".into(), "8194".into())],
        };
        let producer: Client = config
            .client_config(&[])
            .create_with_context(DeliveryContext::new(ClientLog::new("sink", "127.0.0.1:1")))
            .unwrap();
        let handle = TopicHandle::new(Arc::new(producer), "t").unwrap();
        let delivery = BatchDelivery::new(MAX_CALL + 5);
        let in_flight = InFlight::new(&delivery);
        let payloads: Vec<Vec<u8>> = (0..MAX_CALL + 5)
            .map(|i| format!("{{\"n\":{i}}}").into_bytes())
            .collect();
        let messages: Vec<Message<'_>> = payloads
            .iter()
            .map(|payload| Message {
                payload,
                key: Some(b"k"),
            })
            .collect();
        // Across two calls: the first call's 8192, then 2 of the second's 5.
        let full = Some(RDKafkaErrorCode::QueueFull);
        let done = handle.produce(&messages, in_flight, ANY_PARTITION);
        assert_eq!((done.sent, done.enqueued, done.refused), (8194, 8194, full));
        let done = handle.produce(&messages[8194..], in_flight, ANY_PARTITION);
        assert_eq!((done.sent, done.enqueued, done.refused), (0, 0, full));
        // One reference for all the messages in flight.
        assert_eq!(Arc::strong_count(&delivery), 2);
        in_flight.never_sent(5);
        assert_eq!(Arc::strong_count(&delivery), 2);
        // The producer's drop purges the queue: each purged message is
        // reported (failed), the last report gives the reference back.
        drop(handle);
        assert_eq!(Arc::strong_count(&delivery), 1);
        assert_eq!(delivery.remaining.load(Ordering::Acquire), MAX_CALL + 5);
    }
}
