//! The live progress line on a terminal (indicatif), redrawn a few times
//! a second from the run's [`Probes`]:
//! - a file (or several) of known size: bytes done of the total, a bar,
//!   the rate and the time left;
//! - stdin, a compressed file (its size says nothing of what it holds):
//!   bytes done and the rate;
//! - a stream (TCP, Kafka, `--follow`): records written, their rate, how
//!   full the pipeline's channels are, open connections (TCP) and the
//!   lag (Kafka).
//!
//! Log lines and `say!` lines hide it while they are written
//! ([`crate::stderr`]); [`Progress::clear`] removes it before the summary.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{
    BinaryBytes, HumanBytes, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle,
};
use tokio::task::JoinHandle;

use crate::metrics::Probes;

/// How often the figures are read and the line redrawn.
const TICK: Duration = Duration::from_millis(250);
/// The stream rate is taken over this many ticks (about a second).
const RATE_TICKS: usize = 5;

/// What the line shows, by input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Files whose sizes add up to this many bytes.
    Bytes(u64),
    /// Bytes of an input of unknown size (stdin, compressed).
    UnknownBytes,
    /// A stream that does not end by itself.
    Stream,
}

/// The line being drawn, and the task that redraws it.
pub struct Progress {
    bar: ProgressBar,
    task: JoinHandle<()>,
}

impl Progress {
    /// Starts drawing the line on stderr.
    pub fn start(shape: Shape, probes: Probes) -> Progress {
        let target = ProgressDrawTarget::stderr_with_hz(8);
        let bar = match shape {
            Shape::Bytes(total) => ProgressBar::with_draw_target(Some(total), target),
            Shape::UnknownBytes | Shape::Stream => ProgressBar::with_draw_target(None, target),
        };
        // One message, cut to the terminal's width: a line that wrapped
        // would leave its first rows behind at each redraw.
        let style = ProgressStyle::with_template("{wide_msg}").expect("a valid template");
        bar.set_style(style);
        // Drawn at once: a run shorter than a tick still shows it.
        bar.tick();
        crate::stderr::set_progress(Some(bar.clone()));
        let task = tokio::spawn(redraw(bar.clone(), shape, probes));
        Progress { bar, task }
    }

    /// Stops and erases the line (the summary follows in its place).
    pub fn clear(self) {
        self.task.abort();
        crate::stderr::set_progress(None);
        self.bar.finish_and_clear();
    }
}

/// Redraws `bar` every tick until aborted.
async fn redraw(bar: ProgressBar, shape: Shape, probes: Probes) {
    let mut written: VecDeque<(Instant, u64)> = VecDeque::with_capacity(RATE_TICKS + 1);
    let mut ticks = tokio::time::interval(TICK);
    loop {
        ticks.tick().await;
        let records = probes.records_written();
        match shape {
            Shape::Bytes(total) => {
                // The records' bytes plus a line end each: close to the
                // file's bytes (a quoted CSV row is counted a bit over).
                let done = probes.stats.bytes_read.load(Ordering::Relaxed) + probes.records_read();
                bar.set_position(done.min(total));
                bar.set_message(format!(
                    "{} of {} [{}] {}/s, ETA {:#} · {records} records",
                    HumanBytes(done.min(total)),
                    HumanBytes(total),
                    bar_text(done.min(total), total),
                    BinaryBytes(bar.per_sec() as u64),
                    HumanDuration(bar.eta()),
                ));
            }
            Shape::UnknownBytes => {
                let done = probes.stats.bytes_read.load(Ordering::Relaxed);
                bar.set_position(done);
                bar.set_message(format!(
                    "{} read, {}/s · {records} records",
                    HumanBytes(done),
                    BinaryBytes(bar.per_sec() as u64),
                ));
            }
            Shape::Stream => {
                let now = Instant::now();
                written.push_back((now, records));
                if written.len() > RATE_TICKS {
                    written.pop_front();
                }
                bar.set_message(stream_line(&probes, records, rate(&written)));
            }
        }
    }
}

/// A bar of 20 cells, `=` for the part done and `>` at its head.
fn bar_text(done: u64, total: u64) -> String {
    const CELLS: u64 = 20;
    let full = (done * CELLS)
        .checked_div(total)
        .unwrap_or(CELLS)
        .min(CELLS);
    let mut text = "=".repeat(full as usize);
    if full < CELLS {
        text.push('>');
        text.push_str(&" ".repeat((CELLS - full - 1) as usize));
    }
    text
}

/// Records a second over the samples kept.
fn rate(samples: &VecDeque<(Instant, u64)>) -> f64 {
    match (samples.front(), samples.back()) {
        (Some(&(t0, n0)), Some(&(t1, n1))) if t1 > t0 => (n1 - n0) as f64 / (t1 - t0).as_secs_f64(),
        _ => 0.0,
    }
}

/// The stream's line: records, rate, buffer fill, connections, lag.
fn stream_line(probes: &Probes, records: u64, rate: f64) -> String {
    let (held, room) = probes.buffered_batches();
    let fill = (held * 100).checked_div(room).unwrap_or(0);
    let mut line = format!("{records} records written, {rate:.0} records/s, buffer {fill}% full");
    if let Some(tcp) = &probes.tcp {
        line.push_str(&format!(", clients connected: {}", tcp.open()));
    }
    if probes.kafka.is_some() {
        match probes.kafka_lag() {
            Some(lag) => line.push_str(&format!(", lag {lag}")),
            None => line.push_str(", lag unknown yet"),
        }
    }
    line
}

/// The shape of a file run's line: `paths` (`-` is stdin) read once
/// (`follow` false) add up to a known size unless one is stdin, a
/// pattern, not a plain file, or compressed (by its first bytes, as
/// `--decompress auto` finds it).
pub fn file_shape(paths: &[String], follow: bool) -> Shape {
    if follow {
        return Shape::Stream;
    }
    let mut total = 0;
    for path in paths {
        match plain_size(path) {
            Some(size) => total += size,
            None => return Shape::UnknownBytes,
        }
    }
    Shape::Bytes(total)
}

/// The size of an uncompressed regular file at `path`.
fn plain_size(path: &str) -> Option<u64> {
    use std::io::Read;
    if path == "-" {
        return None;
    }
    // Looked at before it is opened: opening a named pipe would wait for
    // its writer, and take the records the run is about to read.
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_file() {
        return None;
    }
    let mut file = std::fs::File::open(path).ok()?;
    let mut head = [0u8; 4];
    let n = file.read(&mut head).ok()?;
    let compressed = head[..n].starts_with(&[0x1f, 0x8b])
        || head[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head[..n].starts_with(b"BZh");
    (!compressed).then_some(metadata.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_add_up_unless_one_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.jsonl");
        let gz = dir.path().join("c.gz");
        std::fs::write(&a, "x\n1\n").unwrap();
        std::fs::write(&b, "{}\n").unwrap();
        std::fs::write(&gz, [0x1f, 0x8b, 8, 0]).unwrap();
        let name = |p: &std::path::Path| p.to_str().unwrap().to_string();
        assert_eq!(file_shape(&[name(&a), name(&b)], false), Shape::Bytes(7));
        assert_eq!(
            file_shape(&[name(&a), name(&gz)], false),
            Shape::UnknownBytes
        );
        assert_eq!(file_shape(&["-".into()], false), Shape::UnknownBytes);
        assert_eq!(file_shape(&[name(&a)], true), Shape::Stream);
    }
}
