//! Where the records a file reader put in batches end in the file, and
//! the acks that move its checkpoint there once the sink has written them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::checkpoint::Position;
use super::FileCheckpoint;
use crate::ack::{Ack, CutAck};
use crate::record::RawBatch;

/// See the module documentation.
pub(super) struct Ends {
    /// The last one's end, and how many lines that is: what a batch's
    /// ack delivers.
    pub last: Position,
    /// Per record of the batch being filled, its line and where it ends:
    /// what the ack of a batch that `--limit` cuts short delivers.
    each: Vec<(u64, Position)>,
}

impl Ends {
    /// Before any record, reading from `start`.
    pub fn new(start: Position) -> Ends {
        Ends {
            last: start,
            each: Vec::new(),
        }
    }

    /// The record on line `line`, the last put in a batch, ends at `end`.
    pub fn note(&mut self, line: u64, end: Position) {
        self.last = end;
        self.each.push((line, end));
    }

    /// Takes `noted`, the (line, end) of records put in a batch after the
    /// ones noted before, in order: one lock for many records.
    pub fn note_all(&mut self, noted: &mut Vec<(u64, Position)>) {
        if let Some(&(_, end)) = noted.last() {
            self.last = end;
        }
        self.each.append(noted);
    }

    /// Gives `batch`, about to be sent, its acks: one that moves
    /// `checkpoint` to its last record (`last_line`), and the one for
    /// when `--limit` keeps only its first records.
    pub fn ack(&mut self, batch: &mut RawBatch, checkpoint: &Arc<FileCheckpoint>, last_line: u64) {
        let room = Vec::with_capacity(self.each.len());
        let each = std::mem::replace(&mut self.each, room);
        batch
            .acks
            .push(deliver(checkpoint.clone(), last_line, self.last));
        // Only when each record noted its end (the parallel CSV reader's
        // batches do not).
        if each.len() == batch.len() {
            let checkpoint = checkpoint.clone();
            batch.cut_ack = Some(CutAck::new(move |kept| {
                match each.get(kept.wrapping_sub(1)) {
                    Some(&(line, end)) => deliver(checkpoint, line, end),
                    None => Ack::new(|| {}),
                }
            }));
        }
    }
}

/// The ack that moves `checkpoint` to `end`, line `last_line` delivered.
fn deliver(checkpoint: Arc<FileCheckpoint>, last_line: u64, end: Position) -> Ack {
    Ack::new(move || {
        checkpoint
            .delivered_line
            .fetch_max(last_line, Ordering::AcqRel);
        checkpoint.advance(end);
    })
}
