//! Long CPU work on input that the outside world controls (a header of a
//! million names, a row of many megabytes) runs beside the runtime's
//! workers, not on one: on a worker it would stall every task queued
//! there (other connections, the signal watcher) until it ends.

use tokio::runtime::{Handle, RuntimeFlavor};

/// A header row of this many bytes or more is built off the workers.
pub const HEADER_BYTES: usize = 16 * 1024;

/// A row (or a batch) of this many bytes or more is split or decoded off
/// the workers. Far above a usual batch, so the hot path pays nothing.
pub const ROW_BYTES: usize = 1024 * 1024;

/// Runs `work` on input of `bytes` bytes: in place when small, else with
/// [`tokio::task::block_in_place`], which hands this worker's other tasks
/// to another thread first. In place too off a multi-threaded runtime,
/// where that is not possible (a current-thread runtime in tests).
pub fn off_worker<R>(bytes: usize, threshold: usize, work: impl FnOnce() -> R) -> R {
    let multi_thread = Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread);
    if bytes >= threshold && multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}
