//! Lines for the person running streamer (errors, the summary) on
//! standard error. A failed write there (`2>/dev/full`, a reader that has
//! gone) is ignored: saying how the run went must never end it, or change
//! its exit status, as `eprintln!` would by panicking.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

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
        let _ = writeln!(std::io::stderr().lock(), "{args}");
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
    let _ = writeln!(std::io::stderr().lock(), "{value}");
}

/// `eprintln!` that never panics: see [`line`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::stderr::line(format_args!($($arg)*))
    };
}
