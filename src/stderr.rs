//! Lines for the person running streamer (errors, the summary) on
//! standard error. A failed write there (`2>/dev/full`, a reader that has
//! gone) is ignored: saying how the run went must never end it, or change
//! its exit status, as `eprintln!` would by panicking.
//!
//! While the live progress line is drawn ([`crate::progress`]), every
//! write here (and every log line: [`Writer`] is the log's writer) hides
//! it first and draws it again after, so the two never mix on one line.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The progress line being drawn, if any.
static PROGRESS: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Makes `bar` the line that writes to stderr go around (`None`: none).
pub fn set_progress(bar: Option<indicatif::ProgressBar>) {
    *PROGRESS.lock().unwrap_or_else(|e| e.into_inner()) = bar;
}

/// Runs `write` with the progress line, if any, hidden.
fn around_progress<T>(write: impl FnOnce() -> T) -> T {
    let bar = PROGRESS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// Whether lines are JSON objects (`--log-format json`), set once at start.
static JSON: AtomicBool = AtomicBool::new(false);

/// Makes every line from now on one JSON object (`--log-format json`).
pub fn use_json() {
    JSON.store(true, Ordering::Relaxed);
}

/// Whether lines are JSON objects.
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Writes one line to standard error, ignoring a failure to. Under
/// `--log-format json` the line becomes an object shaped as the log's own
/// JSON lines: `streamer: error: X` is `{"level":"ERROR","message":"X"}`,
/// any other `streamer: X` is `{"level":"INFO","message":"X"}`.
pub fn line(args: std::fmt::Arguments<'_>) {
    if !is_json() {
        around_progress(|| {
            let _ = writeln!(std::io::stderr().lock(), "{args}");
        });
        return;
    }
    let text = args.to_string();
    let text = text.strip_prefix("streamer: ").unwrap_or(&text);
    let (level, message) = match text.strip_prefix("error: ") {
        Some(message) => ("ERROR", message),
        None => ("INFO", text),
    };
    object(&serde_json::json!({ "level": level, "message": message }));
}

/// Writes `value` as one line of JSON to standard error, ignoring a
/// failure to.
pub fn object(value: &serde_json::Value) {
    around_progress(|| {
        let _ = writeln!(std::io::stderr().lock(), "{value}");
    });
}

/// Standard error for the log: each write (one whole log line, as
/// tracing-subscriber formats a line before writing it) goes around the
/// progress line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Writer;

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        around_progress(|| std::io::stderr().lock().write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        around_progress(|| std::io::stderr().lock().write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `eprintln!` that never panics: see [`line`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::stderr::line(format_args!($($arg)*))
    };
}
