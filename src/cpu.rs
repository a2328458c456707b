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

/// Runs `work` on input of `bytes` bytes: in place when small, else
/// through [`blocking`].
pub fn off_worker<R>(bytes: usize, threshold: usize, work: impl FnOnce() -> R) -> R {
    if bytes >= threshold {
        blocking(work)
    } else {
        work()
    }
}

/// Runs `work`, which may block or run long, so that it holds up no tokio
/// worker: on a worker of a multi-thread runtime, the worker's other tasks
/// move to a new thread first ([`tokio::task::block_in_place`]); elsewhere
/// (a blocking thread, a current-thread runtime as in tests, no runtime)
/// it just runs.
pub fn blocking<R>(work: impl FnOnce() -> R) -> R {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}
