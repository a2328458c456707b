//! Lines for the person running streamer (errors, the summary) on
//! standard error. A failed write there (`2>/dev/full`, a reader that has
//! gone) is ignored: saying how the run went must never end it, or change
//! its exit status, as `eprintln!` would by panicking.

use std::io::Write;

/// Writes one line to standard error, ignoring a failure to.
pub fn line(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// `eprintln!` that never panics: see [`line`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::stderr::line(format_args!($($arg)*))
    };
}
