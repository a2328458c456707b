//! `--min-rate`: a connection must send at least so many bytes in each
//! window of `--min-rate-window`, else it is closed, so that clients
//! trickling a byte now and then cannot hold the `--max-connections` slots
//! (slowloris). A window is judged only when the socket has nothing more
//! to read: bytes the client sent while the pipeline held the connection
//! back still count for it.

use std::time::Duration;

use tokio::time::Instant;

/// The least a connection must send: `bytes_per_second` on average over
/// each `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// Bytes a second.
    pub bytes_per_second: u64,
    /// How long each measure runs.
    pub window: Duration,
}

impl MinRate {
    /// What a window must bring.
    fn bytes_per_window(&self) -> u64 {
        (self.bytes_per_second as f64 * self.window.as_secs_f64()).ceil() as u64
    }
}

/// One connection's current window.
#[derive(Debug)]
pub(super) struct RateWatch {
    rate: MinRate,
    ends: Instant,
    bytes: u64,
}

impl RateWatch {
    /// The first window, from now.
    pub(super) fn new(rate: MinRate) -> Self {
        RateWatch {
            rate,
            ends: Instant::now() + rate.window,
            bytes: 0,
        }
    }

    /// When the current window ends.
    pub(super) fn ends(&self) -> Instant {
        self.ends
    }

    /// Counts bytes read.
    pub(super) fn add(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
    }

    /// At the window's end: `Err` with what it brought when that is too
    /// little; else the next window starts.
    pub(super) fn next_window(&mut self) -> Result<(), TooSlow> {
        if self.bytes < self.rate.bytes_per_window() {
            return Err(TooSlow {
                bytes: self.bytes,
                rate: self.rate,
            });
        }
        self.bytes = 0;
        self.ends = Instant::now() + self.rate.window;
        Ok(())
    }
}

/// A window that brought less than `--min-rate`.
#[derive(Debug, Clone, Copy)]
pub(super) struct TooSlow {
    bytes: u64,
    rate: MinRate,
}

impl TooSlow {
    /// Why the connection is closed, naming the flags.
    pub(super) fn reason(&self) -> String {
        format!(
            "sent {} bytes in {:?}, under --min-rate {} bytes/s (--min-rate-window)",
            self.bytes, self.rate.window, self.rate.bytes_per_second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_under_the_rate_is_too_slow() {
        let rate = MinRate {
            bytes_per_second: 10,
            window: Duration::from_millis(1500),
        };
        let mut watch = RateWatch::new(rate);
        watch.add(15);
        assert!(watch.next_window().is_ok());
        watch.add(14);
        let slow = watch.next_window().unwrap_err();
        assert_eq!(
            slow.reason(),
            "sent 14 bytes in 1.5s, under --min-rate 10 bytes/s (--min-rate-window)"
        );
    }
}
