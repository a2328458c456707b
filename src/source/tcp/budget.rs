//! The memory that unfinished frames may hold across all connections
//! (`--max-buffered-bytes`).
//!
//! Every connection may hold [`FREE_BYTES`] (one read's worth) of an
//! unfinished frame without asking; that much is part of what a
//! connection costs, bounded by `--max-connections`. A frame that grows
//! past it needs a reservation from the shared budget, big enough for the
//! longest frame (`--max-frame-bytes`) at once. A connection that cannot
//! get one waits without reading its socket, so TCP flow control slows its
//! client down.
//!
//! Why a whole frame at once, not the bytes as they come: if connections
//! took the budget a little at a time, every one of them could hold part
//! of a frame with the budget spent, each waiting for more that only the
//! others could free: none would ever finish. A connection that holds a
//! reservation never waits for the budget again, so it finishes its frame
//! (or is closed: by its client, by `--idle-timeout`, by `--frame-timeout`
//! when the frame is not done in time) and gives the reservation back; the
//! waiting ones then get theirs in turn (tokio's semaphore is first come,
//! first served). A frame over the limit is skipped as it arrives, which
//! needs no reservation.
//!
//! A connection's CSV header is held for the connection's life, so its
//! share ([`header_cost`]) is taken at once or not at all: a header that
//! finds no room is rejected rather than waiting for others to leave.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::error::{Error, Result};

/// What a connection may hold of an unfinished frame without a
/// reservation: one read's worth.
pub(super) const FREE_BYTES: usize = 64 * 1024;

/// The budget is counted in KiB (a semaphore permit each), so that a
/// budget of terabytes still fits the semaphore.
const UNIT: usize = 1024;

/// Bytes a frame takes in the buffer beyond `--max-frame-bytes`: its
/// `\n`, or the 4-byte length prefix.
const FRAME_OVERHEAD: usize = 4;

/// Refuses a `--max-frame-bytes` over `--max-buffered-bytes`: a frame
/// that long could never be held.
pub fn check(max_buffered_bytes: usize, max_frame_bytes: usize) -> Result<(), String> {
    if max_frame_bytes > max_buffered_bytes {
        return Err(format!(
            "--max-frame-bytes ({max_frame_bytes}) is larger than --max-buffered-bytes \
             ({max_buffered_bytes}): a frame that long could never be buffered; \
             raise --max-buffered-bytes or lower --max-frame-bytes"
        ));
    }
    Ok(())
}

/// The shared budget of unfinished-frame bytes beyond [`FREE_BYTES`].
#[derive(Debug)]
pub(super) struct Budget {
    permits: Arc<Semaphore>,
    /// The budget in bytes (`--max-buffered-bytes`).
    total: usize,
    /// Connections waiting for a reservation now.
    waiting: AtomicUsize,
    /// Permits in one reservation: the longest frame, less [`FREE_BYTES`].
    per_frame: u32,
}

/// A connection's share of the budget, given back when dropped.
#[derive(Debug)]
pub(super) struct Reservation {
    _permits: OwnedSemaphorePermit,
}

impl Budget {
    /// A budget of `max_buffered_bytes` for frames of at most
    /// `max_frame_bytes`. A frame longer than the budget could never be
    /// held, so that combination is refused.
    pub(super) fn new(max_buffered_bytes: usize, max_frame_bytes: usize) -> Result<Self> {
        check(max_buffered_bytes, max_frame_bytes).map_err(Error::Config)?;
        let per_frame = (max_frame_bytes + FRAME_OVERHEAD)
            .saturating_sub(FREE_BYTES)
            .div_ceil(UNIT);
        // Rounding up may ask for a unit more than the budget: give the
        // budget that unit rather than refuse a frame that fits.
        let total = (max_buffered_bytes / UNIT).max(per_frame);
        Ok(Budget {
            permits: Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS))),
            total: max_buffered_bytes,
            waiting: AtomicUsize::new(0),
            per_frame: u32::try_from(per_frame).unwrap_or(u32::MAX),
        })
    }

    /// The most bytes a connection's buffer may hold with a reservation:
    /// enough for the longest frame, and to see that a longer one is.
    pub(super) fn reserved_bytes(&self) -> usize {
        FREE_BYTES + self.per_frame as usize * UNIT
    }

    /// A reservation if one is free now.
    pub(super) fn try_reserve(&self) -> Option<Reservation> {
        match self.permits.clone().try_acquire_many_owned(self.per_frame) {
            Ok(permits) => Some(Reservation { _permits: permits }),
            Err(TryAcquireError::NoPermits) => None,
            Err(TryAcquireError::Closed) => unreachable!("the budget is never closed"),
        }
    }

    /// A reservation of `bytes` (rounded up to whole KiB) if that much is
    /// free now.
    pub(super) fn try_reserve_bytes(&self, bytes: usize) -> Option<Reservation> {
        let units = u32::try_from(bytes.div_ceil(UNIT).max(1)).ok()?;
        let permits = self.permits.clone().try_acquire_many_owned(units).ok()?;
        Some(Reservation { _permits: permits })
    }

    /// Counts the caller among the connections waiting for a reservation
    /// until the guard is dropped; returns it and how many wait now.
    pub(super) fn waiting(&self) -> (Waiting<'_>, usize) {
        let now = self.waiting.fetch_add(1, Ordering::Relaxed) + 1;
        (Waiting(&self.waiting), now)
    }

    /// The whole budget in bytes.
    pub(super) fn total_bytes(&self) -> usize {
        self.total
    }

    /// Waits for a reservation (cancel-safe: a reservation not yet
    /// granted holds nothing).
    pub(super) async fn reserve(&self) -> Reservation {
        let permits: Result<OwnedSemaphorePermit, AcquireError> = self
            .permits
            .clone()
            .acquire_many_owned(self.per_frame)
            .await;
        Reservation {
            _permits: permits.expect("the budget is never closed"),
        }
    }

    /// Bytes of the budget free now.
    pub(super) fn available_bytes(&self) -> usize {
        self.permits.available_permits() * UNIT
    }
}

/// Bytes of the budget a CSV header of `bytes` bytes and `columns`
/// columns holds for its connection's life: room for its names twice (as
/// given and as written keys) and a fixed cost per column, which is what
/// makes a header of a million one-letter names expensive.
pub(super) fn header_cost(bytes: usize, columns: usize) -> usize {
    bytes
        .saturating_mul(2)
        .saturating_add(columns.saturating_mul(128))
}

/// One connection waiting for a reservation; see [`Budget::waiting`].
pub(super) struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_cover_the_longest_frame_and_run_out() {
        let budget = Budget::new(4 << 20, 1 << 20).unwrap();
        assert!(budget.reserved_bytes() >= (1 << 20) + FRAME_OVERHEAD);
        let held: Vec<_> = (0..4).map(|_| budget.try_reserve().unwrap()).collect();
        assert!(budget.try_reserve().is_none());
        drop(held);
        assert_eq!(budget.available_bytes(), 4 << 20);
    }

    #[test]
    fn short_frames_never_need_a_reservation() {
        let budget = Budget::new(1024, 1000).unwrap();
        let many: Vec<_> = (0..100).map(|_| budget.try_reserve().unwrap()).collect();
        assert_eq!(many.len(), 100);
    }

    #[test]
    fn byte_reservations_and_waiters_are_counted() {
        let budget = Budget::new(64 << 10, 1000).unwrap();
        let header = budget.try_reserve_bytes(header_cost(1000, 100)).unwrap();
        assert_eq!(budget.available_bytes(), (64 << 10) - 15 * 1024);
        assert!(budget.try_reserve_bytes(60 << 10).is_none());
        drop(header);
        assert!(budget.try_reserve_bytes(64 << 10).is_some());
        let (first, one) = budget.waiting();
        let (second, two) = budget.waiting();
        assert_eq!((one, two), (1, 2));
        drop((first, second));
        assert_eq!(budget.waiting().1, 1);
    }

    #[test]
    fn a_frame_longer_than_the_budget_is_refused() {
        let error = Budget::new(1 << 20, 2 << 20).unwrap_err().to_string();
        assert!(error.contains("raise --max-buffered-bytes"), "{error}");
    }
}
