//! The `--dead-letter` file: one JSON line per rejected record, gathered
//! in memory and written off the tokio workers.
//!
//! A rejection only appends its line to a pending buffer (a short lock).
//! The buffer is written by [`DeadLetter::flush`], which blocks, and so
//! runs on the blocking pool ([`super::Rejects::write_out`]) or, when the
//! buffer is full, under [`cpu::blocking`] in the rejecting task: that task
//! waits for the write (backpressure, so a flood of rejections holds
//! bounded memory) while the worker's other tasks move to another thread.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use crate::cpu;
use crate::error::{Error, Result};
use crate::json;
use crate::record::Location;

/// Pending bytes from which the rejecting task writes them out itself
/// before it goes on.
const MAX_PENDING: usize = 64 * 1024;

/// The open dead-letter file and the lines not yet written to it.
#[derive(Debug)]
pub(super) struct DeadLetter {
    path: PathBuf,
    /// Lines not yet handed to the OS, in order.
    pending: Mutex<Vec<u8>>,
    /// Locked for a whole write, before `pending` is taken, so that lines
    /// reach the file in the order they were rejected. Only ever locked
    /// off the workers (in [`DeadLetter::flush`]).
    file: Mutex<File>,
}

impl DeadLetter {
    /// Writes to `file`, opened at `path` (named in errors).
    pub(super) fn new(path: PathBuf, file: File) -> Self {
        DeadLetter {
            path,
            pending: Mutex::new(Vec::new()),
            file: Mutex::new(file),
        }
    }

    /// Adds one JSON line, `{"origin":{...},"reason":"...","raw":"..."}`
    /// plus `raw_hex` with the exact bytes when they are not UTF-8. Once
    /// the pending lines pass [`MAX_PENDING`], writes them before it
    /// returns, off the worker.
    pub(super) fn write(&self, location: Location<'_>, raw: &[u8], reason: &str) -> Result<()> {
        let mut line = Vec::with_capacity(raw.len() + reason.len() + 96);
        line.extend_from_slice(b"{\"origin\":");
        location.write_json(&mut line);
        line.extend_from_slice(b",\"reason\":");
        json::write_str(&mut line, reason.as_bytes());
        line.extend_from_slice(b",\"raw\":");
        json::write_lossy_str(&mut line, raw);
        if std::str::from_utf8(raw).is_err() {
            line.extend_from_slice(b",\"raw_hex\":\"");
            for byte in raw {
                line.extend_from_slice(format!("{byte:02x}").as_bytes());
            }
            line.push(b'"');
        }
        line.extend_from_slice(b"}\n");
        let full = {
            let mut pending = lock(&self.pending);
            pending.extend_from_slice(&line);
            pending.len() >= MAX_PENDING
        };
        if full {
            cpu::blocking(|| self.flush())?;
        }
        Ok(())
    }

    /// True when lines wait to be written.
    pub(super) fn has_pending(&self) -> bool {
        !lock(&self.pending).is_empty()
    }

    /// Writes every pending line to the file. Blocks: never on a worker.
    pub(super) fn flush(&self) -> Result<()> {
        let mut file = lock(&self.file);
        let lines = std::mem::take(&mut *lock(&self.pending));
        super::whole_writes::whole(|| file.write_all(&lines)).map_err(|source| Error::Output {
            path: self.path.clone(),
            source,
        })
    }

    /// Bytes waiting to be written.
    #[cfg(test)]
    fn pending_len(&self) -> usize {
        lock(&self.pending).len()
    }
}

/// Locks `mutex`; a panic elsewhere while it was held left the bytes as
/// they were, which are still worth writing.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SourceInfo;
    use std::io::Read;
    use std::sync::Arc;
    use std::time::Duration;

    fn at(pos: u64) -> (SourceInfo, u64) {
        let source = SourceInfo::File {
            path: "in.txt".into(),
        };
        (source, pos)
    }

    /// The rejecting task writes its full buffer itself, in order, and
    /// keeps no more than one line beyond the limit pending.
    #[test]
    fn a_flood_of_rejections_is_written_in_order_with_bounded_memory() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let dead = DeadLetter::new(file.path().into(), file.reopen().unwrap());
        let raw = vec![b'x'; 1000];
        for pos in 1..=1000 {
            let (source, pos) = at(pos);
            let location = Location {
                source: &source,
                pos,
            };
            dead.write(location, &raw, "bad").unwrap();
            assert!(
                dead.pending_len() < MAX_PENDING,
                "the buffer grows unbounded"
            );
        }
        dead.flush().unwrap();
        let mut text = String::new();
        file.reopen().unwrap().read_to_string(&mut text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1000);
        for (line, pos) in lines.iter().zip(1..) {
            assert!(
                line.starts_with(&format!(
                    "{{\"origin\":{{\"path\":\"in.txt\",\"line\":{pos}}}"
                )),
                "{line}"
            );
        }
    }

    /// A write that blocks (a named pipe nobody reads yet) holds up no
    /// other task, even on a runtime of one worker: the task that unblocks
    /// it still runs.
    #[test]
    fn a_blocked_write_holds_up_no_other_task() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("dead.fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        // Open both ends: read-write for the writer so its open does not
        // wait, and a reader that only reads once told to.
        let writer = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        let mut reader = File::open(&fifo).unwrap();
        let (start_reading, told) = std::sync::mpsc::channel::<()>();
        let drained = std::thread::spawn(move || {
            told.recv().unwrap();
            let mut all = Vec::new();
            let mut buf = vec![0; 64 * 1024];
            while !all.ends_with(b"\"line\":400},\"reason\":\"bad\",\"raw\":\"\"}\n") {
                let n = reader.read(&mut buf).unwrap();
                all.extend_from_slice(&buf[..n]);
            }
            all.iter().filter(|&&b| b == b'\n').count()
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let dead = Arc::new(DeadLetter::new(fifo.clone(), writer));
        let (done, finished) = std::sync::mpsc::channel();
        // 400 lines of 1 KB: past the pipe's 64 KiB, so a write blocks
        // until the reader reads.
        runtime.spawn(async move {
            let raw = vec![b'y'; 1000];
            for pos in 1..=400 {
                let (source, pos) = at(pos);
                let location = Location {
                    source: &source,
                    pos,
                };
                let raw = if pos == 400 { &b""[..] } else { &raw };
                dead.write(location, raw, "bad").unwrap();
            }
            cpu::blocking(|| dead.flush()).unwrap();
            done.send(()).unwrap();
        });
        // Queued behind the flood on the one worker: it runs only if the
        // blocked write left the worker.
        runtime.spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            start_reading.send(()).unwrap();
        });
        if finished.recv_timeout(Duration::from_secs(20)).is_err() {
            // Dropping the runtime would wait for the blocked worker.
            runtime.shutdown_background();
            panic!("a blocked dead-letter write held up the worker");
        }
        assert_eq!(drained.join().unwrap(), 400);
    }
}
