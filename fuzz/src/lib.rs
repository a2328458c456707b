//! The decoders and parsers of streamer, compiled from the repository's
//! own source files (`../src`), and the checks the fuzz targets share.
//!
//! The modules keep the names they have in the streamer crate (`crate::
//! record`, `crate::codec`, ...), so the files compile here unchanged;
//! they are the part of the crate that depends on no Kafka, network or
//! file code (see docs/ARCHITECTURE.md, "Module dependencies").
// Items the targets do not reach are compiled all the same.
#![allow(dead_code, unused_imports)]

#[path = "../../src"]
mod streamer {
    pub mod ack;
    pub mod codec;
    pub mod cpu;
    pub mod json;
    pub mod process;
    pub mod record;
    pub mod scan;
    pub mod warn_limit;
    /// The flags' value parsers (`--max-buffered-bytes 64M`, `30s`).
    pub mod cli {
        pub mod parse;

        /// A byte count as `--help` shows it (the crate keeps this to `cli`).
        pub fn bytes_text(bytes: usize) -> String {
            parse::bytes_text(bytes)
        }
    }
}

pub use streamer::*;

use std::sync::Arc;

use codec::{DecodeOptions, Decoded, NoStep, RecordStep};
use record::{Batch, Content, RawBatch, SourceInfo};

/// Where every fuzzed record comes from.
pub fn source() -> Arc<SourceInfo> {
    Arc::new(SourceInfo::File {
        path: "fuzz.in".into(),
    })
}

/// Decodes every record of `raw` through `step` (with and without
/// `--origin`), and checks what the decoder promises: each record is
/// written as one JSON object on one line, or rejected with a reason, and
/// a rejection leaves nothing behind.
pub fn decode_all(raw: &RawBatch, step: &mut impl RecordStep) {
    for origin in [false, true] {
        let mut out = Batch::new(source());
        let content: &Content = &raw.content;
        let mut written = 0;
        for record in raw.records() {
            let before = out.as_ndjson().len();
            match codec::decode_into(content, &record, DecodeOptions { origin }, step, &mut out) {
                Ok(Decoded::Written) => written += 1,
                Ok(Decoded::Blank | Decoded::Dropped) | Err(_) => {
                    assert_eq!(
                        out.as_ndjson().len(),
                        before,
                        "a record not written left bytes"
                    )
                }
            }
        }
        assert_eq!(out.len(), written);
        check_ndjson(out.as_ndjson(), written);
    }
}

/// `ndjson` is `lines` JSON objects, one a line.
pub fn check_ndjson(ndjson: &[u8], lines: usize) {
    let text = std::str::from_utf8(ndjson).expect("the output is UTF-8");
    let mut count = 0;
    for line in text.split_terminator('\n') {
        // IgnoredAny: the syntax only (a number past f64's range is JSON).
        serde_json::from_str::<serde::de::IgnoredAny>(line)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {line:?}"));
        let object = line.trim_matches(|c: char| c.is_ascii_whitespace());
        assert!(
            object.starts_with('{') && object.ends_with('}'),
            "not an object: {line:?}"
        );
        count += 1;
    }
    assert!(ndjson.is_empty() || ndjson.ends_with(b"\n"));
    assert_eq!(count, lines, "records and lines differ");
}

/// Runs `future` to its end on a runtime of the calling thread (the
/// decoders' async reads of an in-memory input never wait).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// Takes frames while `next` gives some; each must consume the buffer or
/// the loop would spin forever.
pub fn take_frames(frames: &mut Vec<codec::Frame>, mut next: impl FnMut() -> Option<codec::Frame>) {
    for _ in 0..100_000 {
        match next() {
            Some(frame) => frames.push(frame),
            None => return,
        }
    }
    panic!("the decoder keeps giving frames");
}
