//! The TCP source's connection figures, for `--metrics` and the progress
//! line: open now, accepted, refused, closed by reason, and failed TLS
//! handshakes by reason. Changed once per connection, never per frame.

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
    /// Sent less than `--min-rate` over a window.
    MinRate,
    /// Its TLS handshake failed (see `TcpCounters::tls_failed`).
    TlsHandshake,
}

/// Why a connection was closed at accept, before any byte was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The accept itself failed (out of file descriptors, a client gone
    /// before it was taken).
    AcceptFailed,
    /// The peer is in no `--allow` network.
    NotAllowed,
    /// The peer's address holds `--max-connections-per-ip` already.
    PerIpLimit,
}

impl Refusal {
    const ALL: [Refusal; 3] = [
        Refusal::AcceptFailed,
        Refusal::NotAllowed,
        Refusal::PerIpLimit,
    ];

    fn label(self) -> &'static str {
        match self {
            Refusal::AcceptFailed => "accept_failed",
            Refusal::NotAllowed => "not_allowed",
            Refusal::PerIpLimit => "per_ip_limit",
        }
    }
}

/// The labels of failed TLS handshakes (`tls::Refused::label`).
const TLS_FAILURES: [&str; 3] = ["plaintext", "timeout", "failed"];

impl CloseReason {
    const ALL: [CloseReason; 7] = [
        CloseReason::Client,
        CloseReason::Failed,
        CloseReason::IdleTimeout,
        CloseReason::FrameTimeout,
        CloseReason::Stopped,
        CloseReason::MinRate,
        CloseReason::TlsHandshake,
    ];

    fn label(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::Failed => "failed",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::FrameTimeout => "frame_timeout",
            CloseReason::Stopped => "stopped",
            CloseReason::MinRate => "min_rate",
            CloseReason::TlsHandshake => "tls_handshake",
        }
    }
}

/// The connection counters of one TCP source; shared by its accept loop
/// and its connection tasks, read by whoever reports on the run.
#[derive(Debug, Default)]
pub struct TcpCounters {
    open: AtomicI64,
    accepted: AtomicU64,
    /// Connections closed at accept, by [`Refusal`]; clients beyond
    /// `--max-connections` wait in the backlog instead.
    refused: [AtomicU64; Refusal::ALL.len()],
    closed: [AtomicU64; CloseReason::ALL.len()],
    /// Failed TLS handshakes, by `TLS_FAILURES` label.
    tls_failed: [AtomicU64; TLS_FAILURES.len()],
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

    pub(crate) fn refused(&self, refusal: Refusal) {
        let at = Refusal::ALL.iter().position(|&r| r == refusal);
        if let Some(at) = at {
            self.refused[at].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A TLS handshake failed, for the reason labelled `label`.
    pub(crate) fn tls_failed(&self, label: &str) {
        if let Some(at) = TLS_FAILURES.iter().position(|&l| l == label) {
            self.tls_failed[at].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed).max(0) as u64
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed at accept, by reason: `accept_failed`,
    /// `not_allowed` (`--allow`), `per_ip_limit`.
    pub fn refused_by_reason(&self) -> Vec<(&'static str, u64)> {
        Refusal::ALL
            .iter()
            .zip(&self.refused)
            .map(|(reason, count)| (reason.label(), count.load(Ordering::Relaxed)))
            .collect()
    }

    /// Failed TLS handshakes, by reason: `plaintext` (a client speaking
    /// plaintext to the TLS port), `timeout` (`--handshake-timeout`),
    /// `failed` (no or a bad client certificate, no common protocol).
    pub fn tls_failures(&self) -> Vec<(&'static str, u64)> {
        TLS_FAILURES
            .iter()
            .zip(&self.tls_failed)
            .map(|(&reason, count)| (reason, count.load(Ordering::Relaxed)))
            .collect()
    }

    /// Connections closed, by reason: `client`, `failed`, `idle_timeout`,
    /// `frame_timeout`, `stopped`, `min_rate`, `tls_handshake`.
    pub fn closed_by_reason(&self) -> Vec<(&'static str, u64)> {
        CloseReason::ALL
            .iter()
            .zip(&self.closed)
            .map(|(reason, count)| (reason.label(), count.load(Ordering::Relaxed)))
            .collect()
    }
}
