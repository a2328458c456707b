//! The byte-count flags' parser (`--max-buffered-bytes 64M`,
//! `--max-frame-bytes`, `--max-record-bytes`): never panics, never
//! accepts 0, and a count it accepts, written as a plain number, reads
//! the same; `--max-record-bytes` stays within 1 GiB.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamer_fuzz::cli::bytes_text;
use streamer_fuzz::cli::parse::{parse_bytes, parse_max_record_bytes};

fuzz_target!(|text: &str| {
    if let Ok(bytes) = parse_bytes(text) {
        assert!(bytes > 0, "{text:?}");
        assert_eq!(parse_bytes(&bytes.to_string()), Ok(bytes), "{text:?}");
        assert_eq!(parse_bytes(&bytes_text(bytes)), Ok(bytes), "{text:?}");
    }
    if let Ok(bytes) = parse_max_record_bytes(text) {
        assert!(bytes <= 1 << 30, "{text:?}");
    }
});
