//! Warnings that the outside world can trigger at will (a client that
//! resets its connection, a broker that reports a deleted topic) are
//! printed at most about once a second per call site; the ones held back
//! are counted, named in the next one printed, and summed up at the end of
//! the run by [`report_held_back`]. Without this, 2,000 resets print 2,000
//! lines and a vanished topic prints two a second forever.
//!
//! Use [`warn_limited!`](crate::warn_limited) where `tracing::warn!` would
//! go.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often one call site may print.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Every limiter that has held a warning back, so that the end of the run
/// can say how many went unprinted.
static HELD: Mutex<Vec<&'static RateLimit>> = Mutex::new(Vec::new());

/// The time all limiters measure from (milliseconds fit an `AtomicU64`).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The state of one call site of [`warn_limited!`](crate::warn_limited).
#[derive(Debug)]
pub struct RateLimit {
    /// When this call site last printed, in ms after [`epoch`] plus one
    /// (0: never).
    last_printed: AtomicU64,
    /// Warnings held back since the last one printed.
    held_back: AtomicU64,
    /// Held back over the whole run, for [`report_held_back`].
    held_back_total: AtomicU64,
    /// Whether this limiter is in [`HELD`] already.
    registered: AtomicBool,
    /// The first warning held back, to name the kind at the end.
    example: Mutex<Option<String>>,
}

impl RateLimit {
    /// A call site that has not printed yet.
    pub const fn new() -> Self {
        RateLimit {
            last_printed: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
            held_back_total: AtomicU64::new(0),
            registered: AtomicBool::new(false),
            example: Mutex::new(None),
        }
    }

    /// `Some(n)` when the warning may be printed now, `n` being how many
    /// were held back since the last one printed; `None` when it is held
    /// back (and counted). `message` is only called for the first warning
    /// held back, to keep it as an example.
    pub fn admit(&'static self, message: impl FnOnce() -> String) -> Option<u64> {
        let now = epoch().elapsed().as_millis() as u64 + 1;
        let last = self.last_printed.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= INTERVAL.as_millis() as u64;
        if due
            && self
                .last_printed
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held_back.swap(0, Ordering::Relaxed));
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        self.held_back_total.fetch_add(1, Ordering::Relaxed);
        if !self.registered.swap(true, Ordering::Relaxed) {
            *self.example.lock().unwrap_or_else(|e| e.into_inner()) = Some(message());
            HELD.lock().unwrap_or_else(|e| e.into_inner()).push(self);
        }
        None
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

/// Warns, at the end of a run, of every kind of warning that was held back
/// and how many times, so that a count never goes unsaid.
pub fn report_held_back() {
    let held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    for limit in held.iter() {
        let pending = limit.held_back.swap(0, Ordering::Relaxed);
        if pending == 0 {
            continue;
        }
        let total = limit.held_back_total.load(Ordering::Relaxed);
        let example = limit.example.lock().unwrap_or_else(|e| e.into_inner());
        tracing::warn!(
            "{total} more warnings like this one were held back (at most one a second is printed): {}",
            example.as_deref().unwrap_or("")
        );
    }
}

/// `tracing::warn!`, printed at most once a second from this call site;
/// the warnings held back meanwhile are counted in the next one printed.
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::warn_limit::RateLimit = $crate::warn_limit::RateLimit::new();
        if let Some(held_back) = LIMIT.admit(|| format!($($arg)+)) {
            if held_back == 0 {
                tracing::warn!($($arg)+);
            } else {
                tracing::warn!(
                    "{} ({held_back} more like this held back in the last second or so)",
                    format_args!($($arg)+)
                );
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_prints_once_and_counts_the_rest() {
        static LIMIT: RateLimit = RateLimit::new();
        assert_eq!(LIMIT.admit(|| "first".into()), Some(0));
        for _ in 0..99 {
            assert_eq!(LIMIT.admit(|| "again".into()), None);
        }
        assert_eq!(LIMIT.held_back.load(Ordering::Relaxed), 99);
        assert_eq!(LIMIT.example.lock().unwrap().as_deref(), Some("again"));
        // Once the interval is over (as if it had never printed), the next
        // one prints and carries the count.
        LIMIT.last_printed.store(0, Ordering::Relaxed);
        assert_eq!(LIMIT.admit(|| "later".into()), Some(99));
        assert_eq!(LIMIT.held_back_total.load(Ordering::Relaxed), 99);
    }
}
