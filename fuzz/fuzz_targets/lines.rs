//! Plain lines (`--format lines`): each line of the input as
//! `{"message": "..."}`, with and without `--origin`; a line that is not
//! UTF-8 is rejected, any other is written as one JSON object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamer_fuzz::record::{Content, RawBatch};
use streamer_fuzz::{decode_all, source};

fuzz_target!(|data: &[u8]| {
    let mut batch = RawBatch::new(source(), Content::Lines);
    for (line, text) in (1..).zip(data.split(|&b| b == b'\n')) {
        batch.push_record(text, line);
    }
    decode_all(&batch, &mut streamer_fuzz::codec::NoStep);
    let mut out = streamer_fuzz::record::Batch::new(source());
    for record in batch.records() {
        let valid = std::str::from_utf8(record.bytes()).is_ok();
        let decoded = streamer_fuzz::codec::decode_into(
            &Content::Lines,
            &record,
            Default::default(),
            &mut streamer_fuzz::codec::NoStep,
            &mut out,
        );
        assert_eq!(decoded.is_ok(), valid, "{:?}", record.bytes());
    }
    // The message round-trips: what was read is what is written.
    for (record, written) in batch
        .records()
        .filter(|record| std::str::from_utf8(record.bytes()).is_ok())
        .zip(out.as_ndjson().split_inclusive(|&b| b == b'\n'))
    {
        let object: serde_json::Value = serde_json::from_slice(written).expect("JSON");
        let message = object["message"].as_str().expect("a message");
        let expected = std::str::from_utf8(record.bytes()).unwrap();
        // One trailing `\r` is a CRLF line end's, and not the message's.
        let expected = expected.strip_suffix('\r').unwrap_or(expected);
        assert_eq!(message, expected);
    }
});
