//! Rejections sorted into a few kinds, for the `reason` label of
//! `streamer_records_rejected_total`: the reasons themselves are free
//! text (they quote the bad bytes, columns, offsets), which a metric label
//! must never be, or each bad record would make a new series.

use std::sync::atomic::{AtomicU64, Ordering};

/// The kinds, as label values; `other` last, for what none matches.
pub const KINDS: [&str; 9] = [
    "invalid_json",
    "not_an_object",
    "invalid_csv",
    "invalid_utf8",
    "too_long",
    "unfinished",
    "empty",
    "unwritable",
    "other",
];

/// Which of [`KINDS`] `reason` is, from the words every reason of that
/// kind starts with or holds (the texts are this crate's own, so the
/// tests below keep the two in step).
pub fn kind_of(reason: &str) -> usize {
    let kind = if reason.starts_with("invalid JSON") || reason.starts_with("duplicate key") {
        "invalid_json"
    } else if reason.starts_with("not a JSON object") {
        "not_an_object"
    } else if reason.starts_with("invalid UTF-8") || reason.contains(": invalid UTF-8") {
        "invalid_utf8"
    } else if reason.contains("longer than") {
        "too_long"
    } else if reason.contains("CSV") || reason.starts_with("expected ") {
        if reason.starts_with("not written as CSV") {
            "unwritable"
        } else {
            "invalid_csv"
        }
    } else if reason.starts_with("unfinished")
        || reason.contains("inside a frame")
        || reason.contains("--frame-timeout")
        || reason.contains("truncated while being read")
        || reason.contains("without TLS close_notify")
    {
        "unfinished"
    } else if reason.starts_with("empty message") || reason.contains("tombstone") {
        "empty"
    } else {
        "other"
    };
    KINDS
        .iter()
        .position(|&k| k == kind)
        .unwrap_or(KINDS.len() - 1)
}

/// A count per kind.
#[derive(Debug, Default)]
pub struct ByKind([AtomicU64; KINDS.len()]);

impl ByKind {
    /// Counts one rejection for `reason`.
    pub fn count(&self, reason: &str) {
        self.0[kind_of(reason)].fetch_add(1, Ordering::Relaxed);
    }

    /// Every kind with its count (those at 0 too: a series that exists
    /// from the start is one a rate can be taken of).
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        KINDS
            .iter()
            .zip(&self.0)
            .map(|(&kind, count)| (kind, count.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(reason: &str) -> &'static str {
        KINDS[kind_of(reason)]
    }

    #[test]
    fn the_crates_reasons_fall_in_their_kinds() {
        let cases = [
            ("invalid JSON at column 6: expected value", "invalid_json"),
            ("duplicate key \"a\"", "invalid_json"),
            ("not a JSON object (found a number)", "not_an_object"),
            ("invalid UTF-8 in line (byte 3)", "invalid_utf8"),
            ("bad CSV header: invalid UTF-8", "invalid_utf8"),
            ("line longer than 10 bytes (--max-record-bytes)", "too_long"),
            ("frame longer than 4 bytes (--max-frame-bytes)", "too_long"),
            (
                "CSV record longer than 9 bytes (--max-record-bytes)",
                "too_long",
            ),
            ("invalid CSV: found record with 2 fields", "invalid_csv"),
            (
                "expected 2 fields (as in the header), found 1",
                "invalid_csv",
            ),
            ("the CSV header on line 1 is unusable", "invalid_csv"),
            ("not written as CSV: no column x", "unwritable"),
            (
                "unfinished record: the run was stopped (by a signal) before its end was read",
                "unfinished",
            ),
            (
                "connection idle for 1s inside a frame (--idle-timeout)",
                "unfinished",
            ),
            (
                "connection closed without TLS close_notify: the last record may be cut",
                "unfinished",
            ),
            ("message has no value (a tombstone)", "empty"),
            ("empty message value (not a JSON object)", "empty"),
            ("something new", "other"),
        ];
        for (reason, expected) in cases {
            assert_eq!(kind(reason), expected, "{reason}");
        }
    }

    #[test]
    fn counts_per_kind_start_at_zero() {
        let by_kind = ByKind::default();
        by_kind.count("invalid JSON at column 1: x");
        by_kind.count("invalid JSON at column 2: y");
        let counts = by_kind.snapshot();
        assert_eq!(counts.len(), KINDS.len());
        assert_eq!(counts[0], ("invalid_json", 2));
        assert!(counts[1..].iter().all(|&(_, n)| n == 0));
    }
}
