//! The producer's polling thread: it serves librdkafka's events (delivery
//! reports, logs, errors) to [`DeliveryContext`]. rdkafka's
//! `ThreadedProducer` polls in 100 ms slices and its drop waits for the
//! slice under way to end, which added up to 100 ms (50 on average) to the
//! end of every run; this thread polls in [`SLICE`]s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::producer::BaseProducer;

use super::DeliveryContext;

/// The sink's producer, shared by the sink, its topic handle and the
/// polling thread.
pub(super) type Client = BaseProducer<DeliveryContext>;

/// How long one poll waits for events: the longest the thread takes to
/// notice it should stop. Idle, the thread wakes this often.
const SLICE: Duration = Duration::from_millis(10);

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
                while !stopped.load(Ordering::Acquire) {
                    producer.poll(SLICE);
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
