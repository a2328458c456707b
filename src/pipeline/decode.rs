//! The decode stage: raw records to JSON objects (through the processing
//! flags' [`Processor`], when one is set), rejected records to the
//! `--on-error` policy, and `--limit`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::PipelineConfig;
use crate::codec::{self, Decoded, NoStep, RecordStep};
use crate::cpu;
use crate::error::{Error, Result};
use crate::parts::{Rejects, Stats};
use crate::process::Processor;
use crate::record::{Batch, RawBatch};

/// Decodes every batch of `input` into `output`, in order. Ends when
/// `input` closes, when nobody reads `output`, or at `--limit` (then it
/// cancels `stop` so the source ends too). Blank JSON lines are counted in
/// `stats.skipped`: they are no records. What it throws away unhandled is
/// counted by the summary as read but not processed.
pub(super) async fn run(
    mut input: mpsc::Receiver<RawBatch>,
    output: mpsc::Sender<Batch>,
    config: PipelineConfig,
    rejects: Arc<Rejects>,
    stop: CancellationToken,
    stats: Arc<Stats>,
) -> Result<()> {
    let mut remaining = config.limit.unwrap_or(u64::MAX);
    // Output bytes per input byte of the last batch: sizing the next
    // batch's buffer from it saves regrowing (and copying) it.
    let mut growth = 2.0f64;
    let mut processor = config.process.clone().map(Processor::new);
    while let Some(mut raw) = input.recv().await {
        let estimate = (raw.byte_len() as f64 * growth * 1.1) as usize + raw.len() * 8;
        let mut out = Batch::with_capacity(raw.source.clone(), raw.len(), estimate);
        let raw_len = raw.len();
        // A batch holding a huge record takes long: off the workers.
        // One branch a batch: without processing flags, the plain loop.
        let (handled, counts, failure) = cpu::off_worker(raw.byte_len(), cpu::ROW_BYTES, || {
            match processor.as_mut() {
                Some(processor) => {
                    decode_batch(&raw, &config, &rejects, remaining, processor, &mut out)
                }
                None => decode_batch(&raw, &config, &rejects, remaining, &mut NoStep, &mut out),
            }
        });
        stats.skipped.fetch_add(counts.skipped, Ordering::Relaxed);
        if counts.filtered > 0 {
            stats.filtered.fetch_add(counts.filtered, Ordering::Relaxed);
        }
        if raw.byte_len() > 0 && !out.is_empty() {
            growth = out.as_ndjson().len() as f64 / raw.byte_len() as f64;
        }
        remaining -= out.len() as u64;
        let complete = failure.is_none() && handled == raw_len;
        if complete {
            // Every record of the raw batch is handled (written or
            // rejected), so its acks may fire once the sink writes.
            out.acks = raw.acks;
        } else if failure.is_none() && remaining == 0 {
            // Cut by `--limit`: only the records kept may be acknowledged
            // (a checkpoint ends right after the last one written).
            if let Some(cut) = raw.cut_ack.take() {
                out.acks.push(cut.kept(handled));
            }
        } else if failure.is_some() {
            // A rejection stopped the run: the records before the bad one
            // go on, acknowledged alone, so that what is committed (under
            // --exactly-once, in the same transaction) is what was output.
            let kept = keep_before_failure(&raw, handled, &mut out);
            if let Some(cut) = raw.cut_ack.take() {
                out.acks.push(cut.kept(kept));
            }
        }
        // The dead-letter lines of every record this batch's acks cover
        // (rejected here, or by the source before it sent the batch) reach
        // the OS before the batch goes on: its acks fire only after.
        if let Err(error) = rejects.write_out().await {
            return Err(failure.unwrap_or(error));
        }
        // An empty batch still travels when it carries acks, so they fire
        // in order behind the batches before it.
        if (!out.is_empty() || !out.acks.is_empty()) && output.send(out).await.is_err() {
            return Ok(());
        }
        if let Some(error) = failure {
            return Err(error);
        }
        if remaining == 0 {
            stop.cancel();
            return Ok(());
        }
    }
    Ok(())
}

/// After the record at `handled - 1` stopped the run: keeps in `out` only
/// the output of the records before those at its position (the rows of
/// one Kafka message share its offset, and a message is committed whole
/// or not at all); returns how many raw records that leaves handled.
fn keep_before_failure(raw: &RawBatch, handled: usize, out: &mut Batch) -> usize {
    let Some(bad) = raw.records().nth(handled.saturating_sub(1)) else {
        return 0;
    };
    let at = bad.location.pos;
    let kept = raw
        .records()
        .take(handled - 1)
        .take_while(|record| record.location.pos != at)
        .count();
    let written = out
        .iter()
        .take_while(|record| record.location.pos != at)
        .count();
    out.truncate(written);
    kept
}

/// Of a batch's records handled, those that were no record (blank lines)
/// and those `--filter` dropped.
#[derive(Debug, Default)]
struct Counts {
    skipped: u64,
    filtered: u64,
}

/// Decodes `raw` into `out` through `step`, at most `remaining` records
/// written; returns how many records it handled, how many of those were
/// skipped or dropped, and the rejection that stops the run, if any.
fn decode_batch<S: RecordStep>(
    raw: &RawBatch,
    config: &PipelineConfig,
    rejects: &Rejects,
    remaining: u64,
    step: &mut S,
    out: &mut Batch,
) -> (usize, Counts, Option<Error>) {
    let mut handled = 0;
    let mut counts = Counts::default();
    for record in raw.records() {
        if out.len() as u64 == remaining {
            break;
        }
        handled += 1;
        match codec::decode_into(&raw.content, &record, config.decode, step, out) {
            Ok(Decoded::Written) => {}
            Ok(Decoded::Blank) => counts.skipped += 1,
            Ok(Decoded::Dropped) => counts.filtered += 1,
            Err(reason) => {
                let rejected = rejects.reject(record.location, record.raw(), &reason);
                if let Err(error) = rejected {
                    return (handled, counts, Some(error));
                }
            }
        }
    }
    (handled, counts, None)
}
