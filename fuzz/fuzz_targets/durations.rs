//! The duration flags' parser (`--idle-timeout 30s`, `--poll-interval
//! 500ms`, `--stats-interval`): never panics, and a duration it accepts,
//! written back in its unit, reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamer_fuzz::cli::parse::{parse_duration, parse_stats_interval};

fuzz_target!(|text: &str| {
    if let Ok(duration) = parse_duration(text) {
        let again = match duration.subsec_millis() {
            0 => format!("{}s", duration.as_secs()),
            _ => format!("{}ms", duration.as_millis()),
        };
        assert_eq!(parse_duration(&again), Ok(duration), "{text:?}");
    }
    if let Ok(interval) = parse_stats_interval(text) {
        assert!(interval.is_zero() || interval.as_secs() >= 1, "{text:?}");
    }
});
