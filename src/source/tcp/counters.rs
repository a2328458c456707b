//! The TCP source's connection figures, for `--metrics` and the progress
//! line: open now, accepted, refused, and closed by reason. Changed once
//! per connection, never per frame.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Why a connection ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The client closed it.
    Client,
    /// Its read failed (a reset).
    Failed,
    /// Silent for `--idle-timeout`.
    IdleTimeout,
    /// A frame held a budget share past `--frame-timeout`.
    FrameTimeout,
    /// Closed by the server: the run was ending (drain timeout, the
    /// pipeline closed, another connection failed the run).
    Stopped,
}

impl CloseReason {
    const ALL: [CloseReason; 5] = [
        CloseReason::Client,
        CloseReason::Failed,
        CloseReason::IdleTimeout,
        CloseReason::FrameTimeout,
        CloseReason::Stopped,
    ];

    fn label(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::Failed => "failed",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::FrameTimeout => "frame_timeout",
            CloseReason::Stopped => "stopped",
        }
    }
}

/// The connection counters of one TCP source; shared by its accept loop
/// and its connection tasks, read by whoever reports on the run.
#[derive(Debug, Default)]
pub struct TcpCounters {
    open: AtomicI64,
    accepted: AtomicU64,
    /// Accepts that failed (out of file descriptors, a client gone before
    /// it was taken): the only connections the server itself refuses;
    /// clients beyond `--max-connections` wait in the backlog instead.
    accept_failed: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
}

impl TcpCounters {
    pub(crate) fn opened(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    /// The connection's task ended (however it did: the gauge never
    /// drifts, whatever `closed` was told).
    pub(crate) fn left(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        let at = CloseReason::ALL.iter().position(|&r| r == reason);
        if let Some(at) = at {
            self.closed[at].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn accept_failed(&self) {
        self.accept_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed).max(0) as u64
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections refused, by reason (`accept_failed`, the only one).
    pub fn refused(&self) -> Vec<(&'static str, u64)> {
        vec![("accept_failed", self.accept_failed.load(Ordering::Relaxed))]
    }

    /// Connections closed, by reason: `client`, `failed`, `idle_timeout`,
    /// `frame_timeout`, `stopped`.
    pub fn closed_by_reason(&self) -> Vec<(&'static str, u64)> {
        CloseReason::ALL
            .iter()
            .zip(&self.closed)
            .map(|(reason, count)| (reason.label(), count.load(Ordering::Relaxed)))
            .collect()
    }
}
