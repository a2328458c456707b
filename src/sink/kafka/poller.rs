//! The producer's polling thread: it serves librdkafka's events (delivery
//! reports, logs, errors, statistics) to [`DeliveryContext`]. It polls the
//! main queue itself rather than through rdkafka's `poll`, which hands
//! delivery reports over one message at a time (a call, an event
//! reference and a clock read each): here a report event's messages are
//! counted in runs of one batch ([`DeliveryContext::report`]). rdkafka's
//! `ThreadedProducer` also polled in 100 ms slices and its drop waited for
//! the slice under way, up to 100 ms at the end of every run; this thread
//! polls in [`SLICE`]s.

use std::ffi::CStr;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::DeliveryContext;

/// The sink's producer, shared by the sink, its topic handle and the
/// polling thread.
pub(super) type Client = BaseProducer<DeliveryContext>;

/// How long one poll waits for events: the longest the thread takes to
/// notice it should stop. Idle, the thread wakes this often.
const SLICE: Duration = Duration::from_millis(10);

/// Messages of a delivery report taken from librdkafka at a time.
const REPORTS_AT_ONCE: usize = 1024;

/// Polls a producer on a thread of its own until dropped.
pub(super) struct Poller {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    /// Starts polling `producer`.
    pub(super) fn start(producer: Arc<Client>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("kafka-sink-poll".into())
            .spawn(move || {
                let queue = MainQueue::of(&producer);
                let mut reports = Vec::with_capacity(REPORTS_AT_ONCE);
                while !stopped.load(Ordering::Acquire) {
                    queue.serve_one(producer.context(), &mut reports);
                }
            })?;
        Ok(Poller {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Poller {
    /// Stops the thread and waits for it (at most one [`SLICE`]): blocks,
    /// so drop it off the runtime's workers.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A handle on a producer's main queue, where its events arrive.
struct MainQueue {
    raw: NonNull<rd::rd_kafka_queue_t>,
    /// The client outlives its queue handle (fields drop in order).
    _producer: Arc<Client>,
}

impl MainQueue {
    fn of(producer: &Arc<Client>) -> Self {
        // SAFETY: a live client; librdkafka always has a main queue.
        let raw = unsafe { rd::rd_kafka_queue_get_main(producer.client().native_ptr()) };
        MainQueue {
            raw: NonNull::new(raw).expect("librdkafka's main queue"),
            _producer: producer.clone(),
        }
    }

    /// Waits up to [`SLICE`] for one event and serves it.
    fn serve_one(
        &self,
        context: &DeliveryContext,
        reports: &mut Vec<*const rd::rd_kafka_message_t>,
    ) {
        let timeout = SLICE.as_millis() as i32;
        // SAFETY: a live queue; the event is ours until destroyed below.
        let event = unsafe { rd::rd_kafka_queue_poll(self.raw.as_ptr(), timeout) };
        if event.is_null() {
            return;
        }
        // SAFETY: a live event, of the type asked for each time.
        unsafe {
            match rd::rd_kafka_event_type(event) {
                rd::RD_KAFKA_EVENT_DR => serve_reports(event, context, reports),
                rd::RD_KAFKA_EVENT_LOG => serve_log(event, context),
                rd::RD_KAFKA_EVENT_ERROR => {
                    let code = RDKafkaErrorCode::from(rd::rd_kafka_event_error(event));
                    let reason = text(rd::rd_kafka_event_error_string(event));
                    context.error(KafkaError::Global(code), reason.trim());
                }
                rd::RD_KAFKA_EVENT_STATS => {
                    context.stats_raw(CStr::from_ptr(rd::rd_kafka_event_stats(event)).to_bytes());
                }
                // A token refresh: this producer has no token callback, as
                // with rdkafka's poll, which drops the event too.
                _ => {}
            }
            rd::rd_kafka_event_destroy(event);
        }
    }
}

impl Drop for MainQueue {
    fn drop(&mut self) {
        // SAFETY: from rd_kafka_queue_get_main, destroyed once.
        unsafe { rd::rd_kafka_queue_destroy(self.raw.as_ptr()) }
    }
}

// SAFETY: librdkafka's queues are thread-safe; the handle is used by the
// polling thread only.
unsafe impl Send for MainQueue {}

/// Counts a delivery report event's messages, in runs of one batch and
/// one outcome.
///
/// # Safety
/// `event` is a live delivery report event of the sink's producer.
unsafe fn serve_reports(
    event: *mut rd::rd_kafka_event_t,
    context: &DeliveryContext,
    reports: &mut Vec<*const rd::rd_kafka_message_t>,
) {
    let outcome = |message: &rd::rd_kafka_message_t| {
        (message.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
            .then(|| RDKafkaErrorCode::from(message.err))
    };
    let mut run: Option<(*mut std::ffi::c_void, Option<RDKafkaErrorCode>, usize)> = None;
    loop {
        reports.clear();
        // SAFETY: room for REPORTS_AT_ONCE pointers; librdkafka fills
        // `taken` of them.
        let taken = unsafe {
            rd::rd_kafka_event_message_array(event, reports.as_mut_ptr(), REPORTS_AT_ONCE)
        };
        if taken == 0 {
            break;
        }
        unsafe { reports.set_len(taken) };
        for &message in reports.iter() {
            // SAFETY: the event's messages live until the event does.
            let message = unsafe { &*message };
            let (opaque, error) = (message._private, outcome(message));
            match &mut run {
                Some((at, failed, count)) if *at == opaque && *failed == error => *count += 1,
                _ => {
                    if let Some((at, failed, count)) = run.replace((opaque, error, 1)) {
                        // SAFETY: the sink's messages carry InFlight opaques.
                        unsafe { context.report(at, count, failed) };
                    }
                }
            }
        }
    }
    if let Some((at, failed, count)) = run {
        // SAFETY: as above.
        unsafe { context.report(at, count, failed) };
    }
}

/// Hands a log event to the context, as rdkafka's poll does.
///
/// # Safety
/// `event` is a live log event.
unsafe fn serve_log(event: *mut rd::rd_kafka_event_t, context: &DeliveryContext) {
    let (mut facility, mut message, mut level) = (std::ptr::null(), std::ptr::null(), 0);
    // SAFETY: the strings live until the event does.
    if unsafe { rd::rd_kafka_event_log(event, &mut facility, &mut message, &mut level) } == 0 {
        let (facility, message) = unsafe { (text(facility), text(message)) };
        context.log(log_level(level), facility.trim(), message.trim());
    }
}

/// librdkafka's syslog level as rdkafka's enum.
fn log_level(level: i32) -> RDKafkaLogLevel {
    match level {
        i32::MIN..=0 => RDKafkaLogLevel::Emerg,
        1 => RDKafkaLogLevel::Alert,
        2 => RDKafkaLogLevel::Critical,
        3 => RDKafkaLogLevel::Error,
        4 => RDKafkaLogLevel::Warning,
        5 => RDKafkaLogLevel::Notice,
        6 => RDKafkaLogLevel::Info,
        _ => RDKafkaLogLevel::Debug,
    }
}

/// A C string of an event, as text.
///
/// # Safety
/// `text` is null or a NUL-terminated string alive for `'a`.
unsafe fn text<'a>(text: *const std::ffi::c_char) -> std::borrow::Cow<'a, str> {
    if text.is_null() {
        return "".into();
    }
    // SAFETY: as the caller promised.
    unsafe { CStr::from_ptr(text) }.to_string_lossy()
}
