//! A second Ctrl-C exits at once, but never in the middle of a write to
//! an output: a write of whole records is cut by the process's exit (the
//! kernel ends a write to a pipe, or to a file between two pages, when the
//! writing thread is killed), which left a torn last record in the
//! output. Every write of records (the output, the dead-letter file) runs
//! under one lock; the exit takes it first ([`stop_writes`]), so what is written is whole
//! records, and the records not written were never acknowledged.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Held by a write of records in progress, and by the exit from then on.
static WRITES: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    // The lock guards no data: a write that panicked left nothing to mend.
    WRITES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `write`, one write of whole records to an output, which an exit
/// at once ([`stop_writes`]) waits for. Blocks: never on a worker.
pub(crate) fn whole<T>(write: impl FnOnce() -> T) -> T {
    let _writing = lock();
    write()
}

/// Waits for the write of records in progress, if any, and keeps any
/// other from starting until the process exits (an exit at once, after a
/// second signal): true once no write is in progress; false if the one in
/// progress did not end within `longest` (a pipe whose reader stopped
/// reading), which exiting now cuts after all.
pub fn stop_writes(longest: Duration) -> bool {
    let (taken, held) = std::sync::mpsc::channel();
    // The lock is taken on a thread of its own, so the wait can end; that
    // thread keeps it until the process is gone.
    std::thread::spawn(move || {
        let _kept = lock();
        let _ = taken.send(());
        loop {
            std::thread::park();
        }
    });
    held.recv_timeout(longest).is_ok()
}
